"""Replicated endpoints: several base URLs serving one model, with least-outstanding routing.

A `Pool` holds one `Replica` per base URL. Each request goes to the healthy replica with the
fewest requests in flight (ties: the one picked least recently). A replica whose connections
fail `max_failures` times in a row is taken out for a cooldown that doubles on every relapse
(up to `max_cooldown`); once the cooldown has passed it is eligible again, and one success puts
it fully back. With every replica out, the one that comes back soonest is tried anyway: a
request is never refused for want of a healthy replica.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

C = TypeVar("C")


@dataclass
class Replica(Generic[C]):
    """One base URL of a pool, with its client and health."""

    url: str
    client: C
    outstanding: int = 0
    consecutive_failures: int = 0
    down_until: float = 0.0
    cooldown: float = 0.0
    last_pick: int = -1
    served: int = 0  # requests answered (any HTTP status)
    failures: int = 0  # connection failures in all


@dataclass
class Pool(Generic[C]):
    """Least-outstanding routing with passive health checks over `replicas`."""

    replicas: Sequence[Replica[C]]
    max_failures: int = 3
    base_cooldown: float = 2.0
    max_cooldown: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _picks: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not self.replicas:
            raise ValueError("a pool needs at least one replica")

    def pick(self) -> Replica[C]:
        """The replica for the next request (see the module docstring)."""
        now = self.clock()
        healthy = [r for r in self.replicas if r.down_until <= now]
        if healthy:
            chosen = min(healthy, key=lambda r: (r.outstanding, r.last_pick))
        else:
            chosen = min(self.replicas, key=lambda r: (r.down_until, r.outstanding))
        self._picks += 1
        chosen.last_pick = self._picks
        return chosen

    @contextmanager
    def use(self) -> Iterator[Replica[C]]:
        """Pick a replica and count the request as outstanding on it while the block runs."""
        replica = self.pick()
        replica.outstanding += 1
        try:
            yield replica
        finally:
            replica.outstanding -= 1

    def succeeded(self, replica: Replica[C]) -> None:
        """The replica answered (with any HTTP status): it is reachable, so fully back."""
        replica.served += 1
        replica.consecutive_failures = 0
        replica.cooldown = 0.0
        replica.down_until = 0.0

    def connection_failed(self, replica: Replica[C]) -> None:
        """The replica could not be reached (refused, reset, timed out)."""
        replica.failures += 1
        replica.consecutive_failures += 1
        if replica.consecutive_failures >= self.max_failures:
            self.take_out(replica)

    def take_out(self, replica: Replica[C]) -> None:
        """Out of service for the next cooldown (twice the last one, up to max_cooldown)."""
        replica.consecutive_failures = max(replica.consecutive_failures, self.max_failures)
        replica.cooldown = min(self.max_cooldown,
                               replica.cooldown * 2 if replica.cooldown else self.base_cooldown)
        replica.down_until = self.clock() + replica.cooldown

    def healthy(self) -> list[str]:
        """The URLs in service now."""
        now = self.clock()
        return [r.url for r in self.replicas if r.down_until <= now]
