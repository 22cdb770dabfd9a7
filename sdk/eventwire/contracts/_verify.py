"""Live verification: read a contract's channels on a real broker and check every message.

The messages are read through the backend's raw subscription (`Backend.subscribe`), not the
pipeline, so that invalid ones are seen as they are; each is checked with `ChannelRules`
and acknowledged. The subscription uses a throw-away group, removed afterwards where the
backend can remove groups (`GroupAdmin`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from eventwire.backend import GroupAdmin, Inbound, SubscriptionSpec
from eventwire.bindings import from_headers
from eventwire.contracts._conform import ChannelRules, Problem, select_channels
from eventwire.errors import DecodeError
from eventwire.plugins import create_backend
from eventwire.urls import redact_url

__all__ = ["Seen", "VerifyReport", "verify_live", "write_json", "write_junit"]

#: How long ``verify`` watches when neither a duration nor a count is given.
DEFAULT_DURATION = 10.0


@dataclass(frozen=True)
class Seen:
    """One message read: where, what it claims to be, and what is wrong with it."""

    number: int
    channel: str
    id: str | None
    type: str | None
    key: str | None
    problems: tuple[Problem, ...]
    #: The start of the body, kept for messages that break the contract.
    excerpt: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class VerifyReport:
    """Every message a verification saw, per channel."""

    contract: str
    url: str
    channels: list[str]
    group: str
    seen: list[Seen] = field(default_factory=list)
    group_removed: bool | None = None
    seconds: float = 0.0

    @property
    def violations(self) -> list[Seen]:
        return [s for s in self.seen if not s.ok]

    def counts(self) -> dict[str, tuple[int, int]]:
        """Channel -> (messages seen, messages that break the contract)."""
        out = {c: (0, 0) for c in self.channels}
        for s in self.seen:
            total, bad = out[s.channel]
            out[s.channel] = (total + 1, bad + (0 if s.ok else 1))
        return out

    def exit_code(self) -> int:
        """1: a violation; 3: nothing seen; 0: everything seen conforms."""
        if self.violations:
            return 1
        return 3 if not self.seen else 0


async def verify_live(
    document: Mapping[str, Any],
    url: str,
    *,
    source: str = "<contract>",
    channels: Sequence[str] = (),
    duration: float | None = None,
    count: int | None = None,
    from_beginning: bool = False,
    on_message: Callable[[Seen], None] | None = None,
    on_ready: Callable[[VerifyReport], None] | None = None,
    stop: asyncio.Event | None = None,
    options: Mapping[str, Any] | None = None,
) -> VerifyReport:
    """Watch the channels of `document` on `url` and check every message seen.

    Stops after `duration` seconds, `count` messages or when `stop` is set, whichever comes
    first (with none of them, after `DEFAULT_DURATION` seconds). `on_ready` gets the (empty)
    report once every channel is subscribed. `ContractError` for an unknown channel,
    `BackendUnavailableError` for an unreachable broker.
    """
    rules = ChannelRules(document, source)
    selected = select_channels(rules, channels)
    if duration is None and count is None and stop is None:
        duration = DEFAULT_DURATION
    backend = create_backend(url, options)
    group = f"eventwire-verify-{uuid.uuid4().hex[:12]}"
    report = VerifyReport(source, redact_url(url), [c.address for c in selected], group)
    done = asyncio.Event()
    started = time.monotonic()

    def handler_for(address: str) -> Callable[[Inbound], Any]:
        async def handle(inbound: Inbound) -> None:
            if count is not None and len(report.seen) >= count:
                return  # left unsettled: the group is thrown away
            wire = inbound.message
            problems = rules.check(address, wire, backend.binding)
            try:
                envelope = from_headers(wire.headers, backend.binding)
                event_id: str | None = envelope.id
                event_type: str | None = envelope.type
            except DecodeError:
                event_id = event_type = None
            seen = Seen(
                len(report.seen) + 1,
                address,
                event_id,
                event_type,
                wire.key,
                tuple(problems),
                _excerpt(wire.body) if problems else "",
            )
            report.seen.append(seen)
            await inbound.ack()
            if on_message is not None:
                on_message(seen)
            if count is not None and len(report.seen) >= count:
                done.set()

        return handle

    await backend.connect()
    try:
        await asyncio.gather(
            *(
                backend.subscribe(
                    SubscriptionSpec(
                        channel=channel.address,
                        group=group,
                        from_beginning=from_beginning,
                        member_prefix="eventwire-verify",
                    ),
                    handler_for(channel.address),
                )
                for channel in selected
            )
        )
        if on_ready is not None:
            on_ready(report)
        waiters = [asyncio.ensure_future(e.wait()) for e in (done, stop) if e is not None]
        try:
            await asyncio.wait(waiters, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
    finally:
        await backend.close()
    report.group_removed = await _remove_group(url, options, report.channels, group)
    report.seconds = time.monotonic() - started
    return report


def _excerpt(body: bytes, limit: int = 200) -> str:
    text = body[:limit].decode("utf-8", "replace")
    return text + ("…" if len(body) > limit else "")


async def _remove_group(
    url: str, options: Mapping[str, Any] | None, channels: Sequence[str], group: str
) -> bool | None:
    """Delete the throw-away group, once its member has left, where the backend can.

    ``None``: the backend cannot remove groups; ``False``: it failed to.
    """
    backend = create_backend(url, options)
    if not isinstance(backend, GroupAdmin):
        return None
    try:
        await backend.connect()
        for channel in channels:
            await backend.delete_group(channel, group)
    except Exception:
        return False
    finally:
        await backend.close()
    return True


# -- reports ---------------------------------------------------------------------------------


def write_json(report: VerifyReport, path: Path) -> None:
    """The report as JSON: totals per channel and every message that broke the contract."""
    data = {
        "contract": report.contract,
        "url": report.url,
        "group": report.group,
        "group_removed": report.group_removed,
        "seconds": round(report.seconds, 3),
        "seen": len(report.seen),
        "violations": len(report.violations),
        "channels": {
            c: {"seen": total, "violations": bad} for c, (total, bad) in report.counts().items()
        },
        "messages": [
            {**asdict(s), "problems": [asdict(p) for p in s.problems]} for s in report.violations
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_junit(report: VerifyReport, path: Path) -> None:
    """The report as JUnit XML: one test suite per channel, one test case per message."""
    root = ElementTree.Element(
        "testsuites",
        name=f"eventwire contracts verify {report.contract}",
        tests=str(len(report.seen)),
        failures=str(len(report.violations)),
    )
    by_channel: dict[str, list[Seen]] = {c: [] for c in report.channels}
    for s in report.seen:
        by_channel[s.channel].append(s)
    for channel, seen in by_channel.items():
        suite = ElementTree.SubElement(
            root,
            "testsuite",
            name=channel,
            tests=str(len(seen)),
            failures=str(sum(1 for s in seen if not s.ok)),
        )
        for s in seen:
            case = ElementTree.SubElement(
                suite,
                "testcase",
                classname=channel,
                name=f"#{s.number} {s.type or '?'} {s.id or ''}".strip(),
            )
            if s.problems:
                failure = ElementTree.SubElement(
                    case, "failure", message=s.problems[0].detail, type=s.problems[0].rule
                )
                failure.text = "\n".join(f"{p.rule}: {p.detail}" for p in s.problems)
    path.parent.mkdir(parents=True, exist_ok=True)
    ElementTree.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
