"""Where a DPO webhook may point: an https URL on a public address, checked when it is set and at every delivery.

A webhook URL is a request PackCloud makes on a customer's word, so it must not reach PackCloud's own network
(server-side request forgery). Every address the host name resolves to must be global (`ipaddress.is_global`: no
private, loopback, link-local, shared, reserved or documentation range, no 0.0.0.0), and not multicast; an IPv6
address that carries an IPv4 address (mapped, NAT64, 6to4, Teredo) is judged by that address too. The delivery
connects to the very address that was checked (shared/dpo/sender.py), so a name that resolves elsewhere a moment
later (DNS rebinding) changes nothing.

`PACKCLOUD_DPO_WEBHOOK_DEV_NETWORKS` adds named networks for local development only (a receiver on this machine);
settings refuse it wherever Azure storage or Key Vault is configured (shared/core/settings.py).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shared.core.urls import WebUrl, parse_web_url

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses the name resolves to (text); raises OSError when it does not resolve
Resolver = Callable[[str, int], list[str]]
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
MAX_ADDRESSES = 32  # a name with more answers is refused rather than checked without bound


class Refused(ValueError):
    """The URL or the address it leads to may not be used; the text never quotes the URL."""


@dataclass(frozen=True)
class Endpoint:
    """Where one delivery goes: the URL's host name (for TLS and the Host header) and the checked address."""

    url: WebUrl
    address: str

    @property
    def port(self) -> int:
        return self.url.port or 443

    @property
    def host_name(self) -> str:
        return self.url.host.strip("[]")


def system_resolver(host: str, port: int) -> list[str]:
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(answer[4][0]) for answer in answers]


def webhook_url(text: str) -> WebUrl:
    """The URL's form: https, a host read as a browser reads it, no user info, no fragment."""
    try:
        url = parse_web_url(text.strip())
    except ValueError as reason:
        raise Refused(f"must be an https URL: it {reason}") from None
    if url.scheme != "https":
        raise Refused("must be an https URL")
    if "#" in url.rest:
        raise Refused("must not have a fragment")
    return url


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries and may lead to: mapped, NAT64 (64:ff9b::/96), 6to4, Teredo."""
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in NAT64:
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    return []


def is_allowed(address: Address, dev_networks: Sequence[Network] = ()) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address.version == network.version and address in network for network in dev_networks):
        return True
    if isinstance(address, ipaddress.IPv6Address) and not all(map(is_allowed, embedded_ipv4(address))):
        return False
    return address.is_global and not address.is_multicast


def resolve(url: WebUrl, *, dev_networks: Sequence[Network] = (), resolver: Resolver = system_resolver) -> Endpoint:
    """The address to connect to, when every address of the host is allowed; else Refused."""
    host = url.host.strip("[]")
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        candidates = [literal]
    else:
        try:
            answers = resolver(host, url.port or 443)
        except (OSError, UnicodeError):
            raise Refused("has a host name that does not resolve") from None
        if not answers or len(answers) > MAX_ADDRESSES:
            raise Refused("has a host name that does not resolve to a usable address")
        try:
            candidates = [ipaddress.ip_address(answer.split("%", 1)[0]) for answer in answers]
        except ValueError:
            raise Refused("has a host name that does not resolve to a usable address") from None
    # Every answer must be allowed: a name with one public and one internal address is refused, not filtered.
    if not all(is_allowed(candidate, dev_networks) for candidate in candidates):
        raise Refused("leads to a private, loopback, link-local or otherwise non-public address")
    return Endpoint(url, str(candidates[0]))
