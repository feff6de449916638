"""The bench's environments against what pip gives: swaps, and the fallback without an index."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from preheat.exceptions import ToolProcessError
from preheat.tools.bench.environments import Resolution, as_pip_gives


def _dists() -> dict[str, metadata.Distribution]:
    return {
        "numpy": metadata.distribution("numpy"),
        "packaging": metadata.distribution("packaging"),
    }


def test_without_the_index_the_environment_stays_as_installed(tmp_path: Path) -> None:
    def offline(_reqs: Sequence[str]) -> dict[str, str]:
        raise ToolProcessError("asking pip what it installs", "no index reachable", 1)

    dists = _dists()
    out, resolution = as_pip_gives(dists, ["numpy"], tmp_path, gives=offline)
    assert out == dists
    assert resolution.unresolved == "no index reachable"
    assert resolution.text("user") == (
        "user environment: as installed here; pip could not say what it gives (no index reachable)"
    )
    assert not list(tmp_path.iterdir())  # nothing installed


def test_versions_pip_agrees_with_are_kept(tmp_path: Path) -> None:
    dists = _dists()
    same = {name: d.version for name, d in dists.items()}
    out, resolution = as_pip_gives(dists, ["numpy"], tmp_path, gives=lambda _r: same)
    assert out == dists and resolution.swapped == {}
    assert resolution.text("lean") == "lean environment: as pip gives it"


def test_swaps_are_named_with_both_versions() -> None:
    r = Resolution(["tensorflow-cpu==2.21.0"], {"ml-dtypes": ("0.5.4", "0.7.0")})
    assert r.text("user") == (
        "user environment: as pip gives it; unlike this installation: ml-dtypes 0.5.4 -> 0.7.0"
    )
