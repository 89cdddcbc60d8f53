"""bench/concurrency.py's derived figure on a small fixed curve: the capture wall time with the growth of storage's
own answer time over concurrency 1's taken out, and the host-side speedup it gives (bench/README.md, concurrency)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.concurrency import host_side, summarise


def point(rate: float, wall_ms: float, storage_mean_ms: float | None, per_capture: float = 1.0) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "captures_per_s": rate,
        "cpu_ms_per_capture": 2.0,
        "load_cpu_ms_per_capture": 3.0,
        "load_cpu_ms_by_part": {"azurite": 2.0, "load_generator": 0.5, "relay": 0.5},
        "load_cores_busy": 0.78,
        "host_cores_busy": 0.53,
        "wall_ms": wall_ms,
        "p50_ms": wall_ms,
        "p99_ms": 2 * wall_ms,
        "requests": 400,
    }
    if storage_mean_ms is not None:
        figures["storage_ms"] = {"p50": storage_mean_ms, "p99": 3 * storage_mean_ms, "mean": storage_mean_ms}
        figures["storage_requests_per_capture"] = per_capture
    return figures


def curve(with_storage: bool = True) -> dict[int, dict[str, Any]]:
    # At 8: a mean wall of 32 ms, of which storage's own time grew by 6.5 - 2.5 = 4 ms a request, 3 requests a
    # capture: 32 - 12 = 20 ms; 8 clients at 20 ms give 400/s, 8 x concurrency 1's 50/s. Measured: 200/s, 4 x.
    return {
        1: point(50.0, 19.0, 2.5 if with_storage else None, 3.0),
        8: point(200.0, 32.0, 6.5 if with_storage else None, 3.0),
    }


def test_the_wall_time_loses_only_storages_growth_times_its_requests_per_capture():
    wall, speedup = host_side(curve(), 8)
    assert wall == pytest.approx(20.0)
    assert speedup == pytest.approx(8.0)


def test_at_concurrency_1_nothing_is_removed():
    wall, speedup = host_side(curve(), 1)
    assert wall == pytest.approx(19.0)
    assert speedup == pytest.approx(1000 / 19.0 / 50.0)  # the clients' own time between captures is not in the wall


def test_storage_that_got_faster_adds_to_the_wall():
    faster = curve()
    faster[8]["storage_ms"]["mean"] = 1.5  # 1 ms less a request, 3 a capture: 35 ms
    assert host_side(faster, 8)[0] == pytest.approx(35.0)


def test_the_summary_gives_the_derived_figures_beside_the_measured_ones():
    summary = summarise({"pixel": curve(), "form": curve()}, 8, load_cores=1, host_shares_them=False, host_cores=1)
    assert summary["speedup"] == {"pixel": 4.0, "form": 4.0}  # measured, unchanged
    assert summary["storage_mean_ms"]["pixel"] == {"1": 2.5, "8": 6.5}
    assert summary["storage_requests_per_capture"]["form"] == 3.0
    assert summary["storage_adjusted_wall_ms"] == {"pixel": 20.0, "form": 20.0}
    assert summary["host_side_speedup"] == {"pixel": 8.0, "form": 8.0}
    assert summary["host_side_speedup_by_level"]["pixel"] == {1: round(1000 / 19.0 / 50.0, 2), 8: 8.0}


def test_a_curve_without_storage_times_has_no_derived_figures():
    summary = summarise({"pixel": curve(False), "form": curve(False)}, 8, load_cores=2, host_shares_them=True)
    assert summary["speedup"] == {"pixel": 4.0, "form": 4.0}
    assert not {"storage_mean_ms", "storage_adjusted_wall_ms", "host_side_speedup"} & summary.keys()
