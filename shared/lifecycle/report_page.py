"""The DPO report as a page (`?format=html`): drawn from the numbers of lifecycle/report.py, one small function
per section, so that a section is added by appending its function to SECTIONS. Every value is escaped (dataset
texts come from the API); no script, no external resource (the CSP of functions/privacy.py forbids both)."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import escape
from typing import Any

from shared.lifecycle.activity import REQUEST_COUNTS, SERIES
from shared.lifecycle.report_chart import CHART_SERIES, NEAR_LIMIT, activity_chart, retention_bar

Report = dict[str, Any]
Section = Callable[[Report], str]

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}"
    "h2{margin-top:2rem;border-top:1px solid #bbb;padding-top:1rem}dt{font-weight:600}dd{margin:0 0 .5rem 0}"
    "table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.2rem .4rem;"
    "text-align:left;vertical-align:top}td.n{text-align:right}caption{text-align:left;font-weight:600}"
    ".near{color:#b71c1c;font-weight:600}.broken{color:#b71c1c;font-weight:700}svg.chart{max-width:100%;height:auto}"
    "@media print{body{max-width:none;margin:0;font-size:10pt}details{display:none}"
    "section.dataset{break-before:page}figure,tr{break-inside:avoid}a{color:inherit}}"
)
SERIES_NAMES = {
    "captured": "Captured",
    "delivered": "Delivered",
    "purged": "Purged",
    "erased": "Erased",
    "refused": "Refused",
}
SUMMARY_COUNTS = ("captured", "delivered", "purged", "refused")
REQUEST_NAMES = ("Exports", "Records exported", "State exported", "Erasures", "Records erased", "State erased")


def e(value: object) -> str:
    return escape("" if value is None else str(value))


def render_html(report: Report, sections: list[Section] | None = None) -> str:
    body = "".join(section(report) for section in (SECTIONS if sections is None else sections))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Record of processing: {e(report['tenant'])}</title>"
        f"<style>{STYLE}{_print_header(report)}</style></head><body>{heading(report)}<main>{body}</main></body></html>"
    )


def _print_header(report: Report) -> str:
    """The running header of every printed page (CSS page-margin boxes): tenant, region, time of the report."""

    def text(value: object) -> str:  # a CSS string: ids, region codes and times need no more than these
        return re.sub(r"[^A-Za-z0-9 .:_+-]", "?", str(value))

    return (
        "@page{margin:20mm 14mm 16mm;"
        f'@top-left{{content:"Record of processing: tenant {text(report["tenant"])}, region {text(report["region"])}";'
        "font-size:9pt}"
        f'@top-right{{content:"generated {text(report["generated_at"])}";font-size:9pt}}'
        '@bottom-right{content:"page " counter(page) " of " counter(pages);font-size:9pt}}'
    )


def heading(report: Report) -> str:
    target = report.get("delivery_target")
    target_text = (
        f"Dynamics 365 at <code>{e(target['organization_url'])}</code> ({e(target['state'])})" if target else "none"
    )
    name = f" ({e(report['name'])})" if report.get("name") else ""
    return (
        f"<header><h1>Record of processing activities</h1><p>Tenant <code>{e(report['tenant'])}</code>{name}, "
        f"region {e(report['region'])}, generated {e(report['generated_at'])} by {e(report.get('processor'))}. "
        f"Counts cover the last {e(report.get('window_days'))} days (UTC). Delivery target: {target_text}. "
        f"Audit chain of the tenant: {_chain_text(report.get('audit_chain'))}{_chain_extent(report)}.</p>"
        "</header>"
    )


def summary(report: Report) -> str:
    chain = _chain_text(report.get("audit_chain"))
    rows = "".join(
        f'<tr><th scope="row"><a href="#d-{e(d["dataset"])}">{e(d["dataset"])}</a></th>'
        f'<td class="n">{e(d["records_held"])}{" or more" if d["records_held_more"] else ""}</td>'
        f"<td>{_oldest(d)}</td>"
        + "".join(
            f'<td class="n">{e(d["last_30_days"][s])}</td>' for s in ("captured", "delivered", "purged", "refused")
        )
        + f"<td>{_purge_text(d.get('last_purge'))}</td><td>{chain}</td></tr>"
        for d in report["datasets"]
    )
    if not rows:
        return (
            '<section aria-labelledby="summary"><h2 id="summary">Summary</h2><p>No dataset is declared.</p></section>'
        )
    return (
        '<section aria-labelledby="summary"><h2 id="summary">Summary</h2><table><caption>Each dataset now, '
        f"and what happened to its records over the last {e(report.get('window_days'))} days</caption><thead><tr>"
        '<th scope="col">Dataset</th><th scope="col">Records held</th><th scope="col">Oldest record, of the '
        'retention period</th><th scope="col">Captured</th><th scope="col">Delivered</th><th scope="col">Purged</th>'
        '<th scope="col">Refused</th><th scope="col">Last purge</th><th scope="col">Audit chain</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></section>"
    )


def subject_requests(report: Report) -> str:
    weeks = report.get("subject_requests") or []
    rows = "".join(
        f'<tr><th scope="row">{e(week["week_of"])}</th>'
        + "".join(f'<td class="n">{e(week[name])}</td>' for name in REQUEST_COUNTS)
        + "</tr>"
        for week in weeks
    )
    head = "".join(f'<th scope="col">{name}</th>' for name in REQUEST_NAMES)
    return (
        '<section aria-labelledby="requests"><h2 id="requests">Data-subject requests</h2>'
        "<p>Each call of an export or an erasure is counted, with what it handed out or deleted; the trail holds "
        "no subject, so neither does this table.</p><table><caption>Per week (from Monday, UTC)</caption>"
        f'<thead><tr><th scope="col">Week of</th>{head}</tr></thead><tbody>{rows}</tbody></table></section>'
    )


def datasets(report: Report) -> str:
    return "".join(dataset(report, d) for d in report["datasets"])


def dataset(report: Report, d: dict[str, Any]) -> str:
    anchor = f"d-{e(d['dataset'])}"
    return (
        f'<section class="dataset" aria-labelledby="{anchor}"><h2 id="{anchor}">Dataset {e(d["dataset"])} '
        f"<small>({e(d['capability'])})</small></h2>"
        f"<h3>Activity over the last {e(report.get('window_days'))} days</h3>{_activity(d)}"
        f"<h3>Declaration</h3>{_declaration(report, d)}</section>"
    )


def attachments(report: Report) -> str:
    """PowerAttachment: where the tenant's Dynamics 365 files go, what stays there, and the files refused (id and
    size only: PackCloud keeps no name and no content)."""
    job = report.get("attachments")
    if not job:
        return ""
    kept = (
        "replaced in Dynamics 365 by a link once the copy is verified"
        if job["mode"] == "link"
        else "kept in Dynamics 365 as well, with a link to the copy"
    )
    tables = ", ".join(f"<code>{e(t)}</code>" for t in job["note_tables"])
    sources = " and ".join(
        f"notes with files on {tables}" if s == "notes" else "e-mail attachments" for s in job["sources"]
    )
    rows = "".join(
        f'<tr><td><code>{e(f["id"])}</code></td><td>{e(f["source"])}</td><td class="n">{e(f["size"])}</td>'
        f"<td><code>{e(f['reason'])}</code></td><td>{e(f['state'])}</td><td>{e(f['at'])}</td></tr>"
        for f in job["failed"]
    )
    refused = (
        '<table><caption>Files not moved</caption><thead><tr><th scope="col">Attachment</th>'
        '<th scope="col">Source</th><th scope="col">Bytes</th><th scope="col">Reason</th><th scope="col">State</th>'
        f'<th scope="col">Since</th></tr></thead><tbody>{rows}</tbody></table>'
        if rows
        else "<p>No file is waiting: every file listed so far was moved.</p>"
    )
    run = job.get("last_run") or {}
    last = (
        f"<p>Last run {e(run.get('at'))}: {e(run.get('moved'))} file(s) moved, {e(run.get('failed'))} refused "
        f"({e(run.get('state'))}).</p>"
        if run
        else "<p>No run yet.</p>"
    )
    return (
        '<section aria-labelledby="attachments"><h2 id="attachments">Attachments moved to SharePoint</h2>'
        f"<p>{sources} are copied to the SharePoint site <code>{e(job['site_id'])}</code>, library "
        f"<code>{e(job['drive_id'])}</code>, and {kept}. Files pass through PackCloud's memory only; it stores "
        f"no name and no content, only ids, sizes and its position.</p>{last}{refused}</section>"
    )


# The page below its heading, top to bottom. A new section is one function of the report, appended here.
def dpo_notifications(report: Report) -> str:
    """Events for the DPO's webhook that were given up after 24 hours of attempts, and those waiting."""
    section = report.get("dpo_notifications")
    if section is None:
        return ""

    def row(event: dict[str, Any]) -> str:
        when = event.get("failed_at") or event.get("next_attempt_at")
        return (
            f"<li><code>{e(event['type'])}</code> of {e(event['created_at'])}: "
            f"{e(event['attempts'])} attempt(s), last error {e(event['last_error'])}; {e(when)}</li>"
        )

    if not section["webhook"]:
        return "<section><h2>DPO notifications</h2><p>No DPO webhook is set.</p></section>"
    failed = "".join(row(event) for event in section["failed"]) or "<li>none</li>"
    pending = "".join(row(event) for event in section["pending"]) or "<li>none</li>"
    return (
        "<section><h2>DPO notifications</h2>"
        f"<h3>Not delivered (given up after 24 hours)</h3><ul>{failed}</ul>"
        f"<h3>Waiting to be delivered</h3><ul>{pending}</ul></section>"
    )


SECTIONS: list[Section] = [summary, subject_requests, datasets, attachments, dpo_notifications]


def _activity(d: dict[str, Any]) -> str:
    days = d["activity"]
    legend = "".join(f"<li>{name}: {e(d['last_30_days'][key])}</li>" for key, name, _ in CHART_SERIES)
    head = "".join(f'<th scope="col">{SERIES_NAMES[s]}</th>' for s in SERIES)
    rows = "".join(
        f'<tr><th scope="row">{e(day["date"])}</th>'
        + "".join(f'<td class="n">{e(day[s])}</td>' for s in SERIES)
        + "</tr>"
        for day in days
    )
    return (
        f"<figure>{activity_chart(d['dataset'], days)}<figcaption>Per day, each row of bars on its own scale. "
        f"In all: <ul>{legend}</ul></figcaption></figure>"
        f"<details><summary>The numbers per day</summary><table><caption>{e(d['dataset'])}: per day (UTC)</caption>"
        f'<thead><tr><th scope="col">Day</th>{head}</tr></thead><tbody>{rows}</tbody></table></details>'
    )


def _declaration(report: Report, d: dict[str, Any]) -> str:
    fields = "".join(
        f'<tr><th scope="row"><code>{e(f["name"])}</code></th><td>{e(f["type"])}</td>'
        f"<td>{'personal' if f['personal'] else 'not personal'}</td><td>{'yes' if f['required'] else 'no'}</td></tr>"
        for f in d["fields"]
    )
    state = "".join(
        f"<li><code>{e(k['kind'])}</code>: {e(k['holds'])}; kept {e(k['kept'])}; {e(k['held'])}"
        f"{' or more' if k['held_more'] else ''} held now</li>"
        for k in d["personal_state"]
    )
    dpo = f"{e(d['dpo']['name'])} &lt;{e(d['dpo']['email'])}&gt;" if d["dpo"] else "not named"
    query = ""
    if d["capability"] == "pixel":
        kept = (
            "kept (keep_url_query: true)" if d.get("keep_url_query") else "cut before storage (keep_url_query: false)"
        )
        query = f"<dt>Page URL queries</dt><dd>{kept}</dd>"
    notice = f'<a href="{e(d["notice"])}">{e(d["notice"])}</a>' if d.get("notice") else "none"
    return (
        f"<dl><dt>Purpose</dt><dd>{e(d['purpose'])}</dd>"
        f"<dt>Legal basis</dt><dd>{e(d['legal_basis'])}</dd>"
        f"<dt>Retention</dt><dd>{e(d['retention_days'])} days</dd>"
        f"<dt>Controller</dt><dd>{e(d['controller']['name'])} &lt;{e(d['controller']['email'])}&gt;</dd>"
        f"<dt>DPO</dt><dd>{dpo}</dd>"
        f"<dt>Region</dt><dd>{e(report['region'])}</dd>"
        f"<dt>Privacy notice</dt><dd>{notice}</dd>{query}"
        f"<dt>Records held now</dt><dd>{e(d['records_held'])}{' or more' if d['records_held_more'] else ''}</dd>"
        f"<dt>Oldest record</dt><dd>{_oldest(d)}</dd>"
        f'<dt>Fields</dt><dd><table><caption>Declared fields</caption><thead><tr><th scope="col">Field</th>'
        '<th scope="col">Type</th><th scope="col">Personal data</th><th scope="col">Required</th></tr></thead>'
        f"<tbody>{fields}</tbody></table></dd>"
        f"<dt>Personal state besides the records</dt><dd>{f'<ul>{state}</ul>' if state else 'none'}</dd>"
        f"<dt>Delivery</dt><dd>{_delivery(d.get('delivery', {'mode': 'pull'}))}</dd></dl>"
    )


def _oldest(d: dict[str, Any]) -> str:
    age = d.get("oldest_record_age_s")
    if age is None:
        return "no records held"
    used = float(d.get("retention_used") or 0.0)
    near = f' <span class="near">past {int(NEAR_LIMIT * 100)}%</span>' if used > NEAR_LIMIT else ""
    return f"{retention_bar(used)} {_age(float(age))} of {e(d['retention_days'])} days ({used:.0%}){near}"


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _purge_text(purge: dict[str, Any] | None) -> str:
    if purge is None:
        return "none in the last two days"
    if purge["deleted"] is None:
        outcome = "not reached (the run stopped at its time budget)" if not purge["complete"] else "not reached"
    else:
        outcome = f"{'complete' if purge['complete'] else 'continuing'}, {e(purge['deleted'])} deleted"
    return f"{_when(purge['at'])}: {outcome}"


def _when(iso: object) -> str:
    """An ISO time as a DPO reads it: to the minute, in UTC (the JSON form keeps the exact time)."""
    text = str(iso)
    return e(f"{text[:10]} {text[11:16]} UTC" if len(text) >= 16 and text[10] == "T" else text)


def _chain_text(chain: dict[str, Any] | None) -> str:
    if chain is None:
        return "not checked"
    if chain["verified"]:
        return "verifies"
    return f'<span class="broken">does not verify</span>: {e(chain["detail"])}'


def _chain_extent(report: Report) -> str:
    chain = report.get("audit_chain")
    return f", {e(chain['entries'])} entries since {e(chain['since'])}" if chain and chain["verified"] else ""


def _delivery(delivery: dict[str, Any]) -> str:
    if delivery["mode"] != "dataverse":
        return "pulled by the CRM side (/sync), deleted when acknowledged"
    columns = ", ".join(f"<code>{e(f)}</code> &rarr; <code>{e(c)}</code>" for f, c in delivery["columns"].items())
    refused = f"{e(delivery['refused'])}{' or more' if delivery['refused_more'] else ''}"
    text = f"pushed into the table <code>{e(delivery['table'])}</code> ({columns}); refused by Dynamics 365: {refused}"
    receipt = delivery["last_receipt"]
    if receipt is None:
        return text + "; no receipt in the last two days"
    rows = "".join(
        f"<li><code>{e(r['record'])}</code> &rarr; row <code>{e(r['row'])}</code></li>" for r in receipt["rows"]
    )
    return (
        f"{text}; last receipt {e(receipt['at'])}: {e(receipt['records'])} record(s) delivered and deleted"
        f"<ul>{rows}</ul>"
    )
