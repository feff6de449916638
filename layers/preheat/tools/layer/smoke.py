"""The runtime layer's proof: every module imports in a clean interpreter of the target."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

Progress = Callable[[str], None]


# Imported by the smoke test besides every top-level package: the modules that load and run
# a model, whose native parts a top-level import alone does not touch.
DEEP_IMPORTS = {
    "litert": (
        "ai_edge_litert.interpreter",
        "preheat.runtimes.litert",
        "aws_xray_sdk.core",
        "obstore.store",
    )
}


# Importable in Lambda's own runtime (not in the layer): the smoke import sees these too.
LAMBDA_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")


def preheat_modules(python_dir: Path) -> tuple[str, ...]:
    """Every module of preheat's runtime part in the layer: each must import there."""
    root = python_dir / "preheat"
    return tuple(
        sorted(
            "preheat."
            + ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            for p in root.rglob("*.py")
            if p.name != "__main__.py" and p != root / "__init__.py"
        )
    )


def top_level_modules(python_dir: Path) -> list[str]:
    """Every importable top-level name in the layer (namespace packages by their children)."""
    names: set[str] = set()
    for entry in python_dir.iterdir():
        if entry.name.endswith((".dist-info", ".data", ".libs")) or entry.name.startswith(
            ("_", ".")
        ):
            continue
        if entry.is_dir() and entry.name.isidentifier():
            if (entry / "__init__.py").exists():
                names.add(entry.name)
            else:
                names.update(
                    f"{entry.name}.{child.name}"
                    for child in entry.iterdir()
                    if child.is_dir() and (child / "__init__.py").exists()
                )
        elif entry.suffix == ".py" and entry.stem.isidentifier():
            names.add(entry.stem)
        elif ".so" in entry.suffixes and entry.name.split(".")[0].isidentifier():
            names.add(entry.name.split(".")[0])
    return sorted(names)


def provided_dir(into: Path) -> Path:
    """A directory of links to this environment's copies of what Lambda's runtime provides."""
    into.mkdir(parents=True, exist_ok=True)
    for name in LAMBDA_PROVIDED:
        try:
            spec_file = metadata.distribution(
                {"dateutil": "python-dateutil"}.get(name, name)
            ).locate_file(name)
        except metadata.PackageNotFoundError:
            continue
        for candidate in (Path(str(spec_file)), Path(f"{spec_file}.py")):
            if candidate.exists():
                (into / candidate.name).symlink_to(candidate)
                break
    return into


def smoke(
    interpreter: str,
    python_dir: Path,
    provided: Path | None = None,
    extra: tuple[str, ...] = (),
) -> dict[str, str]:
    """Import every top-level module of the layer in a clean interpreter; failures by name.

    The interpreter runs isolated (-I -S): it sees the layer and, like Lambda, the packages
    its runtime provides (`provided`), never this environment's site-packages.
    """
    modules = [*top_level_modules(python_dir), *extra]
    code = (
        "import importlib, json, sys\n"
        "sys.path[:0] = [p for p in sys.argv[1:3] if p]\n"
        "bad = {}\n"
        "for name in json.loads(sys.stdin.read()):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except BaseException as exc:\n"
        "        bad[name] = f'{type(exc).__name__}: {exc}'[:300]\n"
        "print(json.dumps(bad))\n"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(python_dir)}
    proc = subprocess.run(
        [interpreter, "-I", "-S", "-c", code, str(python_dir), str(provided or "")],
        input=json.dumps(modules),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        return {"<interpreter>": proc.stderr.strip()[-300:]}
    bad: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return bad


def package_sizes(python_dir: Path) -> dict[str, int]:
    """Unzipped bytes per distribution-ish group: numpy and numpy.libs count as numpy."""
    sizes: dict[str, int] = {}
    for path in python_dir.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        parts = path.relative_to(python_dir).parts
        # A top-level module's .pyc counts for that module.
        top = parts[1] if parts[0] == "__pycache__" and len(parts) > 1 else parts[0]
        if top.endswith(".dist-info"):
            top = top.split("-")[0]
        top = top.removesuffix(".libs").split(".")[0].lower()
        sizes[top] = sizes.get(top, 0) + path.stat().st_size
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))
