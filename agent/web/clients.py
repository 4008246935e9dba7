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
from collections import deque
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def trusted_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


def client_key(peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The rate-limit key of a request from ``peer`` carrying ``X-Forwarded-For``."""
    address = _address(peer)
    if address is None:
        return "unknown"
    if not _is_trusted(address, trusted) or not forwarded_for:
        return _key(address)
    for hop in reversed(forwarded_for.split(",")):
        hop_address = _address(hop)
        if hop_address is None:  # our proxy wrote something that is not an address
            return _key(address)
        if not _is_trusted(hop_address, trusted):
            return _key(hop_address)
    return _key(address)  # every hop is one of our proxies


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
    """At most ``limit`` hits per client in any ``window`` seconds (a sliding log)."""

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
        self._hits: dict[str, deque[float]] = {}
        self._last_sweep = clock()

    def allow(self, client: str) -> bool:
        """Count a hit by ``client``; False (and not counted) when it is over the limit."""
        now = self._clock()
        self._sweep(now)
        hits = self._hits.get(client)
        if hits is None:
            if len(self._hits) >= self._max_clients:
                log.warning("pay-page rate limiter full (%d clients): refusing", len(self._hits))
                return False
            hits = self._hits[client] = deque()
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True

    def _sweep(self, now: float) -> None:
        """Forget clients idle for a whole window (at most once per window)."""
        if now - self._last_sweep < self.window and len(self._hits) < self._max_clients:
            return
        self._last_sweep = now
        idle = [c for c, hits in self._hits.items() if not hits or now - hits[-1] >= self.window]
        for client in idle:
            del self._hits[client]
