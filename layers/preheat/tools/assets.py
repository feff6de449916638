"""Where preheat finds its function sources (`functions/`) and templates (`infra/`).

A built wheel carries both folders as package data under `preheat/_bundled/` (setup.py maps
them there at build time). An editable install (`make install`) has no such copy: it reads
the checkout's own folders beside `layers/`, so an edit shows at once. This module is the
only place that knows either layout.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from preheat.exceptions import AssetMissing

# The folder inside the installed package that a wheel's build fills (see setup.py).
BUNDLE = "_bundled"
FUNCTIONS = "functions"
INFRA = "infra"


def _extract(node: Traversable, dest: Path) -> None:
    """Copy a package-data tree that is not on disk (a zipped install) to `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for child in node.iterdir():
        if child.is_dir():
            _extract(child, dest / child.name)
        else:
            (dest / child.name).write_bytes(child.read_bytes())


@cache
def _unzipped(name: str) -> Path:
    # Python 3.11's `resources.as_file` takes files only, not folders; once per process,
    # removed at exit, is what as_file would do for a folder.
    node = resources.files("preheat") / BUNDLE / name
    tmp = Path(tempfile.mkdtemp(prefix=f"preheat-{name}-"))
    atexit.register(shutil.rmtree, tmp, True)
    _extract(node, tmp / name)
    return tmp / name


# This module sits in preheat/tools/; the package's own folder is one up.
_PACKAGE = Path(__file__).resolve().parents[1]


def _checkout() -> Path:
    """The checkout an editable install runs from: layers/preheat/ → the repository root."""
    return _PACKAGE.parents[1]


def _folder(name: str) -> Path:
    bundled = resources.files("preheat") / BUNDLE / name
    if bundled.is_dir():
        return bundled if isinstance(bundled, Path) else _unzipped(name)
    if _PACKAGE.parent.name == "layers" and (_checkout() / name).is_dir():
        return _checkout() / name
    raise AssetMissing(name, _PACKAGE / BUNDLE / name)


def functions_dir() -> Path:
    """The folder holding one folder per Lambda function (inference, warmer, baseline)."""
    return _folder(FUNCTIONS)


def infra_dir() -> Path:
    """The folder holding the CloudFormation templates and the container-image recipe."""
    return _folder(INFRA)


def function_dir(name: str) -> Path:
    """functions/<name>, checked to hold the function's `app.py`."""
    path = functions_dir() / name
    if not (path / "app.py").is_file():
        raise AssetMissing(f"{FUNCTIONS}/{name}/app.py", path / "app.py")
    return path
