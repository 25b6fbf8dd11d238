"""Exponential backoff with full jitter, shared by polling, signal retry and HTTP retry.

Jitter keeps a fleet of VMs that lost their metadata server at the same moment from
all coming back at the same moment.

On the idle agent's and the hook start paths: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import random

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Optional

#: Beyond this many doublings every delay is the cap anyway (2 ** 64 times any initial delay in use).
MAX_EXPONENT = 64


class Backoff:
    """Delays that double from ``initial`` up to ``cap``; each drawn uniformly from [delay/2, delay]."""

    def __init__(self, initial: float = 1.0, cap: float = 300.0, factor: float = 2.0,
                 rng: Optional[random.Random] = None) -> None:
        if initial <= 0 or cap < initial:
            raise ValueError("backoff needs 0 < initial <= cap")
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.failures = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """The un-jittered delay for the current failure count.

        The exponent is bounded: the count grows by one per failure for as long as a
        source stays down (and is saved across restarts), and ``2.0 ** 1024`` overflows a
        float, which after about 1,025 failures in a row raised instead of waiting.
        """
        exponent = min(max(self.failures - 1, 0), MAX_EXPONENT)
        return min(self.cap, self.initial * (self.factor ** exponent))

    def next_delay(self) -> float:
        """Record one more failure and return how long to wait before the next try."""
        self.failures += 1
        top = self.ceiling()
        return self._rng.uniform(top / 2, top)

    def reset(self) -> None:
        self.failures = 0
