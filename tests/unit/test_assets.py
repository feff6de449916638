"""Where preheat finds functions/ and infra/, and how a verb reports a missing extra."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from preheat.exceptions import AssetMissing, MissingExtra
from preheat.tools import assets
from preheat.tools.cli._common import OPTIONAL, need

CHECKOUT = Path(__file__).resolve().parents[2]


def test_a_checkout_install_reads_the_checkout_s_own_folders() -> None:
    # An editable install has no bundled copy: edits to functions/ show at once.
    assert assets.functions_dir() == CHECKOUT / "functions"
    assert assets.infra_dir() == CHECKOUT / "infra"
    assert assets.function_dir("inference") == CHECKOUT / "functions" / "inference"
    assert (assets.infra_dir() / "template.yaml").is_file()


def test_an_unknown_function_names_what_is_missing() -> None:
    with pytest.raises(AssetMissing) as err:
        assets.function_dir("nope")
    assert err.value.what == "functions/nope/app.py"
    assert err.value.path == CHECKOUT / "functions" / "nope" / "app.py"
    assert "reinstall preheat" in str(err.value)


def test_a_zipped_tree_is_extracted_whole(tmp_path: Path) -> None:
    archive = tmp_path / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("preheat/_bundled/functions/inference/app.py", "x = 1\n")
        zf.writestr("preheat/_bundled/functions/warmer/app.py", "y = 2\n")
    root = zipfile.Path(archive, "preheat/_bundled/functions/")
    assets._extract(root, tmp_path / "out")
    assert (tmp_path / "out" / "inference" / "app.py").read_text() == "x = 1\n"
    assert (tmp_path / "out" / "warmer" / "app.py").read_text() == "y = 2\n"


def test_need_names_every_missing_package_and_the_extras_that_bring_them() -> None:
    with pytest.raises(MissingExtra) as err:
        need("demo", "tensorflow", "moto", "flask", "matplotlib", found=lambda _m: False)
    assert str(err.value) == (
        "preheat demo needs tensorflow, moto[server], matplotlib: "
        "pip install 'preheat[tensorflow,local]'"
    )
    assert err.value.verb == "demo"
    assert err.value.extras == ("tensorflow", "local")


def test_need_passes_when_everything_is_there() -> None:
    need("bench", *OPTIONAL, found=lambda _m: True)


def test_a_verb_missing_its_extra_stops_with_one_line() -> None:
    # sys.modules[name] = None makes the import system report the package as absent.
    code = (
        "import sys; sys.modules['awslambdaric'] = None\n"
        "from preheat.tools.cli import main\n"
        "sys.exit(main(['emulate', '--function', 'echo=.:app.handler']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr == "preheat emulate needs awslambdaric: pip install 'preheat[local]'\n"
