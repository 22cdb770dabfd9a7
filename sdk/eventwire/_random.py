"""eventwire's own random numbers (ids, trace ids, retry jitter).

A generator seeded from the system, and again in every forked child. Not the `random`
module's global one: a test framework may seed that to the same value for every example
(Hypothesis does), so every event of every example would get the same id and an idempotent
handler would skip them all; and a draw from it in the bus's thread would move the state
that such a framework watches in its own.
"""

from __future__ import annotations

import os
import random

__all__ = ["random_bits", "uniform"]

_RANDOM = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_RANDOM.seed)

random_bits = _RANDOM.getrandbits
uniform = _RANDOM.uniform
