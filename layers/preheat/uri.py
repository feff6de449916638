"""Model URIs: `s3://bucket/prefix/models/NAME/VERSION`, `…/NAME@ALIAS`, or a local directory."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from preheat.exceptions import ConfigurationError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_S3 = re.compile(
    r"^s3://(?P<bucket>[^/]+)/(?:(?P<prefix>.*)/)?models/(?P<rest>[^/]+(?:/[^/]+)?)/?$"
)


def check_name(kind: str, value: str) -> str:
    """A model name, version or alias: a safe single path segment."""
    if not _NAME.match(value) or value in {".", ".."}:
        raise ConfigurationError(
            kind,
            value,
            "use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return value


@dataclass(frozen=True)
class ModelURI:
    """A parsed model URI. Exactly one of `local_dir` or `bucket` is set."""

    raw: str
    bucket: str | None = None
    prefix: str = ""
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    local_dir: Path | None = None

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    def key(self, *parts: str) -> str:
        """An S3 key under this URI's prefix."""
        return "/".join(p for p in (self.prefix, *parts) if p)

    @property
    def manifest_key(self) -> str:
        assert self.name is not None and self.version is not None
        return self.key("models", self.name, self.version, "manifest.json")

    @property
    def alias_key(self) -> str:
        assert self.name is not None and self.alias is not None
        return self.key("models", self.name, "aliases", self.alias)

    def with_version(self, version: str) -> ModelURI:
        return ModelURI(self.raw, self.bucket, self.prefix, self.name, version, None, None)

    def __str__(self) -> str:
        if self.local_dir is not None:
            return str(self.local_dir)
        tail = f"{self.name}/{self.version}" if self.version else f"{self.name}@{self.alias}"
        return f"s3://{self.bucket}/{self.key('models', tail)}"


def model_uri(bucket: str, prefix: str, name: str, version: str) -> str:
    prefix = prefix.strip("/")
    return f"s3://{bucket}/{prefix + '/' if prefix else ''}models/{name}/{version}"


def parse(uri: str) -> ModelURI:
    """Parse a model URI; raise ConfigurationError naming what is wrong."""
    if not uri:
        raise ConfigurationError("model URI", uri, "set PREHEAT_MODEL_URI or pass uri=")
    if not uri.startswith("s3://"):
        if "://" in uri:
            raise ConfigurationError(
                "model URI", uri, "use s3://BUCKET/PREFIX/models/NAME/VERSION or a local directory"
            )
        return ModelURI(raw=uri, local_dir=Path(uri))
    m = _S3.match(uri)
    if not m:
        raise ConfigurationError(
            "model URI",
            uri,
            "use s3://BUCKET/PREFIX/models/NAME/VERSION or s3://BUCKET/PREFIX/models/NAME@ALIAS",
        )
    rest = m["rest"]
    if "/" in rest:
        name, version = rest.split("/", 1)
        alias = None
    elif "@" in rest:
        name, alias = rest.split("@", 1)
        version = None
    else:
        raise ConfigurationError(
            "model URI", uri, "name a version (NAME/VERSION) or an alias (NAME@ALIAS)"
        )
    check_name("model name", name)
    if version is not None:
        check_name("model version", version)
    if alias is not None:
        check_name("model alias", alias)
    return ModelURI(
        raw=uri,
        bucket=m["bucket"],
        prefix=m["prefix"] or "",
        name=name,
        version=version,
        alias=alias,
    )
