"""The delivery record kept in a partition's commit metadata.

Before a member hands records beyond the committed offset to the pipeline, it commits the
partition again (the same offset) with metadata naming what it handed out and how often:
runs of ``upto:count`` (offsets after the previous run up to and including ``upto`` were
delivered ``count`` times). The next owner of the partition reads it on assignment and
delivers those records with ``delivery_count`` one higher, even when the member that held
them was killed.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableSequence

__all__ = ["Runs", "append_runs", "count_for", "decode", "encode"]

#: ``(upto offset, deliveries)``, ascending by offset.
Runs = list[tuple[int, int]]

_PREFIX = "eventwire.handed:1 "
#: Kafka's ``offset.metadata.max.bytes`` defaults to 4096; stay far below it.
_MAX_RUNS = 64


def append_runs(runs: MutableSequence[tuple[int, int]], handed: Iterable[tuple[int, int]]) -> None:
    """Append ``(offset, delivery_count)`` pairs in offset order (after every run) to `runs`,
    a pair with the last run's count extending that run."""
    for offset, count in handed:
        if runs and runs[-1][1] == count:
            runs[-1] = (offset, count)
        else:
            runs.append((offset, count))


def encode(handed: Iterable[tuple[int, int]]) -> str:
    """Metadata for ``(offset, delivery_count)`` pairs in offset order ("" when none)."""
    runs: Runs = []
    append_runs(runs, handed)
    if len(runs) > _MAX_RUNS:  # merge into one run with the highest count (never too low)
        runs = [(runs[-1][0], max(count for _, count in runs))]
    if not runs:
        return ""
    return _PREFIX + ",".join(f"{upto}:{count}" for upto, count in runs)


def decode(metadata: str | None) -> Runs:
    """The runs in `metadata`; none when it is empty or not ours."""
    if not metadata or not metadata.startswith(_PREFIX):
        return []
    runs: Runs = []
    try:
        for item in metadata[len(_PREFIX) :].split(","):
            upto, count = item.split(":")
            runs.append((int(upto), int(count)))
    except ValueError:
        return []
    return runs


def count_for(runs: Runs, offset: int) -> int:
    """How many times the record at `offset` was delivered before (0: never)."""
    for upto, count in runs:
        if offset <= upto:
            return count
    return 0
