"""The capacity and cost model's arithmetic (bench/cost.py) on a small fixed input, worked out by hand."""

from __future__ import annotations

import pytest

from bench.cost import Deployment, Operation, Prices, ceiling_per_s, cost_per_million, model, render

PRICES = Prices(
    looked_up="test",
    gb_second=0.00001,
    execution=0.000001,
    write=0.00001,
    read=0.000001,
    list=0.00002,
    other=0.000001,
    delete=0.0,
    capacity_gb_month=0.02,
    index_tag_month=0.000001,
)
DEPLOYMENT = Deployment(max_instances=10, concurrency=4, memory_gb=2.0, cores=1.0)
REQUESTS = {"write": 1, "read": 2, "tag_query": 1, "delete": 3, "batch": 1}
CAPTURE = Operation("capture", REQUESTS, record_bytes=1000, tags=5, executions=1, wall_ms=20, cpu_ms=3)


def test_an_http_operation_costs_its_share_of_an_instance_its_requests_and_its_stored_days():
    cost = cost_per_million(CAPTURE, PRICES, DEPLOYMENT)
    # 20 ms wall at 4 at once: 5 ms of a 2 GB instance (CPU, 3 ms on 1 core, is not the limit), plus 1 execution.
    assert cost.compute == pytest.approx((2 * 0.005 * 0.00001 + 0.000001) * 1e6)  # 1.1
    # 1 write, 2 reads, a tag query billed as a list, free deletions, a batch billed as "other".
    assert cost.storage_ops == pytest.approx((0.00001 + 2 * 0.000001 + 0.00002 + 0 + 0.000001) * 1e6)  # 33
    # 1,000 bytes and 5 tags for 30 days (the longest retention): one month of each.
    assert cost.capacity == pytest.approx((1000 / 1e9 * 0.02 + 5 * 0.000001) * 1e6)  # 5.02
    assert cost.total == pytest.approx(1.1 + 33 + 5.02)
    assert cost.dominant == "storage operations"
    assert ceiling_per_s(CAPTURE, DEPLOYMENT) == pytest.approx(10 / 0.005)  # 2,000 requests/s for the region


def test_the_cpu_bounds_an_instance_when_it_is_the_slower_side():
    busy = Operation("busy", {}, 0, 0, 1, wall_ms=8, cpu_ms=3)  # 8 / 4 = 2 ms of wall, but 3 ms of the core
    assert ceiling_per_s(busy, DEPLOYMENT) == pytest.approx(10 / 0.003)
    assert cost_per_million(busy, PRICES, DEPLOYMENT).compute == pytest.approx((2 * 0.003 * 0.00001 + 0.000001) * 1e6)


def test_timer_work_has_the_instance_to_itself_and_no_ceiling():
    purge = Operation("purge", {"tag_query": 0.002}, 0, 0, 0.002, wall_ms=2, cpu_ms=1, http=False)
    cost = cost_per_million(purge, PRICES, DEPLOYMENT)
    assert cost.compute == pytest.approx((2 * 0.002 * 0.00001 + 0.002 * 0.000001) * 1e6)  # 0.042
    assert cost.storage_ops == pytest.approx(0.002 * 0.00002 * 1e6)  # 0.04
    assert cost.capacity == 0
    assert ceiling_per_s(purge, DEPLOYMENT) is None


def test_the_table_shows_each_term_and_the_dominant_one():
    rows = model([CAPTURE], PRICES, DEPLOYMENT)
    assert rows == [
        {
            "name": "capture",
            "compute": 1.1,
            "storage_ops": 33.0,
            "capacity": 5.02,
            "total": 39.12,
            "dominant": "storage operations",
            "ceiling_per_s": 2000,
        }
    ]
    assert "| capture | 1.10 | 33.00 | 5.02 | 39.12 | storage operations | 2,000 requests/s |" in render(rows)


def test_the_results_table_shows_the_concurrency_targets_and_the_model_without_one():
    import bench.report as report

    machine = {"measured_at": "2026-11-27T09:00:00+00:00", "machine": "x86_64, 2 cores, Python 3.11.7"}
    point = {"captures_per_s": 100.0, "cpu_ms_per_capture": 2.0, "p50_ms": 5.0, "p99_ms": 9.0}
    concurrency = {
        "levels": {"pixel": {"1": point, "8": point}, "form": {"1": point, "8": point}},
        "bicep_concurrency": 8,
        "knee": {"pixel": 8, "form": 4},
        "min_speedup": 8.5,
        "max_p99_ratio": 2.5,
        **machine,
    }
    rows = model([CAPTURE], PRICES, DEPLOYMENT)
    cost = {"deployment": {"max_instances": 10, "concurrency": 4, "memory_gb": 2.0}, "prices": {"looked_up": "x"}}
    table = report.render({"concurrency": concurrency, "cost": {**cost, "rows": rows, **machine}})
    line = next(row for row in table.splitlines() if row.startswith("| concurrency"))
    assert (
        "captures/s vs concurrency 1 8.5 (>= 8: met)" in line and "p99 vs concurrency 1 2.5 (<= 2: **missed**)" in line
    )
    cost_line = next(row for row in table.splitlines() if row.startswith("| cost"))
    assert "no target: a model" in cost_line and "capture 39.12 (storage operations)" in cost_line
    assert "concurrency p99 vs concurrency 1" in table.splitlines()[-1]
