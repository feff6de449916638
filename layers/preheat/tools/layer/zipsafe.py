"""Extract a zip without letting any entry land outside the destination.

Every entry is checked before a byte is written: absolute paths, `..`, backslashes, drive
letters, symlinks, devices and duplicate names are refused, and the total size is capped
on the bytes actually inflated (a zip's declared sizes can lie).
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path

from preheat import constants as c
from preheat.exceptions import LayerTooLarge, UnsafePathError


def _check(info: zipfile.ZipInfo, root: str) -> str:
    name = info.filename
    if not name:  # ZipInfo.is_dir() below would fail on it with an IndexError
        raise UnsafePathError(name, root)
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        raise UnsafePathError(name, f"{root} (links and special files are not allowed)")
    bare = name.rstrip("/") if info.is_dir() else name
    if (
        not bare
        or "\x00" in bare
        or "\\" in bare
        or bare.startswith("/")
        or (len(bare) > 1 and bare[1] == ":")
        or any(part in ("", ".", "..") for part in bare.split("/"))
    ):
        raise UnsafePathError(name, root)
    return bare


def extract(
    zip_path: Path, dest: Path, *, max_bytes: int = c.LAMBDA_LAYER_UNZIPPED_LIMIT_BYTES
) -> list[Path]:
    """Extract `zip_path` into `dest` (absent or empty); on any refusal nothing is left."""
    root = f"the extraction root {dest.name}"
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UnsafePathError(str(dest), f"{root} (it must be absent or empty)")
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
        names: dict[str, str] = {}
        for info in infos:
            bare = _check(info, root)
            folded = bare.casefold()
            if folded in names and not info.is_dir():
                raise UnsafePathError(info.filename, f"{root} (listed twice)")
            names[folded] = bare
        created = not dest.exists()
        dest.mkdir(parents=True, exist_ok=True)
        base = dest.resolve()
        written: list[Path] = []
        total = 0
        try:
            for info in infos:
                target = (base / names[_check(info, root).casefold()]).resolve()
                if base not in target.parents:
                    raise UnsafePathError(info.filename, root)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    out = target.open("xb")
                except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
                    raise UnsafePathError(
                        info.filename, f"{root} (clashes with another entry)"
                    ) from exc
                with zf.open(info) as src, out as dst:
                    while block := src.read(1024 * 1024):
                        total += len(block)
                        if total > max_bytes:
                            raise LayerTooLarge(
                                f"{zip_path.name} inflates past {max_bytes / 2**20:.0f} MiB, "
                                "the most a Lambda layer may hold unzipped; refusing it",
                                name=zip_path.name,
                                size=total,  # what was inflated before it stopped
                                limit=max_bytes,
                            )
                        dst.write(block)
                executable = (info.external_attr >> 16) & 0o111
                target.chmod(0o755 if executable else 0o644)
                written.append(target)
        except BaseException:
            if created:
                shutil.rmtree(base, ignore_errors=True)
            else:
                for child in list(base.iterdir()):
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
            raise
    return written
