"""The read-only local tier: artifacts baked into a layer (/opt), an image or a mounted EFS.

These directories cannot be repaired, so a hit is checked cheaply (a valid manifest and
every file present with its size) and trusted: hashing a layer's few hundred MB at every
cold start would cost more than the tier saves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from preheat import constants as c
from preheat.artifact import manifest as mf
from preheat.exceptions import ArtifactNotFound, ManifestError

log = logging.getLogger("preheat")


def open_dir(directory: Path) -> mf.Manifest:
    """The manifest of the artifact in `directory`, once its files check out."""
    if not directory.is_dir():
        raise ArtifactNotFound(str(directory), "no such directory")
    if not (directory / c.MANIFEST_NAME).is_file():
        raise ArtifactNotFound(
            str(directory),
            f"it has no {c.MANIFEST_NAME}; create an artifact with `preheat slim` or `preheat push`",
        )
    manifest = mf.read(directory)
    root = directory.resolve()
    for entry in manifest.files:
        path = directory / entry.path
        try:
            # A symlink in a layer could point anywhere; only files inside the root count.
            if not path.resolve().is_relative_to(root):
                raise ManifestError(f"{directory}: {entry.path} points outside the artifact")
            size = path.stat().st_size
        except FileNotFoundError:
            raise ManifestError(
                f"{directory}: {entry.path} is missing; rebuild the artifact"
            ) from None
        if size != entry.size:
            raise ManifestError(
                f"{directory}: {entry.path} is {size} bytes but the manifest says "
                f"{entry.size}; rebuild the artifact"
            )
    return manifest


def find(paths: Iterable[Path], name: str, version: str) -> tuple[Path, mf.Manifest] | None:
    """The first `<path>/<name>/<version>` holding this version intact, if any."""
    for base in paths:
        directory = base / name / version
        if not (directory / c.MANIFEST_NAME).is_file():
            continue
        try:
            manifest = open_dir(directory)
        except (ArtifactNotFound, ManifestError) as exc:
            log.warning("skipping the local copy at %s: %s", directory, exc)
            continue
        if manifest.name != name or manifest.version != version:
            log.warning(
                "skipping the local copy at %s: its manifest says %s/%s",
                directory,
                manifest.name,
                manifest.version,
            )
            continue
        return directory, manifest
    return None
