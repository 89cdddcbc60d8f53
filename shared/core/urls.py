"""http(s) URLs read the way a browser reads them, or refused.

Python's `urlsplit` and a browser (the WHATWG URL standard) disagree on many inputs: a browser ends the host at
a backslash (`https://evil.example\\.crm.dynamics.com/` is on evil.example; `urlsplit` sees one long host),
drops tabs and newlines anywhere, decodes percent-escapes and maps Unicode (IDNA) in hosts, reads the last
label `0x7f` or `2130706433` as an IPv4 address, skips extra slashes after the scheme, and takes everything
before an `@` as user info. Wherever a trust decision rests on a host (allowed origins, redirects, the
organisation's Dynamics 365 URL, where the function key is sent), PackCloud accepts only URLs on which both
readings agree by construction: printable ASCII without backslash, exactly `scheme://host[:port]` then a
path, query or fragment, and a host of letters, digits, dots and hyphens in valid labels (or a literal IP
address written the canonical way). Everything else is refused, not repaired.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from dataclasses import dataclass

MAX_URL_LENGTH = 8192
MAX_HOST_LENGTH = 253
DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})

# Printable ASCII without space and backslash: no character a browser drops, maps or reads as a separator.
_PLAIN = re.compile(r"[!-\[\]-~]*")
_SCHEME = re.compile(r"(?i)(https?)://")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")
# WHATWG: a host whose last label is a decimal or 0x-hex number is parsed as an IPv4 address.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")


@dataclass(frozen=True)
class WebUrl:
    scheme: str
    host: str  # lower case; an IPv6 address in brackets
    port: int | None  # None: the scheme's default
    rest: str  # path, query and fragment as given ("" or starting with /, ? or #)

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}" + (f":{self.port}" if self.port is not None else "")

    def __str__(self) -> str:
        return self.origin + self.rest


def parse_web_url(text: str) -> WebUrl:
    """An absolute http(s) URL; ValueError (whose text never quotes the input) for anything else."""
    if len(text) > MAX_URL_LENGTH or not _PLAIN.fullmatch(text):
        raise ValueError("may hold only printable ASCII without spaces or backslashes")
    scheme = _SCHEME.match(text)
    if scheme is None:
        raise ValueError("must start with http:// or https://")
    after = text[scheme.end() :]
    end = next((i for i, ch in enumerate(after) if ch in "/?#"), len(after))
    authority, rest = after[:end], after[end:]
    if "@" in authority:
        raise ValueError("must not hold user information (@)")
    host_text, port = _split_port(authority)
    name = scheme.group(1).lower()
    return WebUrl(name, check_host(host_text), None if port == DEFAULT_PORTS[name] else port, rest)


def _split_port(authority: str) -> tuple[str, int | None]:
    host, colon, port_text = authority.rpartition(":") if not authority.endswith("]") else ("", "", "")
    if not colon:
        return authority, None
    if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        raise ValueError("has an invalid port")
    return host, int(port_text)


def check_host(host: str) -> str:
    """A DNS name of valid labels, a dotted-quad IPv4 or a bracketed IPv6 address, lower-cased; else ValueError."""
    lowered = host.lower()
    if lowered.startswith("[") and lowered.endswith("]"):
        return _ipv6(lowered[1:-1])
    if not lowered or len(lowered) > MAX_HOST_LENGTH:
        raise ValueError("has no valid host")
    labels = lowered.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        return _ipv4(lowered)
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise ValueError("has a host that is not letters, digits and hyphens in dot-separated labels")
        if label.startswith("xn--"):
            _punycode(label)
    return lowered


def _ipv4(host: str) -> str:
    """Only the canonical form: a browser also reads 0x7f.1, 017.0.0.1 or 2130706433, Python does not."""
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError("has a numeric host that is not a dotted-quad IPv4 address") from None
    if str(address) != host:
        raise ValueError("has a numeric host that is not a dotted-quad IPv4 address")
    return host


def _ipv6(inside: str) -> str:
    try:
        address = ipaddress.IPv6Address(inside)
    except ValueError:
        raise ValueError("has an invalid IPv6 address") from None
    if address.scope_id is not None:
        raise ValueError("has an invalid IPv6 address")
    # The browser's serialisation (RFC 5952, as WHATWG's), so that origins compare as text.
    return f"[{address.compressed}]"


def _punycode(label: str) -> None:
    """A browser decodes xn-- labels and refuses invalid ones; so does this, so that both see the same host."""
    try:
        decoded = label.encode("ascii").decode("idna")
        if decoded.encode("idna").decode("ascii") != label:
            raise ValueError
    except (UnicodeError, ValueError):
        raise ValueError("has an invalid internationalised (xn--) host label") from None


def is_loopback(url: WebUrl) -> bool:
    return url.host in LOOPBACK_HOSTS


def service_base_url(text: str) -> str:
    """A base URL that a key or token is sent to: https (http only on this machine), no query or fragment."""
    url = parse_web_url(text)
    if url.scheme != "https" and not is_loopback(url):
        raise ValueError("must use https (http only for localhost)")
    if "?" in url.rest or "#" in url.rest:
        raise ValueError("must not have a query or fragment")
    return str(url)


def dynamics_url(url: str, patterns: tuple[str, ...]) -> str:
    """An organisation's Dynamics 365 URL as `https://host/`, when a browser would read its host as a Dynamics 365
    host (one of `patterns`); else ValueError. `https://evil.example\\.crm.dynamics.com/` and every other URL that a
    browser could read as being on another host are refused, not repaired. Registration and the delivery target
    both take an organisation URL through here: tokens and captured data go to that host."""
    try:
        parsed = parse_web_url(url.strip())
    except ValueError as reason:
        raise ValueError(f"must be an https URL of the organisation: it {reason}") from None
    if parsed.scheme != "https" or parsed.port is not None:
        raise ValueError("must be an https URL of the organisation")
    if not any(fnmatch.fnmatchcase(parsed.host, pattern) for pattern in patterns):
        raise ValueError(f"must be on a Dynamics 365 host ({', '.join(patterns)})")
    return f"https://{parsed.host}/"


def without_query(url: str) -> str:
    """The URL up to its query or fragment, which often carry e-mail addresses, tokens and campaign ids.

    Cut at the first `?` or `#`, as no parser is needed for that: neither may appear unescaped before them."""
    return re.split(r"[?#]", url, maxsplit=1)[0]
