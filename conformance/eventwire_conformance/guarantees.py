"""The guarantees the conformance suite checks: ids, short names and one-line statements.

The table in the design document is the specification; this module is its machine-readable
copy (used for test selection, reports and ``eventwire conformance list``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

__all__ = ["GUARANTEES", "IDS", "UNSUPPORTED_PREFIX", "Guarantee", "guarantee_of", "parse_ids"]

#: A skip whose reason starts with this is reported as *unsupported* (never as passed).
UNSUPPORTED_PREFIX = "eventwire-unsupported:"


@dataclasses.dataclass(frozen=True, slots=True)
class Guarantee:
    """One guarantee: ``G05``, ``key-order``, and what it promises."""

    id: str
    name: str
    statement: str


GUARANTEES: dict[str, Guarantee] = {
    g.id: g
    for g in (
        Guarantee(
            "G01",
            "roundtrip",
            "payload, type, id, source, time, correlation id and custom headers arrive intact",
        ),
        Guarantee(
            "G02",
            "isolation",
            "a subscriber sees only its channel; channels with similar names do not leak",
        ),
        Guarantee("G03", "fan-out", "every subscribed group receives every event"),
        Guarantee(
            "G04",
            "competing",
            "members of one group share the work; each event is handled by one member",
        ),
        Guarantee(
            "G05",
            "key-order",
            "same-key events are handled in publish order, with "
            "concurrency > 1 and several group members",
        ),
        Guarantee(
            "G06",
            "at-least-once",
            "a failing handler does not lose the event: it is "
            "redelivered until it succeeds or is dead-lettered",
        ),
        Guarantee(
            "G07",
            "retry",
            "RetryPolicy bounds attempts and spaces them by its "
            "backoff; the handler sees the attempt number; retries keep key order",
        ),
        Guarantee(
            "G08",
            "dead-letter",
            "after the last attempt the event goes to "
            "<channel>.dlq with payload, headers and failure metadata; the group "
            "moves on",
        ),
        Guarantee(
            "G09",
            "poison",
            "an undecodable or invalid message goes to the DLQ at once, with reason 'invalid'",
        ),
        Guarantee(
            "G10", "replay-dlq", "DLQ events can be listed and replayed to their original channel"
        ),
        Guarantee(
            "G11",
            "idempotency",
            "the same event id delivered twice runs the handler's effect once per group",
        ),
        Guarantee("G12", "crash", "a consumer killed mid-handler loses nothing"),
        Guarantee(
            "G13",
            "durable",
            "events published while a group has no running member are delivered when one starts",
        ),
        Guarantee("G14", "from-beginning", "a new group can start from the oldest retained event"),
        Guarantee(
            "G15",
            "confirm",
            "publish returns once the broker has the event; 10k "
            "concurrent publishes then close() lose nothing",
        ),
        Guarantee(
            "G16",
            "reconnect",
            "the broker restarted mid-stream: the bus reconnects and nothing is lost",
        ),
        Guarantee(
            "G17",
            "large",
            "a 1 MiB payload round-trips; above the backend's limit, a clear error at publish",
        ),
        Guarantee(
            "G18",
            "shutdown",
            "close() lets in-flight handlers finish and settles "
            "them; nothing finished is redelivered",
        ),
        Guarantee("G19", "backpressure", "a slow handler bounds the number of in-flight events"),
        Guarantee(
            "G20",
            "contract",
            "with a contract attached, publishing an invalid event "
            "raises a clear error and sends nothing",
        ),
        Guarantee(
            "G21",
            "membership",
            "members join and leave (gracefully and by SIGKILL) while events flow: no key is "
            "handled by two members at once, per-key order of first deliveries is kept, "
            "nothing is lost",
        ),
        Guarantee(
            "G22",
            "broker-crash",
            "the broker is SIGKILLed and started again under load: every publish that "
            "returned is handled, per-key order of first deliveries is kept, duplicates "
            "are counted",
        ),
        Guarantee(
            "G23",
            "node-failure",
            "the cluster node leading the channel is SIGKILLed under load and started again: "
            "every confirmed publish is handled, per-key order of first deliveries is kept, "
            "the bus goes on without a restart",
        ),
    )
}

#: Every guarantee id, in order.
IDS: tuple[str, ...] = tuple(GUARANTEES)

_ID_IN_NAME = re.compile(r"(?<![A-Za-z0-9])G(\d\d)(?![0-9])")


def guarantee_of(test_name: str) -> str | None:
    """The guarantee id a test's name carries (``test_G05_key_order`` -> ``"G05"``)."""
    match = _ID_IN_NAME.search(test_name)
    if match is None:
        return None
    found = "G" + match.group(1)
    return found if found in GUARANTEES else None


def parse_ids(values: Iterable[str]) -> list[str]:
    """Guarantee ids from comma- or space-separated text, in canonical order.

    ``"g5, G08"`` -> ``["G05", "G08"]``. Raises `ValueError` naming every unknown id and
    listing the valid ones.
    """
    wanted: set[str] = set()
    unknown: list[str] = []
    for value in values:
        for token in re.split(r"[,\s]+", value.strip()):
            if not token:
                continue
            normal = token.upper()
            if re.fullmatch(r"G\d{1,2}", normal):
                normal = f"G{int(normal[1:]):02d}"
            if normal in GUARANTEES:
                wanted.add(normal)
            else:
                unknown.append(token)
    if unknown:
        raise ValueError(
            f"unknown guarantee id(s): {', '.join(unknown)}; valid ids: {', '.join(IDS)}"
        )
    return [gid for gid in IDS if gid in wanted]
