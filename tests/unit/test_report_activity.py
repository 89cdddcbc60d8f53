"""The DPO report's counts from audit entries, its drawings and its page, without storage."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from shared.lifecycle import activity
from shared.lifecycle.report_chart import activity_chart, retention_bar
from shared.lifecycle.report_page import SECTIONS, render_html

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def captures(at: str, hour: str, count: object) -> dict:
    return {"at": at, "kind": "captures", "dataset": "visits", "hour": hour, "count": count}


def entries() -> list[dict]:
    return [
        captures("2026-11-20T11:00:01+00:00", "2026-11-20T10:00Z", 4),
        # Written after midnight, for the hour before it: counted on the capture's day.
        captures("2026-11-21T00:00:05+00:00", "2026-11-20T23:00Z", 2),
        captures("2026-10-01T10:00:00+00:00", "2026-10-01T09:00Z", 9),
        {"at": "2026-11-21T08:00:00+00:00", "kind": "delivery", "dataset": "visits", "acknowledged": 5, "deleted": 4},
        {"at": "2026-11-22T08:00:00+00:00", "kind": "delivery", "dataset": "leads", "via": "dataverse",
         "acknowledged": 3, "deleted": 3, "refused": 2},
        {"at": "2026-11-23T01:05:00+00:00", "kind": "purge", "deleted": 3, "datasets": [
            {"tenant": "t", "dataset": "visits", "deleted_expired": 2, "deleted_over_retention": 1,
             "deleted_for_delivery": 4}]},
        {"at": "2026-11-24T12:00:00+00:00", "kind": "erasure", "request": "r1", "records": 2, "state": 1,
         "datasets": {"visits": 1, "leads": 1}},
        {"at": "2026-11-24T12:00:01+00:00", "kind": "export", "request": "r2", "records": 5, "state": 0},
        {"at": "2026-11-02T12:00:00+00:00", "kind": "erasure", "request": "r0", "records": 1, "state": 0},
        captures("2026-11-25T12:00:00+00:00", "x", "7"),
    ]  # fmt: skip


def test_each_number_comes_from_its_entry_kind_and_day():
    by_dataset = activity.dataset_activity(entries(), NOW)
    visits = {day["date"]: day for day in by_dataset["visits"]}
    assert len(visits) == activity.WINDOW_DAYS and min(visits) == "2026-10-29" and max(visits) == "2026-11-27"
    assert visits["2026-11-20"]["captured"] == 6
    assert visits["2026-11-21"]["delivered"] == 4  # the records deleted, not the ids acknowledged
    assert visits["2026-11-23"]["purged"] == 3  # expired and over retention; delivered ones are counted as delivered
    assert visits["2026-11-24"]["erased"] == 1
    assert activity.totals(by_dataset["visits"]) == {
        "captured": 6,  # the October hour is outside the window, the malformed entry counts nothing
        "delivered": 4,
        "purged": 3,
        "erased": 1,
        "refused": 0,
    }
    leads = activity.totals(by_dataset["leads"])
    assert leads == {"captured": 0, "delivered": 3, "purged": 0, "erased": 1, "refused": 2}


def test_subject_requests_are_counted_per_week_without_a_subject():
    weeks = activity.subject_requests(entries(), NOW)
    assert [w["week_of"] for w in weeks] == ["2026-10-29", "2026-11-02", "2026-11-09", "2026-11-16", "2026-11-23"]
    assert weeks[1] == {"week_of": "2026-11-02", **dict.fromkeys(activity.REQUEST_COUNTS, 0)} | {
        "erasures": 1,
        "erased_records": 1,
    }
    assert weeks[-1]["exports"] == 1 and weeks[-1]["exported_records"] == 5
    assert (weeks[-1]["erasures"], weeks[-1]["erased_records"], weeks[-1]["erased_state"]) == (1, 2, 1)


def test_the_last_purge_run_says_what_it_deleted_for_this_tenant_only():
    runs = [
        {"at": "a", "complete": True, "duration_s": 1, "datasets": []},
        {"at": "b", "complete": False, "duration_s": 240, "datasets": [
            {"tenant": "t", "dataset": "visits", "deleted_expired": 1, "deleted_over_retention": 2},
            {"tenant": "other", "dataset": "visits", "deleted_expired": 50, "deleted_over_retention": 0}]},
    ]  # fmt: skip
    run, deleted = activity.last_purge(runs, "t")
    assert run == {"at": "b", "complete": False, "duration_s": 240} and deleted == {"visits": 3}
    assert activity.last_purge([], "t") == (None, {})


def test_the_chart_says_its_numbers_and_needs_nothing_outside_the_page():
    days = activity.empty_activity(NOW)
    days[3]["captured"], days[4]["captured"], days[10]["erased"] = 7, 2, 1
    svg = activity_chart('v<"x>', days)
    assert "captured 9 in all, at most 7 a day" in svg and "erased 1 in all" in svg
    assert '<"x>' not in svg and "&lt;&quot;x&gt;" in svg
    assert not re.search(r"href|<script|url\(|<image", svg)
    assert svg.count("<rect") == 3  # a bar only where something happened
    assert 'fill="#c62828"' in retention_bar(0.95) and 'fill="#c62828"' not in retention_bar(0.9)


def report(**dataset: object) -> dict:
    days = activity.empty_activity(NOW)
    base = {
        "dataset": "visits",
        "capability": "pixel",
        "purpose": "<b>leads</b>",
        "legal_basis": "consent",
        "retention_days": 10,
        "controller": {"name": "C", "email": "c@example.com"},
        "dpo": None,
        "subject_field": None,
        "fields": [{"name": "page_url", "type": "url", "personal": False, "required": True}],
        "keep_url_query": False,
        "notice": "/api/notice/t-1/visits",
        "allowed_origins": [],
        "records_held": 0,
        "records_held_more": False,
        "oldest_record_age_s": None,
        "retention_used": None,
        "last_30_days": activity.totals(days),
        "activity": days,
        "last_purge": None,
        "personal_state": [],
        "delivery": {"mode": "pull"},
    }
    return {
        "tenant": "t-1",
        "name": "Contoso",
        "region": "eu",
        "generated_at": NOW.isoformat(),
        "processor": "PackCloud",
        "window_days": 30,
        "last_purge": None,
        "audit_chain": {"verified": True, "entries": 3, "detail": "chain intact", "since": "2026-10-29"},
        "delivery_target": None,
        "subject_requests": activity.subject_requests([], NOW),
        "datasets": [{**base, **dataset}],
    }


def test_a_dataset_without_records_says_so_instead_of_an_age():
    page = render_html(report())
    assert "Oldest record</dt><dd>no records held" in page and " s</dd>" not in page


def test_the_age_is_drawn_against_the_retention_and_flagged_past_90_percent():
    page = render_html(report(records_held=3, oldest_record_age_s=9.5 * 86400, retention_used=0.95))
    assert "9.5 days of 10 days (95%)" in page and "past 90%" in page and "#c62828" in page
    calm = render_html(report(records_held=3, oldest_record_age_s=1800, retention_used=0.002))
    assert "30 min of 10 days (0%)" in calm and "past 90%" not in calm


def test_the_page_escapes_links_the_notice_and_prints_a_header_on_every_page():
    page = render_html(report())
    assert "<b>leads</b>" not in page and "&lt;b&gt;leads&lt;/b&gt;" in page
    assert '<a href="/api/notice/t-1/visits">' in page and "keep_url_query: false" in page
    assert "@page" in page and '@top-left{content:"Record of processing: tenant t-1, region eu"' in page


def test_a_section_is_one_function_appended_to_the_list():
    def notifications(report: dict) -> str:
        return '<section aria-labelledby="n"><h2 id="n">DPO notifications</h2></section>'

    page = render_html(report(), [*SECTIONS, notifications])
    assert page.index("Data-subject requests") < page.index("DPO notifications") < page.index("</main>")
