"""The model layer: an artifact placed where the read-only tier looks for it.

Layers unpack under /opt, so `preheat/models/<name>/<version>/` in the zip becomes
`/opt/preheat/models/<name>/<version>/manifest.json`, the read-only tier's default path.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from preheat import constants as c
from preheat.artifact import manifest as mf
from preheat.exceptions import ConfigurationError, IntegrityError, ManifestError
from preheat.tools.layer import repro
from preheat.tools.layer.result import LayerResult

# The layer-relative root of models: DEFAULT_LOCAL_PATHS[0] without the /opt it unpacks to.
MODELS_ROOT = PurePosixPath(c.DEFAULT_LOCAL_PATHS[0]).relative_to("/opt")
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def build_model_layer(artifact: Path, out: Path) -> LayerResult:
    """Zip the artifact at `artifact` as a model layer in `out` (verified first)."""
    artifact, out = Path(artifact), Path(out)
    manifest = mf.read(artifact)
    for what, value in (("name", manifest.name), ("version", manifest.version)):
        if not _PART.match(value):
            raise ManifestError(
                f"manifest {what} {value!r} cannot be a directory in a layer; re-create the "
                "artifact with a name and version of letters, digits, '.', '_' or '-'"
            )
    # Refuses symlinks and files the manifest does not list, so nothing foreign ships.
    on_disk = {f.path for f in mf.scan_files(artifact, manifest.chunk_size)}
    listed = {f.path for f in manifest.files}
    if on_disk != listed:
        extra = sorted(on_disk ^ listed)[:3]
        raise ManifestError(
            f"{artifact.name} holds files its manifest does not list, or lacks listed ones "
            f"({', '.join(extra)}); re-create it with `preheat slim`"
        )
    bad = mf.verify_dir(artifact, manifest)
    if bad:
        entry = next(f for f in manifest.files if f.path == bad[0])
        actual, _ = mf.hash_file(artifact / entry.path, manifest.chunk_size)
        raise IntegrityError(
            f"{artifact.name}/{entry.path}",
            entry.sha256,
            actual,
            "the artifact changed after it was made; re-create it with `preheat slim`",
        )
    if out.exists() and not out.is_dir():
        raise ConfigurationError("out", str(out), "is a file; give a directory for the layer zips")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".build-"))
    try:
        target = staging.joinpath(*MODELS_ROOT.parts, manifest.name, manifest.version)
        target.mkdir(parents=True)
        for f in manifest.files:
            dst = target / f.path
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(artifact / f.path, dst)
        shutil.copyfile(artifact / c.MANIFEST_NAME, target / c.MANIFEST_NAME)
        stem = f"preheat-model-{manifest.name}-{manifest.version}"
        zip_path, digest, zipped, unzipped, reused = repro.publish(staging, out, stem)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return LayerResult(
        kind="model",
        name=stem,
        zip_path=zip_path,
        sha256=digest,
        zipped_bytes=zipped,
        unzipped_bytes=unzipped,
        packages={f"{manifest.name}/{manifest.version}": unzipped},
        reused=reused,
        notes=(f"unpacks to /opt/{MODELS_ROOT}/{manifest.name}/{manifest.version}",),
    )
