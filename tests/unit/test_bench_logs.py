"""Reading REPORT lines and init reports out of a function's log."""

from __future__ import annotations

import base64

from preheat.tools.bench.logs import bytes_by_tier, decode_tail, parse, phases_ms

TAIL = "\n".join(
    [
        "INIT_START Runtime Version: python:3.11",
        '{"level":"INFO","message":"preheat init","init":{"runtime_import_s":1.5,'
        '"fetch_s":0.9,"fetch_wait_s":0.0,"load_s":0.25,"warmup_s":0.05,'
        '"bytes_by_tier":{"s3":1000,"disk":0},"tier":"s3"}}',
        "START RequestId: r1 Version: $LATEST",
        "END RequestId: r1",
        "REPORT RequestId: r1\tDuration: 12.50 ms\tBilled Duration: 2013 ms\t"
        "Memory Size: 3008 MB\tMax Memory Used: 612 MB\tInit Duration: 2000.25 ms\t",
    ]
)


def test_parse_reads_report_figures_and_init_report() -> None:
    report = parse(TAIL)
    assert report.duration_ms == 12.5
    assert report.init_duration_ms == 2000.25
    assert report.max_memory_mb == 612
    assert report.init["tier"] == "s3"


def test_a_warm_report_has_no_init_duration() -> None:
    report = parse("REPORT RequestId: r2\tDuration: 3.00 ms\tMax Memory Used: 600 MB\t")
    assert report.init_duration_ms is None and report.duration_ms == 3.0
    assert report.init == {}


def test_phases_are_named_and_in_milliseconds() -> None:
    init = parse(TAIL).init
    assert phases_ms(init) == {
        "import": 1500.0,
        "fetch wait": 0.0,
        "load": 250.0,
        "warmup": 50.0,
        "fetch": 900.0,
    }
    assert bytes_by_tier(init) == {"s3": 1000, "disk": 0}


def test_broken_lines_are_skipped() -> None:
    assert parse('{"init": oops\n{"init": 3}\n').init == {}
    assert decode_tail(base64.b64encode(b"hello").decode()) == "hello"
    assert decode_tail(None) == ""
