"""The generated results table of bench/README.md: a verdict per target, misses named, the rest of the page kept."""

from __future__ import annotations

import json

import bench.report as report

MACHINE = {"measured_at": "2026-11-26T12:00:00+00:00", "machine": "x86_64, 2 cores, Python 3.11.7"}
COLD = {"import_s": 0.7, "first_request_s": 0.05, "dependencies_import_s": 0.5, "third_party_modules": 448, "rounds": 7}


def test_each_target_gets_its_verdict_and_misses_are_named():
    results = {
        "cold_start": {**COLD, "ratio": 1.6, **MACHINE},
        "purge": {
            "live": 100,
            "expired": 10,
            "purge_s": 2.0,
            "raw_delete_s": 2.5,
            "requests_per_expired": 0.01,
            "live_listed": 0,
            "time_ratio": 0.8,
            **MACHINE,
        },
    }
    table = report.render(results)
    cold_row = next(line for line in table.splitlines() if line.startswith("| cold_start"))
    assert "ratio 1.6 (<= 1.2: **missed**)" in cold_row and "2026-11-26, x86_64" in cold_row
    purge_row = next(line for line in table.splitlines() if line.startswith("| purge"))
    assert "**missed**" not in purge_row and "time ratio 0.8 (<= 1.5: met)" in purge_row
    assert "| pixel | not run yet" in table
    assert table.endswith("Missed on these runs: cold_start ratio.")


def test_a_load_with_any_reconciliation_failure_is_a_miss():
    load = {
        "requests": 10,
        "seconds": 1.0,
        "concurrency": 2,
        "tenants": 1,
        "throughput_per_s": 10.0,
        "endpoints": {"pixel": {"count": 10, "p50_ms": 5.0, "p99_ms": 9.0}},
        "statuses": {"pixel": {"200": 10}},
        "reconciliation": {"missing": 0, "duplicated": 0, "wrong_id": 0, "numbers_twice": 1, "unknown_tenant_blobs": 0},
        **MACHINE,
    }
    assert "reconciliation failures 1 (<= 0: **missed**)" in report.render({"load": load})


def test_the_readme_table_is_replaced_between_its_markers_only(tmp_path, monkeypatch):
    readme, results = tmp_path / "README.md", tmp_path / "results.json"
    readme.write_text(f"# Benchmarks\nintro\n{report.START}\nold table\n{report.END}\nafter\n")
    results.write_text(json.dumps({"cold_start": {**COLD, "ratio": 1.2, **MACHINE}}))
    monkeypatch.setattr(report, "README", readme)
    monkeypatch.setattr(report, "RESULTS", results)
    report.update_readme()
    text = readme.read_text()
    assert text.startswith("# Benchmarks\nintro\n") and text.endswith(f"{report.END}\nafter\n")
    assert "old table" not in text and "ratio 1.2 (<= 1.2: met)" in text


def test_the_delivery_row_has_its_three_targets():
    delivery = {
        "records": 8000,
        "rate": 190.0,
        "raw_rate": 200.0,
        "ratio": 0.95,
        "op_ms": 20.0,
        "rate_no_service_time": 150.0,
        "raw_rate_no_service_time": 4000.0,
        "ratio_no_service_time": 0.04,
        "requests_per_record": 0.001,
        "steady_rate": 50,
        "steady_seconds": 180,
        "interval_s": 60,
        "p50_s": 50.0,
        "p99_s": 130.0,
        "p99_over_interval": 2.167,
        "not_deleted": 0,
        **MACHINE,
    }
    row = next(line for line in report.render({"delivery": delivery}).splitlines() if line.startswith("| delivery"))
    assert "ratio 0.95 (>= 0.7: met)" in row and "Dataverse requests per record 0.001 (<= 0.01: met)" in row
    assert "capture-to-deleted p99 / interval 2.167 (<= 2: **missed**)" in row


def test_one_browser_taken_for_a_bot_is_a_miss_of_the_bots_benchmark():
    bots = {
        "list_version": "1.67.0",
        "recall": 1.0,
        "recall_all_examples": 0.998,
        "examples": 2123,
        "bot_examples": 2119,
        "missed_patterns": [],
        "browsers": 130,
        "false_positives": ["Mozilla/5.0 ... Firefox/150.0"],
        "per_call_us": 30.0,
        "plain_per_call_us": 900.0,
        "cost_ratio": 0.033,
        "build_ms": 40.0,
        **MACHINE,
    }
    row = next(line for line in report.render({"bots": bots}).splitlines() if line.startswith("| bots"))
    assert "recall 1.0 (>= 0.99: met)" in row and "false positives 1 (<= 0: **missed**)" in row
    assert "cost ratio 0.033 (<= 0.1: met)" in row
