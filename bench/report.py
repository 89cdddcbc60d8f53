"""The results table of bench/README.md, generated from bench/results.json (`make bench` ends with it).

Each benchmark's checks are its targets; the table says for each whether this run met it, so a miss is
printed where the numbers are, not left to a reader's arithmetic.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.common import RESULTS
from bench.parsers import MAX_RATIO
from devenv.azurite import ROOT

README = ROOT / "bench" / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


@dataclass(frozen=True)
class Check:
    label: str
    key: str
    compare: str  # ">=" or "<="
    target: float

    def met(self, result: dict[str, Any]) -> bool | None:
        if self.key not in result:
            return None
        return {">=": operator.ge, "<=": operator.le}[self.compare](result[self.key], self.target)

    def render(self, result: dict[str, Any]) -> str:
        met = self.met(result)
        verdict = {True: "met", False: "**missed**", None: "not measured"}[met]
        value = result.get(self.key, "-")
        return f"{self.label} {value} ({self.compare} {self.target:g}: {verdict})"


Details = Callable[[dict[str, Any]], str]

BENCHMARKS: dict[str, tuple[Details, tuple[Check, ...]]] = {
    "pixel": (
        lambda r: (
            f"{r['rate']:.0f} hits/s vs {r['raw_rate']:.0f} raw uploads/s; "
            f"p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms"
        ),
        (Check("ratio", "ratio", ">=", 0.6), Check("storage requests per hit", "writes_per_hit", "<=", 1)),
    ),
    "webform": (
        lambda r: (
            f"{r['rate']:.0f} submissions/s vs {r['raw_rate']:.0f} raw uploads/s; "
            f"{r['writes_per_keyed_submission']} requests with an Idempotency-Key; "
            f"p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms"
        ),
        (
            Check("ratio", "ratio", ">=", 0.5),
            Check("storage requests per submission", "writes_per_submission", "<=", 1),
        ),
    ),
    "autonumber": (
        lambda r: (
            f"{r['clients']} clients on one sequence: {r['contended_per_s']}/s through the host (p50 "
            f"{r['contended_p50_ms']} ms, p99 {r['contended_p99_ms']} ms) vs {r['baseline_per_s']}/s for the algorithm "
            f"before group commit in process ({r['baseline_busy_share']:.0%} busy, p99 {r['baseline_p99_ms']} ms); "
            f"{r['callers_per_swap']} callers per swap; one client {r['single_per_s']}/s vs raw CAS "
            f"{r['raw_single_per_s']}/s, with keys {r['keyed_per_s']}/s vs {r['raw_keyed_per_s']}/s, with 500 keys "
            f"held ({r['long_list_bytes']:,} bytes) {r['long_list_per_s']}/s vs {r['raw_long_list_per_s']}/s"
        ),
        (
            Check("contended speed-up", "contended_speedup", ">=", 10),
            Check("busy 503s", "contended_busy", "<=", 0),
            Check("duplicates", "contended_duplicates", "<=", 0),
            Check("gaps", "contended_gaps", "<=", 0),
            Check("replay mismatches", "replay_mismatches", "<=", 0),
            Check("single ratio", "single_ratio", ">=", 0.8),
            Check("with keys", "single_ratio_keyed", ">=", 0.8),
            Check("long key list", "single_ratio_long_list", ">=", 0.8),
            Check("count=100 speed-up", "batch_speedup", ">=", 50),
        ),
    ),
    "geologin": (
        lambda r: (
            f"{r['rate']:.0f} sign-ins/s vs {r['raw_rate']:.0f} raw uploads/s and {r['raw_pair_rate']:.0f} raw "
            f"record+state pairs/s (pair ratio {r['pair_ratio']}); {r['requests_per_sign_in']} storage requests per "
            f"sign-in; p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms"
        ),
        (Check("lookups/s", "lookups_per_s", ">=", 100_000), Check("ratio", "ratio", ">=", 0.5)),
    ),
    "purge": (
        lambda r: (
            f"{r['live']:,} live and {r['expired']:,} expired records; {r['purge_s']:.0f} s vs "
            f"{r['raw_delete_s']:.0f} s raw batch deletion"
        ),
        (
            Check("requests per expired record", "requests_per_expired", "<=", 0.02),
            Check("live records listed", "live_listed", "<=", 0),
            Check("time ratio", "time_ratio", "<=", 1.5),
        ),
    ),
    "cold_start": (
        lambda r: (
            f"import function_app {r['import_s']} s + first pixel hit {r['first_request_s']} s vs importing "
            f"its {r['third_party_modules']} third-party modules alone {r['dependencies_import_s']} s "
            f"(medians of {r['rounds']}); CPU time of the imports alone: ratio {r.get('cpu_import_ratio', '-')}"
        ),
        (Check("ratio", "ratio", "<=", 1.2),),
    ),
    "parsers": (
        lambda r: (
            f"worst {r['worst']}; per parser, the worst body's parse cost over a normal post's, both at the "
            f"{r['limit_bytes']:,}-byte limit: "
            + ", ".join(f"{name} {max(s['ratio'] for s in shapes.values())}" for name, shapes in r["shapes"].items())
        ),
        (Check("worst ratio", "max_ratio", "<=", MAX_RATIO),),
    ),
    "delivery": (
        lambda r: (
            f"{r['records']:,} records: {r['rate']:.0f}/s from Azurite into the fake Dataverse vs "
            f"{r['raw_rate']:.0f}/s sending the same $batch bodies alone, at {r['op_ms']:g} ms per upsert "
            f"(with none: {r['rate_no_service_time']:.0f}/s vs {r['raw_rate_no_service_time']:.0f}/s, ratio "
            f"{r['ratio_no_service_time']}); {r['steady_rate']} records/s for {r['steady_seconds']} s, a run every "
            f"{r['interval_s']} s: capture to deletion p50 {r['p50_s']} s, p99 {r['p99_s']} s, "
            f"{r['not_deleted']} not deleted"
        ),
        (
            Check("ratio", "ratio", ">=", 0.7),
            Check("Dataverse requests per record", "requests_per_record", "<=", 0.01),
            Check("capture-to-deleted p99 / interval", "p99_over_interval", "<=", 2),
        ),
    ),
    "load": (
        lambda r: (
            f"{r['requests']:,} requests in {r['seconds']} s, {r['concurrency']} clients, {r['tenants']} "
            f"tenants: {r['throughput_per_s']} answers/s; "
            + "; ".join(
                f"{kind} p50 {n['p50_ms']:.0f} ms, p99 {n['p99_ms']:.0f} ms" for kind, n in r["endpoints"].items()
            )
            + f"; statuses {json.dumps(r['statuses'])}"
        ),
        (Check("reconciliation failures", "reconciliation_failures", "<=", 0),),
    ),
}


def _flatten(key: str, result: dict[str, Any]) -> dict[str, Any]:
    if key == "load":
        reconciliation = result["reconciliation"]
        failures = sum(
            reconciliation[name]
            for name in ("missing", "duplicated", "wrong_id", "numbers_twice", "unknown_tenant_blobs")
        )
        return {**result, "reconciliation_failures": failures}
    return result


def render(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| benchmark | checks against targets | details | measured |",
        "|---|---|---|---|",
    ]
    misses = []
    for key, (details, checks) in BENCHMARKS.items():
        if key not in results:
            lines.append(f"| {key} | not run yet | | |")
            continue
        result = _flatten(key, results[key])
        lines.append(
            f"| {key} | {'; '.join(check.render(result) for check in checks)} | {details(result)} | "
            f"{result['measured_at'][:10]}, {result['machine']} |"
        )
        misses += [f"{key} {check.label}" for check in checks if check.met(result) is False]
    lines.append("")
    lines.append("Missed on these runs: " + (", ".join(misses) if misses else "none") + ".")
    return "\n".join(lines)


def update_readme() -> str:
    results = json.loads(RESULTS.read_text())
    table = render(results)
    text = README.read_text()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    README.write_text(f"{before}{START}\n{table}\n{END}{after}")
    return table


if __name__ == "__main__":
    print(update_readme())
