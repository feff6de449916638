"""Reproducible zips: the same tree gives the same bytes, so a layer is named by its hash.

Entries are sorted, dated 1980-01-01, given mode 0644 (0755 when executable), written by a
Unix creator with no extra fields, and deflated at one fixed level.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

from preheat.exceptions import UnsafePathError

EPOCH = (1980, 1, 1, 0, 0, 0)
LEVEL = 6
_UNIX = 3


def files(root: Path, include: Callable[[str], bool] | None = None) -> list[tuple[str, Path]]:
    """Every regular file under `root` as (zip name, path), sorted; symlinks are refused.

    `include`, given a zip name, keeps only the files it accepts.
    """
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            full = Path(dirpath) / name
            if full.is_symlink():
                raise UnsafePathError(
                    full.relative_to(root).as_posix(), f"{root.name} (symlinks are not allowed)"
                )
        for name in filenames:
            full = Path(dirpath) / name
            zip_name = full.relative_to(root).as_posix()
            if include is None or include(zip_name):
                found.append((zip_name, full))
    return sorted(found)


def write(root: Path, zip_path: Path, include: Callable[[str], bool] | None = None) -> int:
    """Zip the tree at `root` (the files `include` accepts) into `zip_path`.

    Returns the unzipped byte count.
    """
    total = 0
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=LEVEL) as zf:
        for name, path in files(root, include):
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.create_system = _UNIX
            executable = path.stat().st_mode & stat.S_IXUSR
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            size = path.stat().st_size
            total += size
            with path.open("rb") as src, zf.open(info, "w", force_zip64=size > 2**31) as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
    return total


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1024 * 1024):
            h.update(block)
    return h.hexdigest()


def publish(root: Path, out_dir: Path, stem: str) -> tuple[Path, str, int, int, bool]:
    """Zip `root` as `<stem>-<sha256[:16]>.zip` in `out_dir`, reusing an identical one.

    Returns (zip path, sha256, zipped bytes, unzipped bytes, reused).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{stem}.tmp-{os.getpid()}.zip"
    try:
        unzipped = write(root, tmp)
        digest = sha256(tmp)
        final = out_dir / f"{stem}-{digest[:16]}.zip"
        reused = final.is_file() and not final.is_symlink() and sha256(final) == digest
        if reused:
            tmp.unlink()
        else:
            os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final, digest, final.stat().st_size, unzipped, reused
