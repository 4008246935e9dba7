"""Who is asking, and how often: the pay pages' per-client look-up limit.

The client is the TCP peer, unless the peer is one of ``[web] trusted_proxies``: then it is
the last address in ``X-Forwarded-For`` that is not a trusted proxy (the one our own proxy
saw), so a client cannot dodge the limit by sending its own ``X-Forwarded-For``. An IPv6
client counts per /64, the block one household or phone is usually given.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def trusted_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


def client_key(peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The rate-limit key of a request from ``peer`` carrying ``X-Forwarded-For``."""
    address = client_address(peer, forwarded_for, trusted)
    return "unknown" if address is None else _key(address)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> Address | None:
    """The client of a request from ``peer`` carrying ``X-Forwarded-For`` (see the module)."""
    address = _address(peer)
    if address is None or not _is_trusted(address, trusted) or not forwarded_for:
        return address
    for hop in reversed(forwarded_for.split(",")):
        hop_address = _address(hop)
        if hop_address is None:  # our proxy wrote something that is not an address
            return address
        if not _is_trusted(hop_address, trusted):
            return hop_address
    return address  # every hop is one of our proxies


def forwarded_by_stranger(peer: str | None, forwarded: bool, trusted: tuple[Network, ...]) -> bool:
    """True when a request carries ``X-Forwarded-For``/``Forwarded`` (``forwarded``) and
    ``peer`` is not a trusted proxy: something we do not know relays it, so the peer's
    address says nothing about who sent it."""
    if not forwarded:
        return False
    address = _address(peer)
    return address is None or not _is_trusted(address, trusted)


def in_networks(address: Address | None, networks: tuple[Network, ...]) -> bool:
    return address is not None and _is_trusted(address, networks)


def _address(text: str | None) -> Address | None:
    if text is None:
        return None
    text = text.strip().removeprefix("[").removesuffix("]")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: Address, trusted: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def _key(address: Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RateLimiter:
    """At most ``limit`` hits per client in any ``window`` seconds (a sliding log).

    At most ``max_clients`` clients are remembered: when the table is full, a new client
    makes room by evicting the one whose last hit is oldest, so a flood of distinct
    addresses costs bounded memory and never locks everyone else out (an evicted client
    starts afresh, which is the least harm a full table can do).
    """

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_clients = max_clients
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        """Clients in order of their last hit, the stalest first."""
        self._evicted = 0

    def allow(self, client: str) -> bool:
        """Count a hit by ``client``; False (and not counted) when it is over the limit."""
        now = self._clock()
        self._forget_idle(now)
        hits = self._hits.get(client)
        if hits is None:
            self._make_room()
            hits = self._hits[client] = deque()
        self._hits.move_to_end(client)
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True

    def __len__(self) -> int:
        """How many clients are remembered now."""
        return len(self._hits)

    def _forget_idle(self, now: float) -> None:
        """Drop clients idle for a whole window: the stalest come first, so stop at a fresh one."""
        while self._hits:
            client, hits = next(iter(self._hits.items()))
            if hits and now - hits[-1] < self.window:
                return
            del self._hits[client]

    def _make_room(self) -> None:
        if len(self._hits) < self._max_clients:
            return
        self._hits.popitem(last=False)
        self._evicted += 1
        if self._evicted % 1000 == 1:  # a flood: say so, but not once per request
            log.warning(
                "pay-page rate limiter full (%d clients): evicting the least recent (%d so far)",
                self._max_clients, self._evicted,
            )  # fmt: skip
