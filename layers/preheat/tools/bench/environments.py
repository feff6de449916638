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
requirements, so the versions are exactly the ones installed here and nothing is
downloaded. It is made once per benchmark run, in milliseconds, and run by the managed
runtime's stand-in interpreter (see managed.py), which sees no other site-packages.

SnapStart needs Python 3.12+. When preheat runs on an older Python, the lean environment for
3.12 cannot be linked from here: `pip_tensorflow_layer` installs TensorFlow (pinned as
preheat's `tensorflow` extra pins it) and preheat's runtime requirements for that Python with
pip, once, into the user's cache, and links a layer from that install the same way.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

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


def tensorflow_layer(kind: str, workdir: Path) -> Path:
    """The `kind` environment as a layer directory under `workdir` (made once per run)."""
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
    site_view(closure(roots, exclude).values(), python)
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
    dist = metadata.distribution("preheat")
    for line in dist.requires or []:
        req = Requirement(line)
        marker = req.marker
        if _norm(req.name) == TENSORFLOW and marker and marker.evaluate({"extra": "tensorflow"}):
            return f"{req.name}{req.specifier}"
    return f"{TENSORFLOW}=={metadata.version(TENSORFLOW)}"


def pip_tensorflow(
    version: str, progress: Callable[[str], None], cache: Path | None = None
) -> Path:
    """TensorFlow and preheat's runtime requirements installed for Python `version` by pip,
    once per TensorFlow pin (cached beside Lambda's runtime client, see managed.py)."""
    from preheat.tools.bench.managed import cache_root
    from preheat.tools.layer.plan import platforms

    pin = tensorflow_pin()
    target = (cache or cache_root()) / f"python{version}-{pin.replace('==', '-')}"
    if (target / ".complete").is_file():
        progress(f"TensorFlow for Python {version}: {pin}, installed before (in {target})")
        return target
    progress(f"installing {pin} and preheat's runtime requirements for Python {version} with "
             f"pip from the package index (about 1.6 GB installed, once; cached in {target})")  # fmt: skip
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tags = [arg for tag in platforms(version, "x86_64") for arg in ("--platform", tag)]
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--implementation", "cp", "--python-version", version, *tags,
        "--target", str(partial), pin, *_preheat_runtime_requirements(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise ToolProcessError(
            f"installing {pin} for Python {version}",
            (lines or ["pip failed"])[-1][:300],
            proc.returncode,
        )
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    (target / ".complete").touch()
    return target


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
