"""The TensorFlow environments the benchmark runs functions in, each holding only its packages.

A strategy is measured in the environment its users would have, not in preheat's dev
virtualenv (which carries keras, matplotlib, moto and the dev tools, and `import tensorflow`
pays for the first two):
- `user`: what `pip install tensorflow-cpu boto3` gives, keras included (TensorFlow
  depends on it). The baseline runs here.
- `lean`: what preheat's container image carries: TensorFlow without keras, and preheat's
  runtime with its dependencies. preheat's TensorFlow strategies run here.

Each is a layer-like directory (`python/` on the function's path, as Lambda mounts layers
under /opt) of links into this installation's site-packages: the closure of the named
requirements. It is made once per benchmark run and run by the managed runtime's stand-in
interpreter (see managed.py), which sees no other site-packages.

This installation is not always what its users get: a dev tool may hold a package back
(tritonclient keeps ml-dtypes at 0.5.4, and 0.7.0's extension costs the baseline's import
about 0.5 s on Python 3.11). So each environment asks pip, in a dry run against the package
index, what `pip install` of its roots would install today, and every package whose version
differs is installed alone at pip's version (once, cached) and linked instead. Without the
index the environment stays as installed, and says so.

SnapStart needs Python 3.12+. When preheat runs on an older Python, the lean environment for
3.12 cannot be linked from here: `pip_tensorflow_layer` installs TensorFlow (pinned as
preheat's `tensorflow` extra pins it) and preheat's runtime requirements for that Python with
pip, once, into the user's cache, and links a layer from that install the same way.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from preheat.exceptions import ConfigurationError, ToolProcessError

KINDS = ("user", "lean")
TENSORFLOW = "tensorflow-cpu"
# What each environment is built from, besides the runtime interface client that the
# managed runtime's stand-in provides. preheat's runtime requirements are read from its
# own metadata, so a new runtime dependency reaches the lean environment by itself.
_ROOTS = {"user": (TENSORFLOW, "boto3"), "lean": (TENSORFLOW,)}
# Never in the lean environment: serving a SavedModel needs none of it.
LEAN_EXCLUDES = frozenset({"keras"})


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(dist: metadata.Distribution, extras: Iterable[str]) -> list[Requirement]:
    """The dist's requirements that apply here, for no extra and for each of `extras`."""
    out = []
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is None:
            out.append(req)
            continue
        if any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
            out.append(req)
    return out


def closure(roots: Iterable[str], exclude: Iterable[str] = ()) -> dict[str, metadata.Distribution]:
    """Every installed distribution `roots` need, by normalised name; `exclude` cuts the walk.

    A requirement that is not installed here is an error: the environment would not be the
    one its users get.
    """
    excluded = {_norm(e) for e in exclude}
    found: dict[str, metadata.Distribution] = {}
    todo = [Requirement(r) for r in roots]
    seen_extras: dict[str, set[str]] = {}
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        if name in excluded:
            continue
        extras = set(req.extras)
        if name in found and extras <= seen_extras[name]:
            continue
        try:
            dist = found.get(name) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ConfigurationError(
                "benchmark environment",
                req.name,
                f"{req.name} is not installed here; install preheat's dev extra "
                "(pip install 'preheat[dev]')",
            ) from None
        found[name] = dist
        seen_extras.setdefault(name, set()).update(extras)
        todo.extend(_requirements(dist, extras))
    return found


def _top_level(dist: metadata.Distribution) -> set[str]:
    """The names a distribution puts directly in site-packages (packages, modules, its
    .dist-info, bundled .libs folders); scripts and data outside site-packages are left out."""
    names = set()
    for f in dist.files or ():
        parts = Path(str(f)).parts
        if parts and parts[0] not in ("..", "__pycache__") and not parts[0].endswith(".pth"):
            names.add(parts[0])
    return names


def site_view(dists: Iterable[metadata.Distribution], into: Path) -> Path:
    """A folder of links to each distribution's top-level entries, as a site-packages holds."""
    into.mkdir(parents=True, exist_ok=True)
    for dist in dists:
        for name in sorted(_top_level(dist)):
            source = Path(str(dist.locate_file(name)))
            link = into / name
            if source.exists() and not link.exists():
                link.symlink_to(source, target_is_directory=source.is_dir())
    return into


def _preheat_runtime_requirements() -> list[str]:
    """preheat's own runtime dependencies (no extras), from its installed metadata."""
    dist = metadata.distribution("preheat")
    return [str(r) for r in _requirements(dist, ()) if r.marker is None]


def _tensorflow_extra(python_version: str | None = None) -> list[str]:
    """preheat's `tensorflow` extra as plain requirements, for this Python or `python_version`."""
    env = {"extra": "tensorflow"}
    if python_version is not None:
        env["python_version"] = python_version
    out = []
    for line in metadata.distribution("preheat").requires or []:
        req = Requirement(line)
        if req.marker is not None and req.marker.evaluate(env):
            req.marker = None
            out.append(str(req))
    return out


@dataclass
class Resolution:
    """How an environment's versions compare with what pip gives its users today."""

    asked: list[str]
    # name: (installed here, what pip gives), for each package swapped for pip's version.
    swapped: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Why pip could not be asked (no index): the environment is as installed here.
    unresolved: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Resolution:
        """The inverse of as_dict, from its JSON (where the pairs became lists)."""
        swapped = {name: (old, new) for name, (old, new) in (d.get("swapped") or {}).items()}
        return cls(list(d.get("asked") or []), swapped, d.get("unresolved"))

    def text(self, kind: str) -> str:
        if self.unresolved:
            return (
                f"{kind} environment: as installed here; pip could not say what it gives "
                f"({self.unresolved})"
            )
        if not self.swapped:
            return f"{kind} environment: as pip gives it"
        swaps = ", ".join(f"{n} {old} -> {new}" for n, (old, new) in sorted(self.swapped.items()))
        return f"{kind} environment: as pip gives it; unlike this installation: {swaps}"


def _pip(args: Sequence[str], what: str, timeout: float) -> str:
    """Run pip with `args`; its stdout, or ToolProcessError with pip's last error line."""
    cmd = [sys.executable, "-m", "pip", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ToolProcessError(what, f"no answer in {timeout:g} s") from exc
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "WARNING" not in ln]
        raise ToolProcessError(what, (lines or ["pip failed"])[-1][:300], proc.returncode)
    return proc.stdout


def _pip_target(target: Path, args: Sequence[str], what: str, timeout: float) -> Path:
    """`pip install --target` into `target`, once: built beside it, renamed into place whole
    and marked complete, so a failed or cut install never passes for a finished one."""
    if (target / ".complete").is_file():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        _pip(["install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
              "--target", str(partial), *args], what, timeout)  # fmt: skip
    except ToolProcessError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    (target / ".complete").touch()
    return target


def pip_gives(requirements: Sequence[str], timeout: float = 300) -> dict[str, str]:
    """What `pip install REQUIREMENTS` would install today on this Python: name -> version.

    A dry run against the package index: pip reads metadata only (about 3 s).
    """
    what = "asking pip what it installs"
    out = _pip(
        ["install", "--dry-run", "--ignore-installed", "--quiet", "--disable-pip-version-check",
         "--only-binary=:all:", "--report", "-", *requirements],
        what, timeout,
    )  # fmt: skip
    try:
        report = json.loads(out)
        return {_norm(i["metadata"]["name"]): i["metadata"]["version"] for i in report["install"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise ToolProcessError(what, f"pip's report is not what pip documents: {exc}") from exc


def _installed_alone(name: str, version: str, cache: Path) -> metadata.Distribution:
    """`name==version` installed without its dependencies into `cache`, once."""
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    target = cache / f"{name}-{version}-python{py}"
    _pip_target(target, ["--no-deps", f"{name}=={version}"], f"installing {name}=={version}", 600)
    (info,) = target.glob("*.dist-info")
    return metadata.PathDistribution(info)


def as_pip_gives(
    dists: Mapping[str, metadata.Distribution],
    requirements: Sequence[str],
    cache: Path,
    gives: Callable[[Sequence[str]], dict[str, str]] = pip_gives,
) -> tuple[dict[str, metadata.Distribution], Resolution]:
    """`dists` with each package pip would install at another version swapped for pip's."""
    resolution = Resolution(list(requirements))
    try:
        wanted = gives(requirements)
    except ToolProcessError as exc:
        resolution.unresolved = exc.reason
        return dict(dists), resolution
    out = dict(dists)
    try:
        for name, dist in dists.items():
            version = wanted.get(name)
            if version is not None and version != dist.version:
                out[name] = _installed_alone(name, version, cache)
                resolution.swapped[name] = (dist.version, version)
    except ToolProcessError as exc:
        # All or nothing: half-swapped would be neither what pip gives nor what is here.
        resolution.swapped.clear()
        resolution.unresolved = exc.reason
        return dict(dists), resolution
    return out, resolution


def _pip_roots(kind: str) -> list[str]:
    # What a user of this kind types: pip install tensorflow-cpu boto3, or preheat's extra.
    if kind == "user":
        return [tensorflow_pin(), "boto3"]
    return [*_tensorflow_extra(), *_preheat_runtime_requirements()]


def tensorflow_layer(
    kind: str,
    workdir: Path,
    *,
    resolve: bool = True,
    cache: Path | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> Path:
    """The `kind` environment as a layer directory under `workdir` (made once per run).

    With `resolve`, versions are what pip gives today (see the module's docstring); the
    layer's `resolution.json` says what was swapped.
    """
    if kind not in KINDS:
        raise ConfigurationError("environment", kind, f"use one of {', '.join(KINDS)}")
    layer = workdir / f"tensorflow-{kind}"
    python = layer / "python"
    if python.is_dir():
        return layer
    roots = list(_ROOTS[kind])
    exclude: frozenset[str] = frozenset()
    if kind == "lean":
        roots += _preheat_runtime_requirements()
        exclude = LEAN_EXCLUDES
    dists = closure(roots, exclude)
    if resolve:
        from preheat.tools.bench.managed import cache_root

        dists, resolution = as_pip_gives(
            dists, _pip_roots(kind), (cache or cache_root()) / "pip-gives"
        )
        progress(resolution.text(kind))
        layer.mkdir(parents=True, exist_ok=True)
        (layer / "resolution.json").write_text(json.dumps(resolution.as_dict()))
    site_view(dists.values(), python)
    if kind == "lean":
        # The package itself from this source tree, as the image installs it.
        import preheat

        package = Path(preheat.__file__).resolve().parent
        (python / "preheat").symlink_to(package, target_is_directory=True)
    return layer


def packages(layer: Path) -> list[str]:
    """The distributions an environment holds, as name==version (for the report)."""
    out = []
    for info in sorted((layer / "python").glob("*.dist-info")):
        stem = info.name[: -len(".dist-info")]
        name, _, version = stem.partition("-")
        out.append(f"{_norm(name)}=={version}")
    return out


def tensorflow_pin() -> str:
    """The TensorFlow requirement of preheat's `tensorflow` extra (e.g. tensorflow-cpu==2.21.0)."""
    for line in _tensorflow_extra():
        if _norm(Requirement(line).name) == TENSORFLOW:
            return line
    return f"{TENSORFLOW}=={metadata.version(TENSORFLOW)}"


def pip_tensorflow(
    version: str, progress: Callable[[str], None], cache: Path | None = None
) -> Path:
    """TensorFlow and preheat's runtime requirements installed for Python `version` by pip,
    once per TensorFlow pin (cached beside Lambda's runtime client, see managed.py)."""
    from preheat.tools.bench.managed import cache_root
    from preheat.tools.layer.plan import platforms

    pin = tensorflow_pin()
    extra = [r for r in _tensorflow_extra(version) if _norm(Requirement(r).name) != TENSORFLOW]
    target = (cache or cache_root()) / f"python{version}-{pin.replace('==', '-')}"
    if (target / ".complete").is_file():
        progress(f"TensorFlow for Python {version}: {pin}, installed before (in {target})")
        return target
    progress(f"installing {pin} and preheat's runtime requirements for Python {version} with "
             f"pip from the package index (about 1.6 GB installed, once; cached in {target})")  # fmt: skip
    tags = [arg for tag in platforms(version, "x86_64") for arg in ("--platform", tag)]
    return _pip_target(
        target,
        ["--implementation", "cp", "--python-version", version, *tags,
         pin, *extra, *_preheat_runtime_requirements()],
        f"installing {pin} for Python {version}",
        1800,
    )  # fmt: skip


def pip_tensorflow_layer(
    version: str,
    workdir: Path,
    progress: Callable[[str], None] = lambda _m: None,
    cache: Path | None = None,
) -> Path:
    """The lean environment for Python `version` as a layer directory under `workdir`:
    links into `pip_tensorflow`'s install, keras left out, preheat from this source tree."""
    layer = workdir / f"tensorflow-lean-python{version}"
    python = layer / "python"
    if python.is_dir():
        return layer
    installed = pip_tensorflow(version, progress, cache)
    python.mkdir(parents=True)
    excluded = {_norm(e) for e in LEAN_EXCLUDES}
    for entry in sorted(installed.iterdir()):
        # pip's scripts and the cache's marker are no package; keras is never lean.
        stem = _norm(entry.name.split("-")[0]) if entry.name.endswith("-info") else entry.name
        if entry.name in ("bin", ".complete", "preheat") or _norm(stem) in excluded:
            continue
        (python / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    import preheat

    package = Path(preheat.__file__).resolve().parent
    (python / "preheat").symlink_to(package, target_is_directory=True)
    return layer
