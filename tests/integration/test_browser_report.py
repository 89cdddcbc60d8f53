"""The DPO report in headless Chromium, for a tenant whose history of 30 days (captures, deliveries, purges and
one erasure) was made with a settable clock: the numbers beside the charts are the audit's, the page needs
nothing its Content-Security-Policy forbids, axe-core finds nothing, and every printed page has its header."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pypdf
import pytest

from devenv.azurite import Azurite
from shared.lifecycle.activity import SERIES
from shared.registry.models import Dataset, TenantIn
from tests.factories import ROOT, all_blobs, running_host, variant

pytestmark = [pytest.mark.browser, pytest.mark.own_azurite]


@pytest.fixture(scope="module")
def host(own_azurite: Azurite) -> Iterator[str]:
    """The local host on this module's Azurite: its thirty days of purges go over every tenant the store holds."""
    with running_host(own_azurite) as url:
        yield url


AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
JANE = "jane-0001"
DAYS = 30
ERASURE_DAY = 4  # days before now


@dataclass
class History:
    tenant: str
    key: str
    # What the test itself did, per dataset and UTC day: the ground truth the audit and the page must show.
    done: dict[str, Counter[tuple[str, str]]] = field(default_factory=lambda: defaultdict(Counter))
    erased: int = 0


@pytest.fixture
def history(services, clock, tenant_id) -> History:
    """Thirty days, each: captures, an acknowledgement of some leads, then a purge run; one erasure of Jane."""
    # Ends shortly before the real now: the local host that serves the page runs on the system clock.
    now = datetime.now(UTC).replace(microsecond=0)
    _, key = services.registry.put_tenant(tenant_id, TenantIn(name="Contoso <DPO> & Co"))
    assert key is not None
    services.registry.put_dataset(tenant_id, "visits", Dataset.model_validate(variant(retention_days=7)))
    leads = variant(retention_days=14, purpose="Call back <b>leads</b>", keep_url_query=True)
    services.registry.put_dataset(tenant_id, "leads", Dataset.model_validate(leads))
    made = History(tenant_id, key)
    targets = {name: services.capture.resolve(tenant_id, name, "pixel") for name in ("visits", "leads")}
    for back in range(DAYS - 1, -1, -1):
        clock.set(now - timedelta(days=back, minutes=40))
        day = clock.now().date().isoformat()
        ids: dict[str, list[str]] = {"visits": [], "leads": []}
        for name, count in (("visits", back % 4 + 1), ("leads", back % 3 + 1)):
            for n in range(count):
                fields = {"page_url": "https://www.contoso.example/pricing", "visitor": JANE if n == 0 else f"v-{n}"}
                ids[name].append(services.capture.capture(targets[name], fields).record.id)
            made.done[name]["captured", day] += count
        clock.advance(timedelta(minutes=10))
        if back % 2 == 0:  # every other day the CRM takes all but the first of the day's leads
            deleted, _ = services.delivery.acknowledge(tenant_id, "leads", ids["leads"][1:])
            made.done["leads"]["delivered", day] += deleted
        if back == ERASURE_DAY:  # what Jane has, per dataset, then her erasure
            exported = services.subject_requests().export(tenant_id, JANE)
            for name, held in exported["datasets"].items():
                made.done[name]["erased", day] += len(held["records"])
            erased = services.subject_requests().erase(tenant_id, JANE)
            assert erased.records > 2 and not erased.more
            made.erased = erased.records
        clock.advance(timedelta(minutes=10))
        services.counts.flush()
        run = services.purger().run()
        for name in ("visits", "leads"):
            counts = run.datasets.get((tenant_id, name))
            if counts is not None:
                made.done[name]["purged", day] += counts.deleted_expired + counts.deleted_over_retention
    assert sum(made.done["visits"][key] for key in made.done["visits"] if key[0] == "purged") > 0
    return made


def audit_counts(azurite, tenant: str) -> dict[str, Counter[tuple[str, str]]]:
    """The same counts read straight from the tenant's audit blobs (only the entries, no PackCloud code)."""
    counts: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    for body in all_blobs(azurite, "audit", f"{tenant}/").values():
        for entry in map(json.loads, body.decode().splitlines()):
            day = entry["at"][:10]
            if entry["kind"] == "captures":
                counts[entry["dataset"]]["captured", entry["hour"][:10]] += entry["count"]
            elif entry["kind"] == "delivery":
                counts[entry["dataset"]]["delivered", day] += entry["deleted"]
            elif entry["kind"] == "purge":
                for item in entry["datasets"]:
                    counts[item["dataset"]]["purged", day] += item["deleted_expired"] + item["deleted_over_retention"]
            elif entry["kind"] == "erasure":
                for dataset, erased in entry["datasets"].items():
                    counts[dataset]["erased", day] += erased
    return counts


def test_the_report_shows_thirty_days_of_the_audit_in_charts_with_their_numbers(
    browser, host, history, services_azurite, tmp_path
):
    tenant = history.tenant
    url = f"{host}/privacy/{tenant}/report"
    context = browser.new_context(
        extra_http_headers={"authorization": f"Bearer {history.key}"}, viewport={"width": 1200, "height": 1400}
    )
    page = context.new_page()
    requests: list[str] = []
    console: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    answer = page.goto(f"{url}?format=html")
    assert answer is not None and answer.status == 200
    assert answer.header_value("content-security-policy") == "default-src 'none'; style-src 'unsafe-inline'"

    audited = audit_counts(services_azurite, tenant)
    report = httpx.get(url, headers={"authorization": f"Bearer {history.key}"}, timeout=30).json()
    shown_days = [day["date"] for day in report["datasets"][0]["activity"]]
    assert len(shown_days) == DAYS
    for name in ("visits", "leads"):
        section = page.locator(f"#d-{name}").locator("xpath=..")
        rows = section.locator("details table tbody tr").evaluate_all(
            "rows => rows.map(row => [...row.cells].map(cell => cell.textContent))"
        )
        table = {row[0]: dict(zip(SERIES, map(int, row[1:]), strict=True)) for row in rows}
        assert list(table) == shown_days
        for series in ("captured", "delivered", "purged", "erased"):
            from_audit = {day: audited[name][series, day] for day in shown_days}
            assert {day: table[day][series] for day in shown_days} == from_audit, (name, series)
            # The audit holds what was done (every day of the history is inside the window).
            done = history.done[name]
            assert sum(from_audit.values()) == sum(n for (s, day), n in done.items() if s == series), (name, series)
        assert all(day["refused"] == 0 for day in table.values())  # pull datasets: nothing is refused
        # The chart's own text equivalent, and the JSON form, carry the same numbers.
        label = section.locator("svg.chart").get_attribute("aria-label") or ""
        totals = {series: sum(day[series] for day in table.values()) for series in SERIES}
        assert f"captured {totals['captured']} in all" in label and f"erased {totals['erased']} in all" in label
        (as_json,) = [d for d in report["datasets"] if d["dataset"] == name]
        assert {day["date"]: {s: day[s] for s in SERIES} for day in as_json["activity"]} == table
        assert as_json["last_30_days"] == totals
        summary = (
            page.locator("#summary").locator("xpath=..").locator("tbody tr", has=page.locator(f"a[href='#d-{name}']"))
        )
        cells = summary.locator("td").all_text_contents()
        assert [int(cells[i]) for i in (2, 3, 4, 5)] == [
            totals[s] for s in ("captured", "delivered", "purged", "refused")
        ]
        assert "verifies" in cells[-1] and "deleted" in cells[-2]
    erased_days = {day for (series, day), n in audited["visits"].items() if series == "erased" and n}
    assert len(erased_days) == 1 and sum(totals_of(audited, "erased")) == history.erased

    # Data-subject requests: one export and one erasure call, with its records, never the subject.
    weeks = (
        page.locator("#requests")
        .locator("xpath=..")
        .locator("tbody tr")
        .evaluate_all("rows => rows.map(row => [...row.cells].map(cell => cell.textContent))")
    )
    assert [sum(int(week[column]) for week in weeks) for column in (1, 4, 5)] == [1, 1, history.erased]
    content = page.content()
    assert JANE not in content and JANE not in json.dumps(report)
    assert "&lt;b&gt;leads&lt;/b&gt;" in content and "(Contoso &lt;DPO&gt; &amp; Co)" in content
    assert f'href="/api/notice/{tenant}/leads"' in content and "keep_url_query: true" in content

    # Nothing but the page itself was loaded, and nothing was refused by its CSP.
    assert requests == [f"{url}?format=html"] and console == []

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if target := os.environ.get("PACKCLOUD_REPORT_SCREENSHOT"):  # how docs/img/report.png is made
        shutil.copyfile(shot, Path(target))

    page.evaluate(AXE.read_text())
    page.locator("details").first.evaluate("details => details.open = true")  # check the tables too
    violations = page.evaluate(
        "() => axe.run(document).then(r => r.violations.map(v => v.id + ': ' + v.nodes.map(n => n.target).join()))"
    )
    assert violations == []

    heading = page.locator("header p").text_content() or ""
    generated = re.search(r"generated (\S+) by", heading).group(1)  # type: ignore[union-attr]
    page.emulate_media(media="print")
    printed = pypdf.PdfReader(io.BytesIO(page.pdf(format="A4")))
    assert len(printed.pages) >= 3  # the summary, then a page for each dataset
    for number, sheet in enumerate(printed.pages, start=1):
        text = " ".join(sheet.extract_text().split())
        assert f"Record of processing: tenant {tenant}, region eu" in text, number
        assert f"generated {generated}" in text and f"page {number} of {len(printed.pages)}" in text
    context.close()


def totals_of(audited: dict[str, Counter[tuple[str, str]]], series: str) -> list[int]:
    return [n for counts in audited.values() for (s, _), n in counts.items() if s == series]
