"""Which webhook target URLs and addresses we are willing to send to.

The same rules apply when a customer subscribes and again right before each
delivery (the delivery worker connects only to addresses that passed
:func:`address_refusal`). A target may not be, or resolve to, an address that
is not public: loopback, private, link-local, CGNAT, unique-local,
multicast, unspecified, reserved, or a cloud metadata endpoint.
``ALLOWED_TARGET_NETWORKS`` exempts chosen networks (tests, local
development); metadata endpoints stay refused even then.

IPv4 literals are read the way ``inet_aton`` and browsers read them, so
``2130706433``, ``0177.0.0.1``, ``0x7f.1`` and ``127.1`` are all loopback.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

import httpx

from app.errors import TargetRefused
from app.settings import Network, Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048

METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS DNS resolver
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (classic)
        "168.63.129.16",  # Azure WireServer (platform agent)
        "169.254.170.23",  # AWS EKS Pod Identity credentials
        "169.254.0.23",  # Tencent Cloud
        "fd00:ec2::254",  # AWS over IPv6
        "fd00:ec2::23",  # AWS EKS Pod Identity over IPv6
    )
)
# Not covered by the ipaddress module of every supported Python.
_ALSO_NOT_PUBLIC = tuple(
    ipaddress.ip_network(n)
    for n in (
        "fec0::/10",  # deprecated site-local
        "3fff::/20",  # documentation (2024)
    )
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@functools.lru_cache(maxsize=1024)
def parse_host(host: str) -> IPAddress | None:
    """The IP address a URL host spells, in any accepted spelling, or None.

    Remembered: every subscribe and delivery asks, mostly about few hosts.
    """
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    if bare and all(c in "0123456789abcdefxABCDEFX." for c in bare):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(bare))
        except OSError:
            return None
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return None


def _covered(address: IPAddress, networks: Iterable[Network]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def address_refusal(address: IPAddress, settings: Settings) -> str | None:
    """Why we refuse to connect to ``address``, or None if we may."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        reason = address_refusal(inner, settings)
        if reason is not None:
            return f"{reason} (inside {address})"
        if (
            isinstance(address, ipaddress.IPv6Address)
            and address.ipv4_mapped is None
            and _covered(inner, settings.allowed_target_networks)
            and not _covered(address, settings.allowed_target_networks)
        ):
            # NAT64 and 6to4 go through a gateway, not to the exempt network.
            return (
                f"{address} is refused ({inner} is exempt only as an IPv4 "
                "address, not through NAT64 or 6to4)"
            )
        return None
    if address in METADATA_ADDRESSES:
        return f"{address} is refused (cloud metadata address)"
    if _covered(address, settings.allowed_target_networks):
        return None
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT, "CGNAT"),
        (
            isinstance(address, ipaddress.IPv6Address)
            and address in ipaddress.ip_network("fc00::/7"),
            "unique-local",
        ),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (_covered(address, _ALSO_NOT_PUBLIC), "not public"),
        (not address.is_global, "not public"),
    )
    for refused, kind in checks:
        if refused:
            return f"{address} is refused ({kind} address)"
    return None


def check_url(url: str, settings: Settings) -> SplitResult:
    """Check a target URL's shape and any literal address; return it split.

    Names are not resolved here; :func:`check_url_resolved` does that.
    """
    return _checked(url, settings)[0]


def _checked(url: str, settings: Settings) -> tuple[SplitResult, str]:
    """:func:`check_url`'s work: the URL split, and its host as it will be sent.

    IDNA turns some names into other hosts (``127\u30020.0.2``, with an
    ideographic full stop, is the address 127.0.0.2), so the host is judged
    both as written and as the delivery client will send it.
    """
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(
            "url_too_long", f"targetUrl is longer than {MAX_URL_LENGTH} characters"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(
            "invalid_url", f"targetUrl is not a valid URL: {exc}"
        ) from exc
    allowed = ("https", "http") if settings.allow_http_targets else ("https",)
    if parts.scheme not in allowed:
        spelled = " or ".join(f"{scheme}://" for scheme in allowed)
        raise TargetRefused(
            "scheme_not_allowed", f"targetUrl must be an absolute {spelled} URL"
        )
    if not parts.hostname:
        raise TargetRefused("invalid_url", "targetUrl has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused(
            "credentials_in_url",
            "targetUrl must not contain user:password@; put secrets in the path "
            "or rely on the webhook signature",
        )
    if parts.fragment or url.endswith("#"):
        raise TargetRefused("fragment_in_url", "targetUrl must not contain a #fragment")
    if port == 0:
        raise TargetRefused("invalid_url", "targetUrl has port 0")
    if not url.isprintable():
        raise TargetRefused(
            "invalid_url", "targetUrl must not contain control characters"
        )
    sent = _check_authority(parts.scheme, parts.netloc, parts.hostname, port, settings)
    return parts, sent


@functools.lru_cache(maxsize=1024)
def _check_authority(
    scheme: str, netloc: str, host: str, port: int | None, settings: Settings
) -> str:
    """Check a URL's host and that the delivery client reads its authority alike.

    Cached for authorities that pass (a refusal raises, and is not cached):
    most subscriptions of a service point at a few hosts. httpx's reading
    of a URL of printable characters can fail only on its scheme and
    authority (the host's address or IDNA 2008 name, the port), so reading
    ``scheme://netloc/`` once stands for every path and query under it.
    """
    if "%" in host:
        raise TargetRefused(
            "invalid_url", "targetUrl host must not name an IPv6 zone (%...)"
        )
    _check_host(host, settings)
    try:
        read = httpx.URL(f"{scheme}://{netloc}/")
    except httpx.InvalidURL as exc:
        raise TargetRefused(
            "invalid_url", f"targetUrl cannot be used for delivery: {exc}"
        ) from exc
    default = 443 if scheme == "https" else 80
    written = default if port is None else port
    if (default if read.port is None else read.port) != written:
        raise TargetRefused(
            "invalid_url",
            "targetUrl's port is unclear (text between the host and the port); "
            "write the authority as host:port or [address]:port",
        )
    sent = read.raw_host.decode("ascii")
    if sent != host:
        _check_host(sent, settings)
    return sent


def _check_host(host: str, settings: Settings) -> None:
    name = host.rstrip(".").lower()
    if name in METADATA_HOSTS:
        raise TargetRefused("metadata_host", f"{host} is a cloud metadata host")
    if name == "localhost" or name.endswith(".localhost"):
        address: IPAddress | None = ipaddress.ip_address("127.0.0.1")
        spelled_out = True
    else:
        address = parse_host(name)
        spelled_out = address is None or address.version == 6 or name == str(address)
    if address is not None:
        reason = address_refusal(address, settings)
        if reason is not None:
            raise TargetRefused("address_not_allowed", f"targetUrl host {reason}")
    if not spelled_out:
        # Refused or not, every spelling is judged by its address above; an
        # allowed one must still be written so that the delivery client
        # (which takes dotted quads only) reaches the same address.
        raise TargetRefused(
            "invalid_url",
            f"targetUrl host {host} spells an IPv4 address in a short, octal, "
            f"hexadecimal or decimal form; write it as {address}",
        )


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (empty when it does not resolve)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def check_url_resolved(url: str, settings: Settings) -> SplitResult:
    """:func:`check_url`, then refuse if the host resolves to a refused address."""
    parts, host = _checked(url, settings)
    if parse_host(host) is not None:
        return parts
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolve(host, port)
    if not addresses:
        raise TargetRefused(
            "unresolvable_host",
            f"targetUrl host {host} does not resolve; check the spelling",
        )
    for address in addresses:
        reason = address_refusal(address, settings)
        if reason is not None:
            raise TargetRefused(
                "address_not_allowed", f"targetUrl host {host} resolves to {reason}"
            )
    return parts
