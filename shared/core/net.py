"""The client's address, as the Azure front end reports it in X-Forwarded-For."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(entry: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    entry = entry.strip()
    if entry.startswith("["):  # [v6]:port
        entry = entry[1 : entry.find("]")] if "]" in entry else entry
    elif entry.count(":") == 1:  # v4:port
        entry = entry.split(":", 1)[0]
    try:
        return ipaddress.ip_address(entry)
    except ValueError:
        return None


def client_ip(forwarded_for: str | None, trusted_proxies: Sequence[Network] = ()) -> str | None:
    """The rightmost address not in a trusted proxy range.

    Entries further left were written by the client itself and could be forged; the front end
    appends the real peer, so reading from the right and skipping only trusted proxies is safe.
    """
    if not forwarded_for:
        return None
    for entry in reversed(forwarded_for.split(",")):
        address = _parse(entry)
        if address is None:
            return None
        if not any(address in network for network in trusted_proxies):
            return str(address)
    return None
