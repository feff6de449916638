"""Reproducible zips and the safe extractor that refuses entries escaping their root."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest

from preheat.exceptions import LayerTooLarge, UnsafePathError
from preheat.tools.layer import repro, zipsafe


def _tree(root: Path) -> Path:
    (root / "python" / "pkg").mkdir(parents=True)
    (root / "python" / "pkg" / "__init__.py").write_text("X = 1\n")
    (root / "python" / "pkg" / "data.bin").write_bytes(os.urandom(0) + b"\x00" * 5000)
    tool = root / "python" / "tool.sh"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o775)
    return root


def test_same_tree_gives_the_same_bytes_whatever_the_mtimes(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a")
    b = _tree(tmp_path / "b")
    for path in (b / "python" / "pkg").iterdir():
        os.utime(path, (1_000_000_000, 1_000_000_000))
    repro.write(a, tmp_path / "a.zip")
    repro.write(b, tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_entries_are_sorted_dated_1980_with_fixed_modes(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    unzipped = repro.write(root, tmp_path / "t.zip")
    with zipfile.ZipFile(tmp_path / "t.zip") as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert (
        names
        == sorted(names)
        == ["python/pkg/__init__.py", "python/pkg/data.bin", "python/tool.sh"]
    )
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    modes = {i.filename: stat.S_IMODE(i.external_attr >> 16) for i in infos}
    assert modes == {
        "python/pkg/__init__.py": 0o644,
        "python/pkg/data.bin": 0o644,
        "python/tool.sh": 0o755,
    }
    assert all(i.extra == b"" for i in infos)
    assert unzipped == sum(i.file_size for i in infos)


def test_publish_names_by_hash_and_reuses_an_identical_zip(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    first = repro.publish(root, tmp_path / "out", "layer")
    second = repro.publish(root, tmp_path / "out", "layer")
    assert first[0] == second[0] and first[0].name == f"layer-{first[1][:16]}.zip"
    assert first[4] is False and second[4] is True
    assert repro.sha256(first[0]) == first[1]
    (root / "python" / "pkg" / "__init__.py").write_text("X = 2\n")
    third = repro.publish(root, tmp_path / "out", "layer")
    assert third[1] != first[1] and third[4] is False
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [first[0].name, third[0].name]
    )


def test_a_symlink_in_the_tree_is_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    (root / "python" / "link").symlink_to("/etc/passwd")
    with pytest.raises(UnsafePathError, match="symlinks"):
        repro.write(root, tmp_path / "t.zip")


def _zip(path: Path, entries: list[tuple[str, bytes, int]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def test_extract_writes_a_good_zip(tmp_path: Path) -> None:
    src = _zip(
        tmp_path / "ok.zip",
        [("python/a.py", b"A", 0o100644), ("python/bin/run", b"#!", 0o100755)],
    )
    written = zipsafe.extract(src, tmp_path / "dest")
    assert (tmp_path / "dest" / "python" / "a.py").read_bytes() == b"A"
    assert os.access(tmp_path / "dest" / "python" / "bin" / "run", os.X_OK)
    assert len(written) == 2


@pytest.mark.parametrize(
    "name",
    [
        "../evil.py",
        "python/../../evil.py",
        "/etc/evil",
        "python\\..\\evil.py",
        "C:/evil.py",
        "python/./a.py",
        "python//a.py",
    ],
)
def test_extract_refuses_entries_escaping_the_root(tmp_path: Path, name: str) -> None:
    src = _zip(tmp_path / "bad.zip", [("python/ok.py", b"ok", 0o100644), (name, b"x", 0o100644)])
    with pytest.raises(UnsafePathError):
        zipsafe.extract(src, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert not (tmp_path / "evil.py").exists()


def test_extract_refuses_symlink_entries(tmp_path: Path) -> None:
    src = _zip(tmp_path / "link.zip", [("python/link", b"/etc/passwd", 0o120777)])
    with pytest.raises(UnsafePathError, match="links"):
        zipsafe.extract(src, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_extract_refuses_duplicates_and_file_dir_clashes(tmp_path: Path) -> None:
    dup = _zip(tmp_path / "dup.zip", [("a.py", b"1", 0o100644), ("A.py", b"2", 0o100644)])
    with pytest.raises(UnsafePathError, match="twice"):
        zipsafe.extract(dup, tmp_path / "d1")
    clash = _zip(tmp_path / "clash.zip", [("a", b"1", 0o100644), ("a/b", b"2", 0o100644)])
    with pytest.raises(UnsafePathError, match="clashes"):
        zipsafe.extract(clash, tmp_path / "d2")
    assert not (tmp_path / "d2").exists()


def test_extract_caps_inflated_bytes_and_cleans_up(tmp_path: Path) -> None:
    src = _zip(
        tmp_path / "big.zip", [("a", b"\x00" * 4096, 0o100644), ("b", b"\x00" * 4096, 0o100644)]
    )
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(LayerTooLarge, match="inflates past"):
        zipsafe.extract(src, dest, max_bytes=6000)
    assert dest.is_dir() and not any(dest.iterdir())


def test_extract_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    src = _zip(tmp_path / "ok.zip", [("a", b"1", 0o100644)])
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep").write_text("mine")
    with pytest.raises(UnsafePathError, match="absent or empty"):
        zipsafe.extract(src, tmp_path / "dest")
    assert (tmp_path / "dest" / "keep").read_text() == "mine"
