"""Sample inputs for parity: seeded generation from a signature and the user's .npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from preheat.artifact.manifest import Signature, TensorSpec
from preheat.exceptions import ConfigurationError
from preheat.tools.slim import inputs as samples

SIG = Signature(
    key="serving_default",
    inputs=(
        TensorSpec("image", "float32", (None, 4, 4, 3)),
        TensorSpec("ids", "int32", (None,)),
        TensorSpec("words", "string", (None, 2)),
    ),
    outputs=(TensorSpec("y", "float32", (None, 3)),),
)


def test_generate_respects_dtypes_shapes_and_count() -> None:
    batches = samples.generate(SIG, 20, seed=3, vocab=["apple", "pear"])
    assert samples.rows(batches) == 20
    assert [b["ids"].shape[0] for b in batches] == [samples.MAX_BATCH, 4]
    first = batches[0]
    assert first["image"].dtype == np.float32 and first["image"].shape == (16, 4, 4, 3)
    assert first["ids"].dtype == np.int32
    assert first["ids"].min() >= 0 and first["ids"].max() < samples.INT_HIGH
    assert first["words"].dtype == object and first["words"].shape == (16, 2)
    words = set(first["words"].ravel().tolist())
    assert {b"apple", b"pear"} & words, "vocabulary words are used"
    assert words - {b"apple", b"pear"}, "some words are out of vocabulary on purpose"


def test_generate_is_seeded() -> None:
    a = samples.generate(SIG, 5, seed=1)
    b = samples.generate(SIG, 5, seed=1)
    c = samples.generate(SIG, 5, seed=2)
    assert np.array_equal(a[0]["image"], b[0]["image"])
    assert not np.array_equal(a[0]["image"], c[0]["image"])


def test_fixed_batch_rounds_up_to_whole_batches() -> None:
    sig = Signature("s", (TensorSpec("x", "float32", (2, 3)),), ())
    batches = samples.generate(sig, 5)
    assert [b["x"].shape for b in batches] == [(2, 3)] * 3


def test_generate_refuses_zero_samples() -> None:
    with pytest.raises(ConfigurationError, match="samples"):
        samples.generate(SIG, 0)


def _npz(tmp_path: Path, **arrays: np.ndarray) -> Path:
    path = tmp_path / "inputs.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_from_npz_splits_rows_into_batches(tmp_path: Path) -> None:
    path = _npz(
        tmp_path,
        image=np.ones((20, 4, 4, 3), np.float64),
        ids=np.arange(20, dtype=np.int64),
        words=np.array([["a", "b"]] * 20),
    )
    batches = samples.from_npz(path, SIG)
    assert samples.rows(batches) == 20
    assert batches[0]["image"].dtype == np.float32
    assert batches[1]["ids"].tolist() == [16, 17, 18, 19]
    assert batches[0]["words"][0, 1] == b"b"


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"image": np.ones((2, 4, 4, 3))}, "do not match the inputs"),
        (
            {
                "image": np.ones((2, 4, 4, 3)),
                "ids": np.ones(2, np.int32),
                "words": np.array([["a", "b"]] * 2),
                "extra": np.ones(2),
            },
            "do not match the inputs",
        ),
        (
            {
                "image": np.ones((2, 5, 4, 3)),
                "ids": np.ones(2, np.int32),
                "words": np.array([["a", "b"]] * 2),
            },
            "has shape",
        ),
        (
            {
                "image": np.ones((2, 4, 4, 3)),
                "ids": np.ones(2, np.float32),
                "words": np.array([["a", "b"]] * 2),
            },
            "wants int32",
        ),
        (
            {
                "image": np.ones((2, 4, 4, 3)),
                "ids": np.ones(2, np.int32),
                "words": np.ones((2, 2)),
            },
            "must hold strings",
        ),
        (
            {
                "image": np.ones((2, 4, 4, 3)),
                "ids": np.ones(3, np.int32),
                "words": np.array([["a", "b"]] * 2),
            },
            "same, non-zero number of rows",
        ),
    ],
)
def test_from_npz_refuses_mismatches(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        samples.from_npz(_npz(tmp_path, **arrays), SIG)
    assert "\n" not in str(info.value)


def test_from_npz_refuses_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no such file"):
        samples.from_npz(tmp_path / "absent.npz", SIG)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ConfigurationError, match=r"readable \.npz"):
        samples.from_npz(junk, SIG)
