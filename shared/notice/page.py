"""The notice as a self-contained HTML page: no script, no external resource, inline style only (the route's
Content-Security-Policy allows nothing else), and every value escaped, since dataset texts come from the API."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from shared.notice.content import Contact, Notice
from shared.notice.languages import ENGLISH

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5;"
    "color:#1a1a1a;background:#fff}a{color:#0645ad}table{border-collapse:collapse;margin:.5rem 0}"
    "th,td{border:1px solid #999;padding:.25rem .5rem;text-align:left;vertical-align:top}"
    "footer{margin-top:2rem;font-size:.9rem;color:#444}"
)


def e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="referrer" content="no-referrer"><title>{e(title)}</title><style>{STYLE}</style></head>'
        f"<body><main>{body}</main></body></html>"
    )


def _mailto(contact: Contact) -> str:
    address = quote(contact.email, safe="@.+-_")
    return f'{e(contact.name)} (<a href="mailto:{e(address)}">{e(contact.email)}</a>)'


def _lang(notice: Notice) -> str:
    """The lang attribute of the controller's own words, where they are not the page's English."""
    return "" if notice.language.lower() == ENGLISH else f' lang="{e(notice.language)}"'


def render_notice(notice: Notice) -> str:
    own = _lang(notice)
    controller = notice.controller
    rows = "".join(
        f'<tr><th scope="row"><code>{e(item.name)}</code></th><td>{e(item.kind)}'
        + (f"<br><span{own}>{e(item.description)}</span>" if item.description else "")
        + f"</td><td>{'yes' if item.personal else 'no'}</td><td>{'yes' if item.required else 'no'}</td></tr>"
        for item in notice.collected
    )
    dpo = (
        f"<p>Its data protection officer: {_mailto(notice.dpo)}.</p>"
        if notice.dpo is not None
        else "<p>The controller has named no data protection officer for this processing; please write to the "
        "controller.</p>"
    )
    contacts = f"{e(controller.email)}" + (f" or {e(notice.dpo.email)}" if notice.dpo is not None else "")
    rights = "".join(f"<li>{e(right.text)}</li>" for right in notice.rights)
    body = (
        f"<h1>How {e(controller.name)} uses your data</h1>"
        "<p>This notice tells you what is collected about you here, why, for how long, where it is kept and what "
        "your rights are (GDPR article 13).</p>"
        "<h2>What is collected and why</h2>"
        f"<p>{e(notice.what)}</p>"
        f"<p>Purpose: <span{own}>{e(notice.purpose)}</span></p>"
        "<table><caption>Only these fields are kept; anything else that is sent is discarded.</caption>"
        '<thead><tr><th scope="col">Field</th><th scope="col">What it is</th><th scope="col">About you</th>'
        f'<th scope="col">Always collected</th></tr></thead><tbody>{rows}</tbody></table>'
        f"<p>{e(notice.legal_basis_text)}</p>"
        "<h2>How long it is kept</h2>"
        f"<p>{e(notice.retention_text)}</p>"
        "<h2>Where it is processed</h2>"
        f"<p>{e(notice.region_text)}</p>"
        "<h2>Who is responsible</h2>"
        f"<p>The controller: {_mailto(controller)}. PackCloud processes the data on its behalf, as a processor.</p>"
        f"{dpo}"
        "<h2>Your rights</h2>"
        f"<ul>{rights}</ul>"
        f"<p>To use them, write to {contacts}.</p>"
        f"<footer><p>Dataset <code>{e(notice.tenant)}/{e(notice.dataset)}</code>; "
        f"kept for {e(notice.retention_days)} days at most.</p></footer>"
    )
    return _page(f"How {controller.name} uses your data", body)


# One page for an unknown tenant, an unknown dataset and an id that is not one: it tells nothing apart.
NOT_FOUND_PAGE = _page(
    "Privacy notice not found",
    "<h1>Privacy notice not found</h1><p>There is no privacy notice at this address.</p>",
)


def render_misdirected(notice_url: str | None) -> str:
    """A notice kept by the deployment of another region (the registry is per region)."""
    where = (
        f'<p>It is at <a href="{e(notice_url)}">{e(notice_url)}</a>.</p>'
        if notice_url
        else "<p>Ask the site that linked here for the right address.</p>"
    )
    return _page(
        "Privacy notice kept in another region",
        f"<h1>Privacy notice kept in another region</h1><p>This notice is served where the data is kept.</p>{where}",
    )


UNAVAILABLE_PAGE = _page(
    "Privacy notice unavailable",
    "<h1>Privacy notice unavailable</h1><p>The notice cannot be shown just now; please try again in a minute.</p>",
)
