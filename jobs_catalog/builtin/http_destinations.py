"""Where the HTTP job (and every outbound request made for someone else: completion
callbacks) may connect: ``JOBS_HTTP_ALLOW`` / ``JOBS_HTTP_DENY``, checked on the address a
host name resolves to (the request then goes to that very address, :func:`checked_request`)
and again on every redirect the caller follows.

The order of the checks, for each address of the destination:

1. ``JOBS_HTTP_DENY`` (a network holding the address, or a host-name pattern matching the
   name): refused. Deny wins over everything.
2. ``JOBS_HTTP_ALLOW`` (same forms): allowed, except that a *protected* address (link-local,
   cloud metadata, unspecified, multicast/broadcast) is opened only by an entry that names it:
   a network inside its protected range (``169.254.169.254/32``, not ``0.0.0.0/0``) or the
   exact host name (``metadata.google.internal``, not ``*.internal``).
3. Otherwise: public (globally routable) addresses are allowed; loopback, private, shared
   (CGNAT) and reserved ones are refused.

Host names are lower-cased without a trailing dot; numeric spellings of IPv4 (``0x7f000001``,
``2130706433``, ``0177.0.0.1``, ``127.1``) and IPv4 inside IPv6 (``::ffff:127.0.0.1``,
NAT64 ``64:ff9b::7f00:1``) are checked as the IPv4 address they stand for.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import parse_url

from jobs_catalog.errors import JobError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Cloud metadata services (AWS, ECS, GCP, Azure, Alibaba, Oracle, Tencent...): opened only
#: by naming them exactly in JOBS_HTTP_ALLOW.
METADATA_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.169.254/32",
        "169.254.170.2/32",
        "169.254.169.123/32",
        "fd00:ec2::254/128",
        "fd00:ec2::23/128",
        "fd20:ce::254/128",
        "100.100.100.200/32",
        "192.0.0.192/32",
    )
)
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    }
)
#: Refused by default, and opened only by an allow entry inside the range (not a broader one).
PROTECTED_NETWORKS: tuple[tuple[str, IPNetwork], ...] = (
    *(("cloud metadata address", n) for n in METADATA_NETWORKS),
    ("link-local address", ipaddress.ip_network("169.254.0.0/16")),
    ("link-local address", ipaddress.ip_network("fe80::/10")),
    ("unspecified address", ipaddress.ip_network("0.0.0.0/8")),
    ("unspecified address", ipaddress.ip_network("::/128")),
    ("multicast or broadcast address", ipaddress.ip_network("224.0.0.0/4")),
    ("multicast or broadcast address", ipaddress.ip_network("255.255.255.255/32")),
    ("multicast or broadcast address", ipaddress.ip_network("ff00::/8")),
)
#: Refused by default; any allow entry holding them opens them.
INTERNAL_NETWORKS: tuple[tuple[str, IPNetwork], ...] = (
    ("loopback address", ipaddress.ip_network("127.0.0.0/8")),
    ("loopback address", ipaddress.ip_network("::1/128")),
    ("private address", ipaddress.ip_network("10.0.0.0/8")),
    ("private address", ipaddress.ip_network("172.16.0.0/12")),
    ("private address", ipaddress.ip_network("192.168.0.0/16")),
    ("private address", ipaddress.ip_network("fc00::/7")),
    ("shared (carrier-grade NAT) address", ipaddress.ip_network("100.64.0.0/10")),
)
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")

#: What :func:`url_problem` says of a URL with a user name or password in it.
CREDENTIALS_PROBLEM = "must not carry credentials"

_HOST_PATTERN = re.compile(r"^(\*\.)?([a-z0-9_]([a-z0-9_-]*[a-z0-9_])?\.)*[a-z0-9_-]+$")
_IPV4_PART = re.compile(r"^(0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class DestinationRefusedError(JobError):
    """The destination is outside the HTTP destination policy (not retried)."""


# --- the policy's entries ---------------------------------------------------------------------
@dataclass(frozen=True)
class Rules:
    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()
    #: "*.example.org" is kept as ".example.org": it matches names ending so.
    suffixes: tuple[str, ...] = ()

    def match_host(self, host: str, *, exact_only: bool = False) -> bool:
        if host in self.hosts:
            return True
        return not exact_only and any(host.endswith(suffix) for suffix in self.suffixes)

    def holds(self, address: IPAddress, within: IPNetwork | None = None) -> bool:
        """Whether an entry holds ``address`` (and, with ``within``, lies inside that range)."""
        return any(
            address in net
            and (within is None or (net.version == within.version and net.subnet_of(within)))
            for net in self.networks
        )


def parse_rules(entries: Iterable[str], setting: str) -> Rules:
    """Networks (CIDR or one address), host names and ``*.suffix`` patterns."""
    networks, hosts, suffixes = [], set(), []
    for raw in entries:
        entry = raw.strip().lower().rstrip(".")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if not _HOST_PATTERN.match(entry) or parse_address(entry) is not None:
            raise ValueError(
                f"{setting}: {raw!r} is neither a network (10.0.0.0/8, 127.0.0.1, fd00::/8) "
                "nor a host name (api.example.org, *.example.org)"
            )
        if entry.startswith("*."):
            suffixes.append(entry[1:])
        else:
            hosts.add(entry)
    return Rules(tuple(networks), frozenset(hosts), tuple(suffixes))


@lru_cache(maxsize=8)
def _rules(allow: tuple[str, ...], deny: tuple[str, ...]) -> tuple[Rules, Rules]:
    return parse_rules(allow, "JOBS_HTTP_ALLOW"), parse_rules(deny, "JOBS_HTTP_DENY")


def configured_rules() -> tuple[Rules, Rules]:
    """(allow, deny) from the settings. Raises ValueError naming a malformed entry."""
    return _rules(tuple(settings.JOBS_HTTP_ALLOW), tuple(settings.JOBS_HTTP_DENY))


# --- names and addresses ----------------------------------------------------------------------
def normalize_host(host: str) -> str:
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def parse_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any numeric form a resolver accepts; None for a name."""
    host = host.strip().strip("[]").rstrip(".")
    try:
        return unwrap(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    return _loose_ipv4(host.lower())


def _loose_ipv4(host: str) -> ipaddress.IPv4Address | None:
    # inet_aton's forms: 1 to 4 parts, each decimal, octal (0...) or hex (0x...); the last
    # part fills the remaining bytes ("127.1" is 127.0.0.1, "2130706433" too).
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.match(p) for p in parts):
        return None
    values = [
        int(p[2:] or "0", 16) if p.startswith("0x") else int(p, 8 if p[0] == "0" else 10)
        for p in parts
    ]
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 256 ** (4 - len(leading)):
        return None
    number = last
    for index, value in enumerate(leading):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped or NAT64 IPv6 address; else ``address``."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(address.packed)  # drops a zone id ("%eth0")
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in NAT64_PREFIX:
            return ipaddress.IPv4Address(address.packed[-4:])
    return address


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address of ``host``, in the resolver's order, each once."""
    literal = parse_address(host)
    if literal is not None:
        return [literal]
    infos = socket.getaddrinfo(normalize_host(host), port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


# --- the checks -------------------------------------------------------------------------------
def _category(address: IPAddress, ranges: Sequence[tuple[str, IPNetwork]]) -> tuple[str, IPNetwork]:
    for label, network in ranges:
        if address.version == network.version and address in network:
            return label, network
    return "", ipaddress.ip_network("0.0.0.0/32")


def refusal(host: str, address: IPAddress | None) -> str:
    """Why the destination (``host``, resolved to ``address``) is refused; "" if it is not.
    With ``address`` None, only what the name alone shows is checked."""
    allow, deny = configured_rules()
    host = normalize_host(host)
    address = unwrap(address) if address is not None else None
    named = "" if address is None or str(address) == host else f" ({address})"
    if deny.match_host(host) or (address is not None and deny.holds(address)):
        return f"{host}{named} is refused by JOBS_HTTP_DENY"
    if host in METADATA_HOSTS and not allow.match_host(host, exact_only=True):
        return (
            f"{host} is a cloud metadata service, refused unless JOBS_HTTP_ALLOW names it exactly"
        )
    if address is None:
        return ""
    label, network = _category(address, PROTECTED_NETWORKS)
    if label:
        if allow.match_host(host, exact_only=True) or allow.holds(address, within=network):
            return ""
        return (
            f"{host}{named} is a {label}, refused unless JOBS_HTTP_ALLOW names it "
            f"(e.g. {address}; a broader range does not open it)"
        )
    if allow.match_host(host) or allow.holds(address):
        return ""
    label, _ = _category(address, INTERNAL_NETWORKS)
    if not label and address.is_global:
        return ""
    return (
        f"{host}{named} is a {label or 'reserved (not public) address'}, refused by default; "
        f"allow it with JOBS_HTTP_ALLOW (e.g. {address})"
    )


def check_url_host(host: str) -> None:
    """What the URL alone shows (a literal address, a metadata or denied name), without DNS:
    for validating a schedule's parameters. Raises :class:`DestinationRefusedError`."""
    reason = refusal(host, parse_address(host))
    if reason:
        raise DestinationRefusedError(reason)


def checked_addresses(host: str, port: int) -> list[IPAddress]:
    """Resolve ``host`` once and check every address it has; the caller connects to these
    and no others (so a second lookup cannot answer differently). Raises
    :class:`DestinationRefusedError` if any address is refused, ``OSError`` if none resolves."""
    check_url_host(host)  # a metadata or denied name is not even looked up
    addresses = resolve(host, port)
    for address in addresses:
        reason = refusal(host, address)
        if reason:
            raise DestinationRefusedError(reason)
    return addresses


def url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a destination, from the URL alone (no DNS): not http(s),
    no host, credentials in it (a URL is shown), or a host the policy refuses by its name or
    literal address; None when nothing is. The message never quotes the URL."""
    if _CONTROL.search(url) or " " in url:
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "must name a host"
    if parts.username is not None or parts.password is not None:
        return CREDENTIALS_PROBLEM
    try:
        check_url_host(parts.hostname)
    except DestinationRefusedError as exc:
        return str(exc)
    except ValueError as exc:  # a malformed JOBS_HTTP_ALLOW / JOBS_HTTP_DENY
        return f"cannot be checked: {exc}"
    return None


# --- connecting -------------------------------------------------------------------------------
@contextmanager
def checked_request(
    method: str, url: str, headers: dict[str, str], body: bytes | None, deadline: float
) -> Iterator[urllib3.BaseHTTPResponse]:
    """One request (no redirect followed, no retry), to an address the policy accepted for
    the URL's host: the host is resolved once, checked, and connected to by address (Host
    header and TLS name kept), so a second DNS answer cannot send the request elsewhere.
    ``deadline`` is a ``time.monotonic()`` instant. Raises :class:`DestinationRefusedError`,
    ``OSError`` (no address) or urllib3's errors; the body is left to read."""
    parts = parse_url(url)
    host = (parts.host or "").strip("[]")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = checked_addresses(host, port)
    request_headers = {**headers, "Host": parts.netloc or host}
    error: Exception = TimeoutError("no time left to connect")
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        pool = _pool(parts.scheme or "http", str(address), port, host)
        try:
            response = pool.urlopen(
                method,
                parts.request_uri,
                headers=request_headers,
                body=body,
                timeout=urllib3.Timeout(total=remaining),
                retries=False,  # the caller retries, with its own backoff
                redirect=False,
                assert_same_host=False,
                preload_content=False,
            )
        except (NewConnectionError, ConnectTimeoutError) as exc:
            pool.close()
            error = exc  # the host's next address, if it has one
            continue
        try:
            yield response
        finally:
            response.release_conn()
            pool.close()
        return
    raise error


def _pool(scheme: str, address: str, port: int, host: str) -> urllib3.HTTPConnectionPool:
    if scheme == "https":
        # The certificate is checked against the host name, not the address.
        return urllib3.HTTPSConnectionPool(address, port, maxsize=1, server_hostname=host)
    return urllib3.HTTPConnectionPool(address, port, maxsize=1)


def reason_of(exc: BaseException) -> str:
    """The most telling reason a request failed: the underlying OS error if there is one."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    text = str(exc)
    # urllib3 prefixes some messages with the connection object's repr.
    return text.split(": ", 1)[1] if text.startswith("<") and ": " in text else text
