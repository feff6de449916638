"""What a layer build produced: the zip, its hash, its sizes and what fills it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LayerResult:
    kind: str  # "runtime" or "model"
    name: str
    zip_path: Path
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    # Unzipped bytes per package (runtime layer) or per model version (model layer).
    packages: dict[str, int] = field(default_factory=dict)
    reused: bool = False
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "zip": self.zip_path.name,
            "sha256": self.sha256,
            "zipped_bytes": self.zipped_bytes,
            "unzipped_bytes": self.unzipped_bytes,
            "packages": dict(sorted(self.packages.items(), key=lambda kv: -kv[1])),
            "reused": self.reused,
            "notes": list(self.notes),
        }
