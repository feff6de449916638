"""Upload an artifact to S3 as content-addressed chunks, then its manifest last.

Chunks live at `<prefix>/blobs/sha256/<hex>` and are shared by every version and model
under the prefix, so a chunk already there is never sent again. The manifest, at
`<prefix>/models/<name>/<version>/manifest.json`, is written only once every chunk it
names is in place: a reader that sees a manifest can fetch the whole version.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from preheat import constants as c
from preheat.artifact import manifest as mf
from preheat.cache.retry import GaveUp, Retryable, with_retries
from preheat.cache.s3 import blob_key
from preheat.exceptions import (
    ArtifactNotFound,
    ConfigurationError,
    IntegrityError,
    ManifestError,
    PreheatError,
    PushError,
)
from preheat.uri import ModelURI, check_name, model_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("preheat")

DEFAULT_CONCURRENCY = 8
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class PushResult:
    uri: str
    manifest: mf.Manifest
    uploaded_bytes: int
    skipped_bytes: int
    chunks_uploaded: int
    chunks_skipped: int
    # Whether a SavedModel was re-saved exact before the upload (see `push`'s slim).
    slimmed: bool = False


def parse_dest(dest: str) -> tuple[str, str]:
    """`s3://BUCKET/PREFIX` → (bucket, prefix); the prefix may be empty."""
    if not dest.startswith("s3://"):
        raise ConfigurationError("destination", dest, "use s3://BUCKET/PREFIX")
    bucket, _, prefix = dest[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket):
        raise ConfigurationError(
            "destination",
            dest,
            "the bucket name must be 3-63 lowercase letters, digits, '.' or '-'",
        )
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise ConfigurationError("destination", dest, "the prefix has an empty or dot segment")
    if prefix.endswith("models") or "/models/" in f"/{prefix}/":
        raise ConfigurationError(
            "destination", dest, "give the prefix above models/ (s3://BUCKET/PREFIX)"
        )
    return bucket, prefix


def prepare(src: Path, *, name: str, version: str) -> mf.Manifest:
    """The manifest to push: an artifact's own (renamed), or one built for a SavedModel."""
    check_name("model name", name)
    check_name("model version", version)
    if not src.is_dir():
        raise ConfigurationError(
            "SRC", str(src), "give an artifact directory (with manifest.json) or a SavedModel"
        )
    if (src / c.MANIFEST_NAME).is_file():
        existing = mf.read(src)
        files = mf.scan_files(src, existing.chunk_size)
        listed = {f.path: f.sha256 for f in existing.files}
        scanned = {f.path: f.sha256 for f in files}
        if listed != scanned:
            changed = sorted(set(listed.items()) ^ set(scanned.items()))[0][0]
            raise ManifestError(
                f"{src}: {changed} does not match its manifest; re-create the artifact"
            )
        manifest = existing.with_(name=name, version=version, files=files)
    elif (src / "saved_model.pb").is_file():
        from preheat.runtimes.tensorflow import describe_saved_model

        signature, others = describe_saved_model(src)
        manifest = mf.build(
            src,
            name=name,
            version=version,
            runtime="tensorflow",
            precision="exact",
            signature=signature,
            signatures=others,
        )
    else:
        raise ConfigurationError(
            "SRC",
            str(src),
            "it has neither manifest.json nor saved_model.pb; give an artifact or a SavedModel",
        )
    # The same validation a reader applies, so nothing unreadable is ever pushed.
    return mf.from_dict(orjson.loads(manifest.to_json()))


def _is_saved_model(src: Path) -> bool:
    return not (src / c.MANIFEST_NAME).is_file() and (src / "saved_model.pb").is_file()


def _slim_exact(
    src: Path, out: Path, name: str, version: str, stage: Callable[[str], None]
) -> Path:
    """`src` re-saved exact into `out`; its outputs are proven bit-identical to the source's."""
    from preheat.tools.slim import slim

    stage(f"re-saving {src} exact (bit-identical outputs; --no-slim pushes it as it is)")
    try:
        slim(
            src,
            out,
            runtime="tensorflow",
            precision="exact",
            name=name,
            version=version,
            progress=lambda text: stage(f"slim: {text}"),
        )
    except PreheatError as exc:
        raise PushError(
            f"{src}: the exact re-save failed ({exc}); push the export as it is with --no-slim"
        ) from exc
    return out


def _client(concurrency: int) -> S3Client:
    import boto3

    from preheat import aws

    # A session of its own: boto3's default session is not safe to share across threads.
    client: S3Client = aws.client(
        "s3",
        retries={"max_attempts": 3, "mode": "standard"},
        pool=concurrency + 2,
        session=boto3.session.Session(),
    )
    return client


def _s3_call(
    what: str, fn: Callable[[], Any], retries: int = 3, *, missing_bucket: bool = False
) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    def attempt() -> Any:
        try:
            return fn()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code == "NoSuchBucket" or (missing_bucket and str(status) == "404"):
                raise PushError(f"{what}: the bucket does not exist; create it first") from None
            if status in (404,) or code in ("NoSuchKey", "404", "NotFound"):
                raise
            if status and int(status) >= 500:
                raise Retryable(f"S3 answered {status} {code}") from exc
            raise PushError(f"{what}: S3 refused: {code or status} ({exc})") from None
        except NoCredentialsError:
            raise PushError(
                f"{what}: no AWS credentials found; configure them (aws configure, "
                "AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
            ) from None
        except BotoCoreError as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc

    try:
        return with_retries(attempt, retries)
    except GaveUp as exc:
        raise PushError(f"{what}: {exc.cause} after {exc.attempts} attempts") from None


def _is_missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = exc.response.get("Error", {}).get("Code", "")
    return code in ("NoSuchKey", "404", "NotFound")


def _existing_blobs(client: S3Client, bucket: str, prefix: str) -> set[tuple[str, int]]:
    base = blob_key(prefix, "") + "/"
    found: set[tuple[str, int]] = set()
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": base}
        if token:
            kwargs["ContinuationToken"] = token
        page = _s3_call(
            f"s3://{bucket}/{base}", functools.partial(client.list_objects_v2, **kwargs)
        )
        for obj in page.get("Contents", []):
            found.add((obj["Key"][len(base) :], int(obj["Size"])))
        if not page.get("IsTruncated"):
            return found
        token = page.get("NextContinuationToken")


def _check_version_free(
    client: S3Client, bucket: str, key: str, manifest: mf.Manifest, uri: str
) -> None:
    """Versions are immutable: refuse to overwrite one whose contents differ."""
    try:
        body = _s3_call(uri, lambda: client.get_object(Bucket=bucket, Key=key))["Body"].read()
    except Exception as exc:
        if _is_missing(exc):
            return
        raise
    try:
        same = mf.loads(body).to_dict() == manifest.to_dict()
    except ManifestError:
        same = False
    if not same:
        raise PushError(
            f"{uri} already exists with different contents; versions never change: "
            "push under a new --version"
        )


def push(
    src: Path,
    dest: str,
    *,
    name: str,
    version: str,
    s3_client: S3Client | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    on_stage: Callable[[str], None] | None = None,
    slim: bool = True,
) -> PushResult:
    """Upload `src` (an artifact or a SavedModel directory) as NAME/VERSION under `dest`.

    A SavedModel is first re-saved exact, as `preheat slim --precision exact` does: only
    the signatures' functions and each weight once, with bit-identical outputs proven and
    recorded in the manifest. It loads markedly faster at INIT. `slim=False` pushes the
    export as it is. An artifact is always pushed as it is.

    `progress(done, total)` follows the upload in bytes; `on_stage(text)` names each step.
    Everything that can be checked cheaply (names, destination, bucket) is checked first.
    """
    stage = on_stage or (lambda _: None)
    if not 1 <= concurrency <= 256:
        raise ConfigurationError("concurrency", concurrency, "use 1 to 256")
    bucket, prefix = parse_dest(dest)
    check_name("model name", name)
    check_name("model version", version)
    client = s3_client or _client(concurrency)
    _s3_call(f"s3://{bucket}", lambda: client.head_bucket(Bucket=bucket), missing_bucket=True)
    if slim and _is_saved_model(src):
        with tempfile.TemporaryDirectory(prefix="preheat-push-") as tmp:
            artifact = _slim_exact(src, Path(tmp) / "artifact", name, version, stage)
            result = push(
                artifact,
                dest,
                name=name,
                version=version,
                s3_client=client,
                concurrency=concurrency,
                progress=progress,
                on_stage=on_stage,
                slim=False,
            )
        return dataclasses.replace(result, slimmed=True)
    stage(f"hashing {src}")
    manifest = prepare(src, name=name, version=version)
    uri = model_uri(bucket, prefix, name, version)
    manifest_key = ModelURI(uri, bucket, prefix, name, version).manifest_key
    _check_version_free(client, bucket, manifest_key, manifest, uri)

    # Every distinct chunk once, with where to read it.
    wanted: dict[str, tuple[Path, int, int]] = {}
    for entry in manifest.files:
        offset = 0
        for chunk in entry.chunks:
            wanted.setdefault(chunk.sha256, (src / entry.path, offset, chunk.size))
            offset += chunk.size
    present = _existing_blobs(client, bucket, prefix)
    todo = {sha: loc for sha, loc in wanted.items() if (sha, loc[2]) not in present}
    skipped = {sha: loc for sha, loc in wanted.items() if sha not in todo}
    total = sum(loc[2] for loc in todo.values())
    done = 0
    lock = threading.Lock()
    stage(f"uploading {len(todo)} of {len(wanted)} chunks")
    if progress is not None:
        progress(0, total)

    def upload(sha: str, path: Path, offset: int, size: int) -> None:
        nonlocal done
        with path.open("rb") as fh:
            data = os.pread(fh.fileno(), size, offset)
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            raise IntegrityError(
                f"{path} at byte {offset}", sha, actual, "the file changed during the push"
            )
        key = blob_key(prefix, sha)
        _s3_call(
            f"s3://{bucket}/{key}",
            lambda: client.put_object(Bucket=bucket, Key=key, Body=data),
        )
        with lock:
            done += size
            now = done
        if progress is not None:
            progress(now, total)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="preheat-push") as ex:
        futures = [ex.submit(upload, sha, *loc) for sha, loc in todo.items()]
        for f in futures:
            f.result()

    _s3_call(
        uri,
        lambda: client.put_object(
            Bucket=bucket,
            Key=manifest_key,
            Body=manifest.to_json(),
            ContentType="application/json",
        ),
    )
    log.info(
        "pushed %s: %d bytes uploaded, %d skipped", uri, total, sum(v[2] for v in skipped.values())
    )
    return PushResult(
        uri=uri,
        manifest=manifest,
        uploaded_bytes=total,
        skipped_bytes=sum(loc[2] for loc in skipped.values()),
        chunks_uploaded=len(todo),
        chunks_skipped=len(skipped),
    )


def set_alias(
    dest: str, name: str, alias: str, version: str, *, s3_client: S3Client | None = None
) -> str:
    """Point NAME@ALIAS at VERSION (which must exist); returns the alias URI."""
    bucket, prefix = parse_dest(dest)
    check_name("model name", name)
    check_name("model alias", alias)
    check_name("model version", version)
    client = s3_client or _client(2)
    target = ModelURI("", bucket, prefix, name, version)
    try:
        _s3_call(str(target), lambda: client.head_object(Bucket=bucket, Key=target.manifest_key))
    except Exception as exc:
        if _is_missing(exc):
            raise ArtifactNotFound(
                str(target), "push that version before pointing an alias at it"
            ) from None
        raise
    aliased = ModelURI("", bucket, prefix, name, None, alias)
    _s3_call(
        str(aliased),
        lambda: client.put_object(Bucket=bucket, Key=aliased.alias_key, Body=version.encode()),
    )
    return str(aliased)
