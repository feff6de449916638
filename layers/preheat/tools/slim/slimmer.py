"""`slim`: turn a SavedModel into a smaller artifact whose parity with the source is measured.

The artifact is written into a temporary directory beside OUT and renamed into place only
once its parity is proven, so a failed run never leaves something that looks like a result.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preheat.artifact import manifest as mf
from preheat.exceptions import ConfigurationError, ToleranceExceeded, UnsupportedModel
from preheat.tools.slim import convert, exact, parity
from preheat.tools.slim import inputs as sampling
from preheat.tools.slim.inputs import Batch

Progress = Callable[[str], None]
RUNTIMES = ("auto", "tensorflow", "litert")
LITERT_MODEL = "model.tflite"
# What --precision means when it is not given.
DEFAULT_PRECISION: Mapping[str, str] = {"tensorflow": "exact", "litert": "fp16", "auto": "fp16"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class SlimResult:
    manifest: mf.Manifest
    report: dict[str, Any]
    out: Path
    notes: list[str] = field(default_factory=list)


def _check_name(what: str, value: str) -> str:
    if not _NAME.match(value):
        raise ConfigurationError(
            what,
            value,
            "use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return value


def _check_out(src: Path, out: Path, force: bool) -> None:
    s, o = src.resolve(), out.resolve()
    if o == s or s in o.parents or o in s.parents:
        raise ConfigurationError("OUT", str(out), "must lie outside SRC (and not contain it)")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        if not force:
            raise ConfigurationError("OUT", str(out), "exists and is not a directory; add --force")
    elif out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigurationError(
            "OUT", str(out), "exists and is not empty; choose another or add --force to replace it"
        )


def _signatures(loaded: Any) -> tuple[mf.Signature, tuple[mf.Signature, ...]]:
    from preheat.runtimes.tensorflow import SERVING_KEY, signature_of

    sigs = dict(loaded.signatures)
    if not sigs:
        raise UnsupportedModel(
            "the SavedModel has no serving signature; export it with model.export(path) "
            "(Keras 3) or tf.saved_model.save(..., signatures=...)"
        )
    key = SERVING_KEY if SERVING_KEY in sigs else sorted(sigs)[0]
    main = signature_of(key, sigs[key])
    return main, tuple(signature_of(k, sigs[k]) for k in sorted(sigs) if k != key)


def _samples(
    loaded: Any,
    src: Path,
    sigs: Sequence[mf.Signature],
    count: int,
    seed: int,
    sample_inputs: Path | None,
) -> tuple[dict[str, list[Batch]], str]:
    vocab = (
        exact.vocabulary(loaded, src)
        if any(t.dtype == "string" for s in sigs for t in s.inputs)
        else []
    )
    out = {s.key: sampling.generate(s, count, seed, vocab) for s in sigs}
    how = f"random (seed {seed}" + (f", {len(vocab)} vocabulary words)" if vocab else ")")
    if sample_inputs is not None:
        # The user's data feeds the serving signature; the others keep seeded inputs.
        out[sigs[0].key] = sampling.from_npz(sample_inputs, sigs[0])
        how = f"file {sample_inputs.name}"
    return out, how


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _try_litert(
    src: Path,
    tmp: Path,
    sigs: Sequence[mf.Signature],
    precision: str,
    tolerance: parity.Tolerance,
    sample_sets: Mapping[str, Sequence[Batch]],
    reference: Mapping[str, Sequence[dict[str, Any]]],
    progress: Progress,
) -> dict[str, Any]:
    # The artifact serves one signature; LiteRT carries that one (Keras adds a `serve` alias).
    main = sigs[0]
    why = convert.expressible([main])
    if why:
        raise UnsupportedModel(why)
    progress(f"converting to LiteRT {precision}")
    flat = convert.convert(src, [main.key], precision)
    (tmp / LITERT_MODEL).write_bytes(flat)
    progress("checking parity with the LiteRT interpreter that ships (ai_edge_litert)")
    ref = {main.key: reference[main.key]}
    report = parity.compare(ref, convert.run(tmp / LITERT_MODEL, {main.key: sample_sets[main.key]}))
    report["dropped_signatures"] = [s.key for s in sigs[1:]]
    miss = parity.misses(report, tolerance)
    if miss:
        raise ToleranceExceeded(
            f"LiteRT {precision} misses the tolerance: {miss} on {sampling.rows(sample_sets[sigs[0].key])} "
            "samples; try a wider --precision (fp32), a looser --max-rel-error, or --runtime tensorflow",
            precision=precision,
            report=report,
        )
    return report


def _exact(
    loaded: Any,
    tmp: Path,
    sigs: Sequence[mf.Signature],
    sample_sets: Mapping[str, Sequence[Batch]],
    reference: Mapping[str, Sequence[dict[str, Any]]],
    progress: Progress,
) -> dict[str, Any]:
    progress("re-saving the serving signatures with each variable once")
    kept = exact.resave(loaded, tmp)
    progress("checking the re-saved model is bit-identical")
    again = exact.load(tmp)
    main, others = _signatures(again)
    if (main, others) != (sigs[0], tuple(sigs[1:])):
        raise ToleranceExceeded(
            "the re-saved model's signatures differ from the source's; slim with --runtime litert "
            "or ship the source as it is",
            precision="exact",
        )
    report = parity.compare(reference, exact.run(again, sample_sets))
    if not report["bit_identical"]:
        raise ToleranceExceeded(
            "the re-saved model's outputs are not bit-identical to the source's "
            f"(max absolute error {report['max_abs_error']:.3g}); ship the source as it is",
            precision="exact",
            report=report,
        )
    report["kept"] = kept
    return report


def _clear(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _place(tmp: Path, out: Path) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        out.unlink()
    elif out.exists():
        # Move the old one aside first so that OUT is never half old, half new.
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.replace(out, old / "x")
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
        return
    os.replace(tmp, out)


def slim(
    src: Path,
    out: Path,
    *,
    runtime: str = "auto",
    precision: str | None = None,
    max_abs_error: float | None = None,
    max_rel_error: float | None = None,
    samples: int = 16,
    sample_inputs: Path | None = None,
    name: str | None = None,
    version: str | None = None,
    force: bool = False,
    seed: int = 0,
    progress: Progress | None = None,
) -> SlimResult:
    """Slim the SavedModel at `src` into an artifact at `out`; raise if parity is not met."""
    say: Progress = progress or (lambda _msg: None)
    src, out = Path(src), Path(out)
    if runtime not in RUNTIMES:
        raise ConfigurationError("runtime", runtime, f"use one of {', '.join(RUNTIMES)}")
    precision = precision or DEFAULT_PRECISION[runtime]
    if precision not in mf.PRECISIONS:
        raise ConfigurationError("precision", precision, f"use one of {', '.join(mf.PRECISIONS)}")
    if runtime == "tensorflow" and precision != "exact":
        raise ConfigurationError(
            "precision",
            precision,
            "the tensorflow runtime keeps exact; use --runtime litert for it",
        )
    if runtime == "litert" and precision == "exact":
        raise ConfigurationError(
            "precision", precision, "LiteRT converts at fp32, fp16 or int8; exact is for tensorflow"
        )
    if precision == "exact" and (max_abs_error is not None or max_rel_error is not None):
        raise ConfigurationError(
            "max-abs-error" if max_abs_error is not None else "max-rel-error",
            max_abs_error if max_abs_error is not None else max_rel_error,
            "exact takes no tolerance: its outputs must be bit-identical",
        )
    requested = precision
    tolerance = parity.Tolerance.for_precision(precision, max_abs_error, max_rel_error)
    if not src.is_dir():
        raise UnsupportedModel(f"{src} is not a directory; give a SavedModel directory")
    _check_out(src, out, force)
    if name is not None:
        _check_name("name", name)
    if version is not None:
        _check_name("version", version)

    say(f"reading {src.name}")
    source_files = mf.scan_files(src)  # refuses symlinks, which could pull in foreign bytes
    source_bytes = sum(f.size for f in source_files)
    source: dict[str, Any] = {
        "fingerprint": mf.fingerprint(source_files),
        "bytes": source_bytes,
        "files": len(source_files),
        "name": src.name,
    }
    loaded = exact.load(src)
    main, others = _signatures(loaded)
    sigs = (main, *others)
    sample_sets, how = _samples(loaded, src, sigs, samples, seed, sample_inputs)
    say("running the source model on the sample inputs")
    reference = exact.run(loaded, sample_sets)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        chosen, reason = runtime, ""
        if runtime == "litert":
            report = _try_litert(src, tmp, sigs, precision, tolerance, sample_sets, reference, say)
            reason = "asked for litert"
        elif runtime == "tensorflow" or precision == "exact":
            chosen, precision = "tensorflow", "exact"
            report = _exact(loaded, tmp, sigs, sample_sets, reference, say)
            reason = (
                "asked for tensorflow"
                if runtime == "tensorflow"
                else "precision exact keeps TensorFlow"
            )
        else:
            try:
                report = _try_litert(
                    src, tmp, sigs, precision, tolerance, sample_sets, reference, say
                )
                chosen, reason = "litert", f"LiteRT {precision} is within the tolerance"
            except (UnsupportedModel, ToleranceExceeded) as exc:
                say(f"keeping TensorFlow: {exc}")
                _clear(tmp)
                chosen, precision = "tensorflow", "exact"
                report = _exact(loaded, tmp, sigs, sample_sets, reference, say)
                reason = f"kept TensorFlow: {exc}"
        artifact_bytes = _dir_bytes(tmp)
        report = parity.json_safe(
            {
                **report,
                "samples": sampling.rows(sample_sets[main.key]),
                "sample_inputs": how,
                "tolerance": tolerance.as_dict() if chosen == "litert" else "bit-identical",
                "runtime": chosen,
                "precision": precision,
                "requested": {"runtime": runtime, "precision": requested},
                "reason": reason,
                "source_bytes": source_bytes,
                "artifact_bytes": artifact_bytes,
                "ratio": artifact_bytes / source_bytes if source_bytes else None,
            }
        )
        manifest = mf.build(
            tmp,
            name=name or _default_name(src),
            version=version or str(source["fingerprint"])[:12],
            runtime=chosen,
            precision=precision,
            signature=main,
            signatures=others if chosen == "tensorflow" else (),
            parity=report,
            source=source,
        )
        manifest.write(tmp)
        _place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SlimResult(manifest=manifest, report=report, out=out)


def _default_name(src: Path) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", src.resolve().name).strip(".-_")
    return cleaned[:128] or "model"
