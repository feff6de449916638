"""The artifact manifest: the contract between slim, push, the layer builder and the loaders.

An artifact is a directory holding `manifest.json` beside the model files. The manifest
lists every file (relative path, size, SHA-256 and its chunks in order), the serving
signature, the parity measured against the source model and the source's fingerprint.
Reading a manifest validates it completely before anyone trusts a byte of it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import orjson

from preheat import constants as c
from preheat.exceptions import ManifestError, UnsafePathError

Runtime = Literal["tensorflow", "litert"]
Precision = Literal["fp32", "fp16", "int8", "exact"]
RUNTIMES: tuple[str, ...] = ("tensorflow", "litert")
PRECISIONS: tuple[str, ...] = ("exact", "fp32", "fp16", "int8")
_HEX = frozenset("0123456789abcdef")


def safe_relpath(path: str, root: str = "the artifact") -> str:
    """Return `path` if it is a plain relative POSIX path confined to its root; else raise."""
    if not isinstance(path, str) or not path or "\x00" in path or "\\" in path:
        raise UnsafePathError(str(path), root)
    p = PurePosixPath(path)
    if p.is_absolute() or any(part in ("..", "", ".") for part in path.split("/")):
        raise UnsafePathError(path, root)
    if path == c.MANIFEST_NAME:
        raise UnsafePathError(path, f"{root} (the manifest's own name is reserved)")
    return path


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


@dataclass(frozen=True)
class Chunk:
    """One fixed-size piece of a file, stored in S3 under its own hash."""

    sha256: str
    size: int


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str
    chunks: tuple[Chunk, ...] = ()


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor of a signature; None in `shape` is a dynamic dimension."""

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None  # None: unknown rank


@dataclass(frozen=True)
class Signature:
    key: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    runtime: str
    precision: str
    files: tuple[FileEntry, ...]
    signature: Signature
    chunk_size: int = c.DEFAULT_CHUNK_SIZE
    parity: Mapping[str, Any] | None = None
    source: Mapping[str, Any] = field(default_factory=dict)
    # The other signatures a TensorFlow artifact keeps, by key; the serving one is `signature`.
    signatures: tuple[Signature, ...] = ()
    format: str = c.ARTIFACT_FORMAT

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # Put the format first so a reader sees it at a glance.
        return {"format": d.pop("format"), **d}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    def write(self, directory: Path) -> Path:
        """Write manifest.json atomically into `directory`."""
        target = directory / c.MANIFEST_NAME
        tmp = directory / f".{c.MANIFEST_NAME}.tmp-{os.getpid()}"
        tmp.write_bytes(self.to_json())
        os.replace(tmp, target)
        return target

    def with_(self, **changes: Any) -> Manifest:
        from dataclasses import replace

        return replace(self, **changes)


# ---------------------------------------------------------------------------- reading


def _req(d: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise ManifestError(f"manifest {where}: missing {key!r}")
    v = d[key]
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise ManifestError(f"manifest {where}: {key!r} has the wrong type ({type(v).__name__})")
    return v


def _tensor(d: Any, where: str) -> TensorSpec:
    if not isinstance(d, Mapping):
        raise ManifestError(f"manifest {where}: a tensor must be an object")
    shape = d.get("shape")
    if shape is not None:
        if not isinstance(shape, list) or not all(
            s is None or (isinstance(s, int) and not isinstance(s, bool) and s >= 0) for s in shape
        ):
            raise ManifestError(f"manifest {where}: shape must be a list of sizes or nulls")
        shape = tuple(shape)
    return TensorSpec(
        name=_req(d, "name", str, where), dtype=_req(d, "dtype", str, where), shape=shape
    )


def _signature(d: Any, where: str) -> Signature:
    if not isinstance(d, Mapping):
        raise ManifestError(f"manifest {where}: must be an object")
    inputs = tuple(_tensor(t, f"{where}.inputs") for t in _req(d, "inputs", list, where))
    outputs = tuple(_tensor(t, f"{where}.outputs") for t in _req(d, "outputs", list, where))
    return Signature(key=_req(d, "key", str, where), inputs=inputs, outputs=outputs)


def from_dict(d: Any) -> Manifest:
    """Validate a decoded manifest completely; raise ManifestError naming the first fault."""
    if not isinstance(d, Mapping):
        raise ManifestError("manifest: must be a JSON object")
    fmt = d.get("format")
    if fmt != c.ARTIFACT_FORMAT:
        raise ManifestError(
            f"manifest format {fmt!r} is not supported: this preheat reads {c.ARTIFACT_FORMAT!r}; "
            "upgrade preheat or re-create the artifact"
        )
    runtime = _req(d, "runtime", str, "")
    if runtime not in RUNTIMES:
        raise ManifestError(f"manifest: runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    precision = _req(d, "precision", str, "")
    if precision not in PRECISIONS:
        raise ManifestError(
            f"manifest: precision {precision!r} is not one of {', '.join(PRECISIONS)}"
        )
    chunk_size = d.get("chunk_size", c.DEFAULT_CHUNK_SIZE)
    if not isinstance(chunk_size, int) or not c.MIN_CHUNK_SIZE <= chunk_size <= c.MAX_CHUNK_SIZE:
        raise ManifestError(
            f"manifest: chunk_size {chunk_size!r} is outside {c.MIN_CHUNK_SIZE}..{c.MAX_CHUNK_SIZE}"
        )
    raw_files = _req(d, "files", list, "")
    if len(raw_files) > c.MAX_FILES:
        raise ManifestError(f"manifest: {len(raw_files)} files is over the limit of {c.MAX_FILES}")
    files: list[FileEntry] = []
    seen: set[str] = set()
    total_chunks = 0
    for i, f in enumerate(raw_files):
        where = f"files[{i}]"
        if not isinstance(f, Mapping):
            raise ManifestError(f"manifest {where}: must be an object")
        path = safe_relpath(_req(f, "path", str, where))
        folded = path.casefold()
        if folded in seen:
            raise ManifestError(f"manifest {where}: path {path!r} is listed twice")
        # A file may not also be a directory of another entry ("a" and "a/b").
        seen.add(folded)
        size = _req(f, "size", int, where)
        sha = _req(f, "sha256", str, where)
        if size < 0 or not _is_sha256(sha):
            raise ManifestError(f"manifest {where}: size must be >= 0 and sha256 64 hex digits")
        chunks_raw = f.get("chunks", [])
        if not isinstance(chunks_raw, list):
            raise ManifestError(f"manifest {where}: chunks must be a list")
        total_chunks += len(chunks_raw)
        if total_chunks > c.MAX_CHUNKS:
            raise ManifestError(f"manifest: more than {c.MAX_CHUNKS} chunks; refusing to fetch")
        chunks: list[Chunk] = []
        for j, ch in enumerate(chunks_raw):
            w = f"{where}.chunks[{j}]"
            if not isinstance(ch, Mapping):
                raise ManifestError(f"manifest {w}: must be an object")
            csha = _req(ch, "sha256", str, w)
            csize = _req(ch, "size", int, w)
            if not _is_sha256(csha) or csize < 0 or csize > chunk_size:
                raise ManifestError(f"manifest {w}: bad sha256 or size outside 0..{chunk_size}")
            chunks.append(Chunk(csha, csize))
        if chunks and sum(ch.size for ch in chunks) != size:
            raise ManifestError(
                f"manifest {where}: chunks add up to {sum(ch.size for ch in chunks)} bytes "
                f"but the file is {size} bytes"
            )
        files.append(FileEntry(path, size, sha, tuple(chunks)))
    paths = {f.path for f in files}
    for f in files:
        parents = PurePosixPath(f.path).parents
        for parent in list(parents)[:-1]:
            if str(parent) in paths:
                raise ManifestError(
                    f"manifest: {f.path!r} lies under {str(parent)!r}, which is a file"
                )
    name = _req(d, "name", str, "")
    version = _req(d, "version", str, "")
    parity = d.get("parity")
    if parity is not None and not isinstance(parity, Mapping):
        raise ManifestError("manifest: parity must be an object or null")
    source = d.get("source") or {}
    if not isinstance(source, Mapping):
        raise ManifestError("manifest: source must be an object")
    sigs = d.get("signatures") or []
    if not isinstance(sigs, list):
        raise ManifestError("manifest: signatures must be a list")
    return Manifest(
        name=name,
        version=version,
        runtime=runtime,
        precision=precision,
        files=tuple(files),
        signature=_signature(_req(d, "signature", Mapping, ""), "signature"),
        chunk_size=chunk_size,
        parity=parity,
        source=source,
        signatures=tuple(_signature(s, f"signatures[{i}]") for i, s in enumerate(sigs)),
        format=fmt,
    )


def loads(data: bytes | str) -> Manifest:
    try:
        decoded = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc}") from exc
    return from_dict(decoded)


def read(directory: Path) -> Manifest:
    path = directory / c.MANIFEST_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(
            f"{directory} has no {c.MANIFEST_NAME}: it is not a preheat artifact"
        ) from None
    return loads(data)


# ---------------------------------------------------------------------------- building


def hash_file(path: Path, chunk_size: int) -> tuple[str, tuple[Chunk, ...]]:
    """SHA-256 of a whole file and of each of its fixed-size chunks, in one read."""
    whole = hashlib.sha256()
    chunks: list[Chunk] = []
    with path.open("rb") as fh:
        while block := fh.read(chunk_size):
            whole.update(block)
            chunks.append(Chunk(hashlib.sha256(block).hexdigest(), len(block)))
    return whole.hexdigest(), tuple(chunks)


def scan_files(root: Path, chunk_size: int = c.DEFAULT_CHUNK_SIZE) -> tuple[FileEntry, ...]:
    """Every regular file under `root` (but the manifest), sorted, hashed and chunked.

    Symlinks are refused: one pointing outside would smuggle foreign bytes into the
    artifact, and one pointing inside would be stored twice.
    """
    root = root.resolve()
    entries: list[FileEntry] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in [*dirnames, *filenames]:
            full = Path(dirpath) / name
            if full.is_symlink():
                raise UnsafePathError(
                    str(full.relative_to(root)), f"{root} (symlinks are not allowed)"
                )
        for name in sorted(filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if rel == c.MANIFEST_NAME or name.startswith(f".{c.MANIFEST_NAME}.tmp"):
                continue
            sha, chunks = hash_file(full, chunk_size)
            entries.append(FileEntry(safe_relpath(rel), full.stat().st_size, sha, chunks))
    return tuple(sorted(entries, key=lambda e: e.path))


def signature_from_dict(d: Mapping[str, Any]) -> Signature:
    return _signature(d, "signature")


def tensors(specs: Iterable[Mapping[str, Any]]) -> tuple[TensorSpec, ...]:
    return tuple(_tensor(s, "tensor") for s in specs)


def verify_dir(directory: Path, manifest: Manifest) -> list[str]:
    """Paths whose size or SHA-256 on disk differ from the manifest (empty: all good)."""
    bad: list[str] = []
    for f in manifest.files:
        p = directory / f.path
        try:
            if p.is_symlink() or p.stat().st_size != f.size:
                bad.append(f.path)
                continue
        except FileNotFoundError:
            bad.append(f.path)
            continue
        sha, _ = hash_file(p, manifest.chunk_size)
        if sha != f.sha256:
            bad.append(f.path)
    return bad


def fingerprint(files: Iterable[FileEntry]) -> str:
    """A content fingerprint of a set of files: SHA-256 over their sorted (path, sha256) pairs."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\x00{f.sha256}\n".encode())
    return h.hexdigest()


def build(
    directory: Path,
    *,
    name: str,
    version: str,
    runtime: str,
    precision: str,
    signature: Signature,
    signatures: tuple[Signature, ...] = (),
    parity: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
    chunk_size: int = c.DEFAULT_CHUNK_SIZE,
) -> Manifest:
    """Scan `directory` and return its manifest (validated by a round trip); nothing is written."""
    files = scan_files(directory, chunk_size)
    manifest = Manifest(
        name=name,
        version=version,
        runtime=runtime,
        precision=precision,
        files=files,
        signature=signature,
        signatures=signatures,
        chunk_size=chunk_size,
        parity=dict(parity) if parity is not None else None,
        source=dict(source) if source is not None else {"fingerprint": fingerprint(files)},
    )
    # The same checks a reader applies, so nothing invalid is ever written.
    return from_dict(orjson.loads(manifest.to_json()))
