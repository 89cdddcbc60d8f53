"""The measurement the capture benchmarks share (bench/common.py): what it runs in which order and what it reports
under the keys bench/report.py reads."""

from __future__ import annotations

import bench.report as report
from bench.common import Load, against_raw


def test_a_warm_up_then_interleaved_rounds_the_best_of_each_and_the_latencies_of_every_round():
    ran: list[str] = []
    loads = iter([Load(1, 1.0, [999.0]), Load(200, 2.0, [1.0, 2.0]), Load(300, 2.0, [3.0, 4.0])])
    raw_rates = iter([150.0, 120.0])

    def load() -> Load:
        ran.append("load")
        return next(loads)

    def raw() -> float:
        ran.append("raw")
        return next(raw_rates)

    result = against_raw(load, raw, rounds=2)
    assert ran == ["load", "raw", "load", "raw", "load"]  # the warm-up first, then each round raw, then the load
    assert result == {"rate": 150.0, "raw_rate": 150.0, "ratio": 1.0, "p50_ms": 3.0, "p99_ms": 4.0}  # no warm-up


def test_its_keys_are_those_the_report_reads_for_the_capture_benchmarks():
    machine = {"measured_at": "2026-11-27T12:00:00+00:00", "machine": "x86_64, 2 cores, Python 3.11.7"}
    measured = against_raw(lambda: Load(60, 1.0, [5.0]), lambda: 100.0, rounds=1)
    results = {
        "pixel": {**measured, "writes_per_hit": 1.0, "clients": 16, **machine},
        "webform": {**measured, "writes_per_submission": 1.0, "writes_per_keyed_submission": 2.0, **machine},
        "links": {**measured, "requests_per_redirect": 1.0, "clients": 16, **machine},
    }
    table = report.render(results)
    for name in results:
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} "))
        assert "60 " in row and "100 raw uploads/s" in row and "ratio 0.6 (" in row and "p99 5 ms" in row, row
