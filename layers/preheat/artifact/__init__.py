"""The artifact format: a directory with manifest.json beside the model files."""

from preheat.artifact.manifest import (
    Chunk,
    FileEntry,
    Manifest,
    Signature,
    TensorSpec,
    build,
    fingerprint,
    from_dict,
    hash_file,
    loads,
    read,
    safe_relpath,
    scan_files,
    verify_dir,
)

__all__ = [
    "Chunk",
    "FileEntry",
    "Manifest",
    "Signature",
    "TensorSpec",
    "build",
    "fingerprint",
    "from_dict",
    "hash_file",
    "loads",
    "read",
    "safe_relpath",
    "scan_files",
    "verify_dir",
]
