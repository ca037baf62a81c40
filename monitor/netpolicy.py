"""Which addresses the service may connect to: public unicast only, unless the operator allows
more.

A feed's item links and every redirect are written by someone else, so without this policy a
hostile feed could make the service fetch `http://169.254.169.254/` (a cloud's metadata
service), an admin panel on the same machine or an intranet host, and mail the answer back.
Refused: loopback, private-use (10/8, 172.16/12, 192.168/16, fc00::/7), shared (100.64/10),
link-local (169.254/16, fe80::/10), multicast, unspecified, reserved and every other
special-purpose block; IPv6 forms that embed an IPv4 address (::ffff:a.b.c.d, 6to4, Teredo)
are judged by the IPv4 address inside.

`[fetch] allow_private = ["10.1.2.0/24", "127.0.0.1:8080"]` names networks (optionally with a
port) that may be reached all the same. The fetcher applies the policy to the address it
actually connects to, after name resolution, on every request and every redirect hop.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "fetch.allow_private"
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class AddressRefused(OSError):
    """A connection the policy forbids. An OSError, so that aiohttp passes it through its
    resolver machinery unchanged (as `os_error` of the connector error it raises)."""


@dataclass(frozen=True)
class Allowed:
    """One `allow_private` entry: a network, and the only port allowed there (None: any)."""

    network: IPNetwork
    port: int | None = None

    def covers(self, address: IPAddress, port: int) -> bool:
        return address in self.network and (self.port is None or self.port == port)


def parse_allowed(entry: str) -> Allowed:
    """'10.1.2.0/24', '127.0.0.1:8080', '[::1]:8080' or 'fd00::/8'; ValueError says why not."""
    text = entry.strip()
    port: int | None = None
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{entry!r}: expected '[IPv6]:PORT'")
        text, port_text = inside, rest[1:]
        port = _port(port_text, entry) if rest else None
    elif text.count(":") == 1:
        text, _, port_text = text.partition(":")
        port = _port(port_text, entry)
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(
            f"{entry!r} is not a network or address like '10.1.2.0/24' or '127.0.0.1:8080' "
            "(host names are not accepted: name the addresses they resolve to)"
        ) from None
    return Allowed(network, port)


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")
    return int(text)


def refusal_reason(address: IPAddress) -> str | None:
    """Why the policy refuses this address by default ('a loopback address', ...), or None
    when it is public unicast."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return refusal_reason(embedded)
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.version == 4 and address in _SHARED, "a shared (carrier-grade NAT) address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "a special-purpose address"),
    )
    return next((reason for failed, reason in checks if failed), None)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address; the server part is public anyway
    return None


class AddressPolicy:
    """The policy for one fetch: the default refusals, less what the operator allowed."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = tuple(parse_allowed(entry) for entry in allowed)

    def check(self, host: str, port: int, name: str = "") -> None:
        """Raise AddressRefused unless connecting to `host` (an IP address) on `port` is
        allowed; `name` is the host name that resolved to it, for the message."""
        try:
            address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            raise AddressRefused(f"refused: {host!r} is not an IP address") from None
        reason = refusal_reason(address)
        if reason is None or any(a.covers(address, port) for a in self.allowed):
            return
        shown = f"{name} ({address})" if name and name != str(address) else str(address)
        raise AddressRefused(
            f"refused: {shown} is {reason}; allow it with {SETTING} "
            f'(e.g. {SETTING} = ["{_example(address, port)}"])'
        )

    def permits(self, host: str, port: int) -> bool:
        try:
            self.check(host, port)
        except AddressRefused:
            return False
        return True


def _example(address: IPAddress, port: int) -> str:
    return f"{address}:{port}" if address.version == 4 else f"[{address}]:{port}"


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True
