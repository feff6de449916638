"""A function's /opt: its layers' content merged into one tree of symlinks, later layers winning.

Lambda extracts layers in order into /opt; symlinks give the same view without copying.
The tree is read-only by convention: a write through a link would reach the layer's source.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path


def build_opt(target: Path, layers: Sequence[Path]) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        _merge(layer.resolve(), target)
    return target


def _merge(src: Path, dst: Path) -> None:
    for entry in sorted(src.iterdir()):
        here = dst / entry.name
        if entry.is_dir():
            if here.is_symlink() and here.is_dir():
                # Two layers share this directory: turn the link into a real directory.
                earlier = here.resolve()
                here.unlink()
                here.mkdir()
                _merge(earlier, here)
                _merge(entry, here)
            elif here.is_dir():
                _merge(entry, here)
            else:
                _remove(here)
                here.symlink_to(entry, target_is_directory=True)
        else:
            _remove(here)
            here.symlink_to(entry)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)  # removes links inside, never what they point to
