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

from bench.bots import MAX_COST_RATIO, MIN_RECALL
from bench.common import RESULTS
from bench.cost import render as render_cost
from bench.parsers import MAX_RATIO
from devenv.azurite import ROOT

README = ROOT / "bench" / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
COST_START, COST_END = "<!-- cost:start -->", "<!-- cost:end -->"  # bench/cost.py's table, from the same results


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
            + (
                f"; against the modules imported with the collector off too, as the app imports "
                f"({r['dependencies_import_collector_off_s']} s): ratio {r['ratio_collector_off_on_both_sides']}"
                if "ratio_collector_off_on_both_sides" in r
                else ""
            )
            + (
                f"; within the import, the bot matcher "
                f"{r['bot_matcher_import_s']} s, phonenumbers {r['phonenumbers_import_s']} s"
                if "bot_matcher_import_s" in r
                else ""
            )
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
    "bots": (
        lambda r: (
            f"crawler-user-agents {r['list_version']}: {r['bot_examples']:,} bot examples ("
            f"{r['recall_all_examples']} of all {r['examples']:,}, mail image proxies counted as people); "
            f"{r['browsers']} browser user agents; is_bot {r['per_call_us']} us a call vs {r['plain_per_call_us']} us "
            f"for the plain alternation; matcher built in {r['build_ms']} ms"
            + (
                f" ({r['whole_expression_per_call_us']} us a call and {r['whole_expression_compile_ms']} ms to compile "
                f"for the whole expression)"
                if "whole_expression_per_call_us" in r
                else ""
            )
        ),
        (
            Check("recall", "recall", ">=", MIN_RECALL),
            Check("false positives", "false_positive_count", "<=", 0),
            Check("cost ratio", "cost_ratio", "<=", MAX_COST_RATIO),
        ),
    ),
    "links": (
        lambda r: (
            f"{r['rate']:.0f} redirects/s vs {r['raw_rate']:.0f} raw uploads/s; {r['requests_per_redirect']} storage "
            f"requests per followed link; p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms"
        ),
        (Check("ratio", "ratio", ">=", 0.6), Check("storage requests per redirect", "requests_per_redirect", "<=", 1)),
    ),
    "email_events": (
        lambda r: (
            f"a signed {r['events']:,}-event batch in {r['batch_s']} s vs {r['raw_s']} s raw uploads of the same "
            f"records ({r['writers']} writers each); per-event marker+record pairs {r['raw_pairs_s']} s; "
            f"verification {r['verify_us_per_event']} us per event; {r['requests_per_event']} storage requests "
            "per event"
        ),
        (Check("ratio", "ratio", ">=", 0.6),),
    ),
    "graph_upload": (
        lambda r: (
            f"{r['files']} files, {r['megabytes']} MB (1 KB to 40 MB): {r['mb_per_s']} MB/s through GraphClient vs "
            f"{r['raw_mb_per_s']} MB/s of plain requests PUTs to the same fake Graph; {r['requests_per_round']} "
            f"requests; a {r['large_mb']} MB file read from disk by ranges: RSS {r['idle_rss_mb']} MB idle, "
            f"{r['peak_rss_mb']} MB at peak, {r['large_mb_per_s']} MB/s"
        ),
        (
            Check("ratio", "ratio", ">=", 0.7),
            Check("peak RSS above idle (MB)", "rss_growth_mb", "<=", 64),
        ),
    ),
    "concurrency": (
        lambda r: (
            "one host, as many worker threads as clients, "
            + (
                f"alone on {r['host_cores']} core with storage {r['storage_rtt_ms']:g} ms away (the instance model), "
                if "storage_rtt_ms" in r
                else ""
            )
            + f"at the Bicep's perInstanceConcurrency "
            f"{r['bicep_concurrency']} (knee: pixel {r['knee']['pixel']}, form {r['knee']['form']}); "
            + "; ".join(
                f"{kind} "
                + ", ".join(
                    f"{level}: {p['captures_per_s']:.0f}/s {p['cpu_ms_per_capture']:.2f} CPU ms "
                    f"p50 {p['p50_ms']:.0f} p99 {p['p99_ms']:.0f} ms"
                    for level, p in sorted(curve.items(), key=lambda item: int(item[0]))
                )
                for kind, curve in r["levels"].items()
            )
            + (
                f"; the most one core could give over concurrency 1: {r['core_bound_speedup']}; load generator and "
                f"storage saturated: {r['load_limited']}; on loopback, every process on every core: "
                f"{r['loopback']['speedup']} x, p99 {r['loopback']['p99_ratio']} x"
                if "loopback" in r
                else ""
            )
            + (
                f"; the load side's CPU ms per capture at {r['bicep_concurrency']}: {r['load_cpu_ms_by_part']}, its "
                f"core busy {r['load_cores_busy']} (this benchmark's processes {r['load_cores_busy_own']})"
                if "load_cpu_ms_by_part" in r
                else ""
            )
            + (
                f"; the host's core busy {r['host_cores_busy']} (the host itself {r['host_cores_busy_own']})"
                if "host_cores_busy" in r
                else ""
            )
            + (
                f"; Azurite's own mean ms a request, at 1 and at {r['bicep_concurrency']}: {r['storage_mean_ms']}, "
                f"{r['storage_requests_per_capture']} a capture; derived, not measured (storage that does not "
                f"queue): host-side speedup {r['host_side_speedup']} x"
                if "host_side_speedup" in r
                else ""
            )
        ),
        (
            Check("captures/s vs concurrency 1", "min_speedup", ">=", 8),
            Check("p99 vs concurrency 1", "max_p99_ratio", "<=", 2),
        ),
    ),
    "cost": (
        lambda r: (
            f"$ per million operations at {r['deployment']['max_instances']} instances x "
            f"{r['deployment']['concurrency']} at once, {r['deployment']['memory_gb'] * 1024:.0f} MB, prices of "
            f"{r['prices']['looked_up']}: "
            + ", ".join(f"{row['name']} {row['total']:.2f} ({row['dominant']})" for row in r["rows"])
            + " (the table below, and docs/capacity.md)"
        ),
        (),
    ),
    "mailchimp": (
        lambda r: (
            f"{r['members']:,} members pushed at {r['rate']:.0f}/s through PackCloud vs {r['raw_rate']:.0f}/s raw PUTs "
            f"of the same bodies, both at 10 connections, the fake answering after {r['latency_ms']:.0f} ms "
            f"(ratio {r['ratio_without_latency']} with none); most at once {r['max_in_flight']}"
        ),
        (Check("ratio", "ratio", ">=", 0.8), Check("connections at once", "max_in_flight", "<=", 10)),
    ),
    "attachments": (
        lambda r: (
            f"{r['files']} files, {r['megabytes']} MB, from the fake Dataverse into the fake Graph: "
            f"{r['mb_per_s']} MB/s through the mover (listing, block downloads, uploads, size and hash check, "
            f"the body cleared) vs "
            f"{r['raw_mb_per_s']} MB/s downloading and uploading alone; a {r['large_mb']} MB file: peak RSS "
            f"{r['peak_rss_mb']} MB over {r['idle_rss_mb']} MB idle, {r['large_mb_per_s']} MB/s"
        ),
        (Check("ratio", "ratio", ">=", 0.7), Check("RSS growth MB", "rss_growth_mb", "<=", 64)),
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
    if key == "bots":
        return {**result, "false_positive_count": len(result["false_positives"])}
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
        verdicts = "; ".join(check.render(result) for check in checks) or "no target: a model"
        lines.append(f"| {key} | {verdicts} | {details(result)} | {result['measured_at'][:10]}, {result['machine']} |")
        misses += [f"{key} {check.label}" for check in checks if check.met(result) is False]
    lines.append("")
    lines.append("Missed on these runs: " + (", ".join(misses) if misses else "none") + ".")
    return "\n".join(lines)


def _replace_block(text: str, start: str, end: str, block: str) -> str:
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    return f"{before}{start}\n{block}\n{end}{after}"


def update_readme() -> str:
    results = json.loads(RESULTS.read_text())
    table = render(results)
    text = _replace_block(README.read_text(), START, END, table)
    if "cost" in results and COST_START in text:
        text = _replace_block(text, COST_START, COST_END, render_cost(results["cost"]["rows"]))
    README.write_text(text)
    return table


if __name__ == "__main__":
    print(update_readme())
