"""Contract tests of a service's code (``eventwire contracts test``), in process.

For every *receive* operation of the contract, the service's bus — under an
`eventwire.testing.TestBus`: its real pipeline on a fresh embedded broker (or on the broker
of ``Options.url``, where the contract's channels must carry nothing else), every handler run
once per case (a failure is dead-lettered at once and recorded) — gets the contract's
examples, one case per coverage target and N generated valid messages of each message the
operation receives, then one invalid message per violation. Four checks:

- ``handler``: the handler never fails on a contract-valid message (nor rejects it as
  invalid); a generated failure is shrunk by Hypothesis to a minimal case;
- ``publish``: every message the service publishes in reaction is declared by a *send*
  operation of the contract on that channel, and valid against its payload schema, headers
  and key;
- ``follow-up``: when the operation declares what must follow — an AsyncAPI ``reply``, or
  ``x-eventwire-emits`` (a list of message names, or a mapping from received message name
  to such a list) — one of those messages is published with the same correlation id within
  ``timeout`` seconds;
- ``invalid``: an invalid message is dead-lettered with reason ``invalid`` by every group
  that handles its type, and never reaches a handler.

Plus ``receive``: the bus must have a handler for every message a receive operation declares.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from jsonschema import Draft7Validator

from eventwire.backend import WireMessage
from eventwire.bindings import BINDINGS, from_headers, to_headers
from eventwire.bus import EventBus
from eventwire.contracts._document import deref, iter_messages
from eventwire.contracts._load import ContractValidator
from eventwire.contracts._schema import MessageModel, as_document, message_model
from eventwire.deadletter import DeadLetter
from eventwire.errors import ContractError, DecodeError
from eventwire.testing import Call, NotSettledError, Published, TestBus

__all__ = [
    "CHECKS",
    "CheckResult",
    "ContractTestReport",
    "Finding",
    "MessageCoverage",
    "Options",
    "run_contract_test",
]

#: The checks, in report order, with what each one means.
CHECKS: Mapping[str, str] = {
    "receive": "the bus handles every message the contract says it receives",
    "handler": "handlers never fail on (or reject) contract-valid messages",
    "publish": "what the service publishes is declared, on that channel, and valid",
    "follow-up": "the declared reply / x-eventwire-emits follows, with the correlation id",
    "invalid": "invalid messages are dead-lettered as 'invalid' and never reach a handler",
}
_POLL = 0.005
_SDK = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PREFIX_BINDING = {"ce_": "kafka", "ce-": "nats", "cloudEvents:": "amqp"}


@dataclasses.dataclass(frozen=True)
class Options:
    """How much to send and how long to wait."""

    examples_only: bool = False
    max_cases: int = 25
    timeout: float = 2.0
    settle_timeout: float = 10.0
    #: The broker the service's bus runs on (None: a fresh embedded memory:// broker).
    url: str | None = None
    shrink_time: float = 10.0


@dataclasses.dataclass(frozen=True)
class Finding:
    """One violation: which check, for which message, on which case, and what happened."""

    check: str
    message: str
    operation: str
    case: str
    problem: str
    payload: Any = None
    detail: str = ""


@dataclasses.dataclass
class CheckResult:
    """One check of one received message: how many cases it ran on and what it found."""

    check: str
    message: str
    operation: str
    cases: int = 0
    findings: list[Finding] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class MessageCoverage:
    """One message of the contract: cases sent to the service, messages it produced."""

    name: str
    channels: tuple[str, ...]
    exercised: int = 0
    produced: int = 0

    @property
    def status(self) -> str:
        """``exercised``, ``produced``, both, or ``never seen``."""
        seen = [s for s, n in (("exercised", self.exercised), ("produced", self.produced)) if n]
        return " + ".join(seen) or "never seen"


@dataclasses.dataclass
class ContractTestReport:
    """Everything one run found."""

    document: str
    url: str
    results: list[CheckResult]
    coverage: list[MessageCoverage]

    @property
    def findings(self) -> list[Finding]:
        """Every violation, in report order."""
        return [f for r in self.results for f in r.findings]

    @property
    def ok(self) -> bool:
        """True when nothing was violated."""
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the run."""
        return {
            "document": self.document,
            "url": self.url,
            "ok": self.ok,
            "results": [
                {**dataclasses.asdict(r), "findings": [dataclasses.asdict(f) for f in r.findings]}
                for r in self.results
            ],
            "coverage": [{**dataclasses.asdict(c), "status": c.status} for c in self.coverage],
        }


@dataclasses.dataclass(frozen=True)
class _Operation:
    """A receive operation: its id, channel address, messages and declared follow-ups."""

    id: str
    channel: str
    messages: tuple[str, ...]
    #: received message name -> (message name, channel address or None: any channel)
    follow_ups: Mapping[str, tuple[tuple[str, str | None], ...]]


@dataclasses.dataclass
class _Sent:
    """One case sent: its ids, where its reactions start, and what happened to it."""

    event_id: str
    correlation: str
    start: int
    unsettled: str = ""
    calls: list[Call] = dataclasses.field(default_factory=list)
    letters: list[DeadLetter] = dataclasses.field(default_factory=list)


class _CaseFailed(Exception):
    """Raised inside the Hypothesis test so that it shrinks the case."""


class _Contract:
    """What the checks need of the document."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.validator = ContractValidator(document)
        try:
            entries = list(iter_messages(document))
        except KeyError as exc:
            raise ContractError(str(exc.args[0])) from None
        self.channels = {e.name: self._addresses(e.channels) for e in entries}
        self.receives = list(self._receive_operations())
        self.sends = self._send_operations()
        self._models: dict[tuple[str, str], MessageModel] = {}

    def model(self, name: str, channel: str) -> MessageModel:
        key = (name, channel)
        if key not in self._models:
            self._models[key] = message_model(self.document, name, channel)
        return self._models[key]

    def _addresses(self, channel_ids: Iterable[str]) -> tuple[str, ...]:
        return tuple(self._channel(cid)[0] for cid in channel_ids)

    def _channel(self, channel_id: str) -> tuple[str, Mapping[str, Any]]:
        node, _ = deref(self.document, self.document["channels"][channel_id], "")
        address = node.get("address")
        return (str(address if address is not None else channel_id), node)

    def _ref_channel(self, node: Any, where: str) -> tuple[str, Mapping[str, Any]]:
        ref = node.get("$ref", "") if isinstance(node, Mapping) else ""
        if not ref.startswith("#/channels/"):
            raise ContractError(f"{where}: the channel must be a $ref to #/channels/...")
        return self._channel(ref.split("/", 2)[2].replace("~1", "/").replace("~0", "~"))

    def _names(self, refs: Any, channel: Mapping[str, Any], where: str) -> tuple[str, ...]:
        if not refs:
            refs = list((channel.get("messages") or {}).values())
        names = []
        for index, ref in enumerate(refs):
            try:
                message, _ = deref(self.document, ref, f"{where}/{index}")
            except KeyError as exc:
                raise ContractError(f"{where}/{index}: {exc.args[0]}") from None
            names.append(str(message.get("name") or str(ref.get("$ref", "")).rsplit("/", 1)[-1]))
        return tuple(names)

    def _operations(
        self, action: str
    ) -> Iterator[tuple[str, Mapping[str, Any], str, str, tuple[str, ...]]]:
        """Id, object, JSON path, channel address and message names of each `action`
        operation, in document order."""
        for op_id, node in (self.document.get("operations") or {}).items():
            op, _ = deref(self.document, node, f"/operations/{op_id}")
            if op.get("action") != action:
                continue
            where = f"$.operations.{op_id}"
            address, channel = self._ref_channel(op.get("channel"), f"{where}.channel")
            names = self._names(op.get("messages"), channel, f"{where}.messages")
            yield str(op_id), op, where, address, names

    def _receive_operations(self) -> Iterable[_Operation]:
        for op_id, op, where, address, messages in self._operations("receive"):
            follow: dict[str, tuple[tuple[str, str | None], ...]] = {}
            reply = op.get("reply")
            if isinstance(reply, Mapping):
                reply, _ = deref(self.document, reply, f"{where}.reply")
                reply_channel, reply_node = self._ref_channel(
                    reply.get("channel"), f"{where}.reply.channel"
                )
                names = self._names(reply.get("messages"), reply_node, f"{where}.reply.messages")
                follow = {m: tuple((n, reply_channel) for n in names) for m in messages}
            emits = op.get("x-eventwire-emits")
            if isinstance(emits, list):
                for m in messages:
                    follow[m] = (*follow.get(m, ()), *((str(n), None) for n in emits))
            elif isinstance(emits, Mapping):
                for m, names in emits.items():
                    follow[str(m)] = (*follow.get(str(m), ()), *((str(n), None) for n in names))
            elif emits is not None:
                raise ContractError(
                    f"{where}.x-eventwire-emits must be a list of message names or a mapping "
                    "from a received message name to such a list"
                )
            yield _Operation(op_id, address, messages, follow)

    def _send_operations(self) -> dict[str, set[str]]:
        sends: dict[str, set[str]] = {}
        for _, _, _, address, names in self._operations("send"):
            sends.setdefault(address, set()).update(names)
        return sends


class _Run:
    """One run: the service under a `TestBus`, the cases and what they caused."""

    def __init__(self, contract: _Contract, test: TestBus, options: Options) -> None:
        self.contract = contract
        self.test = test
        self.bus = test.buses[0]
        self.binding = self.bus.backend.binding
        self.options = options
        self.loop = asyncio.get_running_loop()
        self.exercised: dict[str, int] = {}
        self.produced: dict[str, int] = {}

    # -- one case ------------------------------------------------------------------------

    def wire(self, message: Any, event_id: str, correlation: str) -> WireMessage:
        prefix = next(
            (p for p in _PREFIX_BINDING if any(h.startswith(p) for h in message.headers)), "ce_"
        )
        headers = {k: _text(v) for k, v in message.headers.items()}
        try:
            envelope = from_headers(headers, _PREFIX_BINDING[prefix])
        except DecodeError as exc:
            raise ContractError(
                f"message {message.name!r}: its headers are not an envelope: {exc}"
            ) from None
        envelope = dataclasses.replace(
            envelope, id=event_id, correlationid=correlation, time=datetime.now(UTC)
        )
        body = json.dumps(message.payload).encode()
        return WireMessage(body, to_headers(envelope, self.binding), message.key)

    async def send(self, message: Any) -> _Sent:
        """Put `message` on its channel as a foreign producer would; wait until settled."""
        sent = _Sent(str(uuid.uuid4()), str(uuid.uuid4()), len(self.test.published))
        self.exercised[message.name] = self.exercised.get(message.name, 0) + 1
        wire = self.wire(message, sent.event_id, sent.correlation)
        try:
            await self.test.inject(message.channel, wire.body, wire.headers, key=wire.key)
        except NotSettledError as exc:
            sent.unsettled = str(exc).splitlines()[0]
        except Exception:
            pass
        sent.calls = [c for c in self.test.calls() if c.delivery.id == sent.event_id]
        sent.letters = [
            letter
            for letter in self.test.letters
            if letter.channel == message.channel
            and letter.original.headers.get(_id_header(self.binding)) == sent.event_id
        ]
        return sent

    def groups_for(self, channel: str, name: str) -> list[str]:
        return [
            info.group
            for info in self.bus.subscriptions.values()
            if info.channel == channel and name in info.routes
        ]

    async def valid_case(self, op: _Operation, message: Any, label: str) -> list[Finding]:
        sent = await self.send(message)
        found: list[Finding] = []

        def finding(check: str, problem: str, detail: str = "") -> None:
            found.append(
                Finding(check, message.name, op.id, label, problem, message.payload, detail)
            )

        if sent.unsettled:
            finding("handler", f"{sent.unsettled} (a handler hangs?)")
        for call in sent.calls:
            if call.error is not None:
                finding(
                    "handler",
                    f"group {call.group!r} raised {type(call.error).__name__}: {call.error}",
                    _handler_traceback(call.error),
                )
        for letter in sent.letters:
            if letter.reason == "invalid":
                finding(
                    "handler",
                    f"group {letter.group!r} rejected a contract-valid message: {letter.error}",
                )
        for item in self.test.published[sent.start :]:
            for problem in self.check_publish(item):
                finding("publish", problem)
        expected = op.follow_ups.get(message.name)
        failed = any(f.check == "handler" for f in found)
        if expected and not failed and not await self.follow_up(sent, expected):
            names = " or ".join(
                name if channel is None else f"{name} on {channel!r}" for name, channel in expected
            )
            finding(
                "follow-up",
                f"no {names} with correlation id {sent.correlation} within "
                f"{self.options.timeout:g}s",
            )
        return found

    async def follow_up(self, sent: _Sent, expected: tuple[tuple[str, str | None], ...]) -> bool:
        """Whether one of `expected` is published with the case's correlation id in time."""
        deadline = self.loop.time() + self.options.timeout
        while True:
            for item in self.test.published[sent.start :]:
                if item.correlation_id == sent.correlation and any(
                    item.type == name and where in (None, item.channel) for name, where in expected
                ):
                    return True
            if self.loop.time() >= deadline:
                return False
            await asyncio.sleep(_POLL)

    def check_publish(self, item: Published) -> list[str]:
        name, channel = item.type, item.channel
        self.produced[name] = self.produced.get(name, 0) + 1
        declared = self.contract.sends.get(channel)
        if declared is None:
            return [
                f"published {name} to channel {channel!r}, which no send operation of the "
                "contract declares"
            ]
        if name not in declared:
            return [
                f"published {name} to {channel!r}, but the contract's send operations on that "
                f"channel declare only {', '.join(sorted(declared))}"
            ]
        body = json.dumps(item.payload).encode()
        problems = [
            f"published {name} breaks its payload schema at {p}"
            for p in self.contract.validator.errors(name, body)
        ]
        model = self.contract.model(name, channel)
        if model.headers:
            prefix = next((p for p in _PREFIX_BINDING if p + "id" in _props(model.headers)), "ce_")
            named = to_headers(item.envelope, _PREFIX_BINDING[prefix])
            problems += [
                f"published {name} breaks its headers schema at {e.json_path}: {e.message}"
                for e in Draft7Validator(model.headers).iter_errors(named)
            ]
        if model.has_key and item.key is None:
            problems.append(f"published {name} without a key; the contract gives it one")
        elif model.key_field is not None and item.key is not None:
            value = item.payload.get(model.key_field)
            if value is not None and _text(value) != item.key:
                problems.append(
                    f"published {name} with key {item.key!r}, not its "
                    f"{model.key_field} {_text(value)!r}"
                )
        return problems

    async def invalid_case(self, op: _Operation, message: Any) -> list[Finding]:
        sent = await self.send(message)
        found: list[Finding] = []

        def finding(problem: str) -> None:
            found.append(
                Finding("invalid", message.name, op.id, message.violation, problem, message.payload)
            )

        reached = {call.group for call in sent.calls}
        for group in sorted(reached):
            finding(f"group {group!r}: the handler received it ({message.violation})")
        reasons = {letter.group: letter.reason for letter in sent.letters}
        for group in self.groups_for(message.channel, message.name):
            if group in reached:
                continue
            reason = reasons.get(group)
            if reason is None:
                finding(f"group {group!r} did not dead-letter it")
            elif reason != "invalid":
                finding(f"group {group!r} dead-lettered it with reason {reason!r}, not 'invalid'")
        return found

    # -- the phases ----------------------------------------------------------------------

    def run_sync(self, coro_factory: Callable[[], Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro_factory(), self.loop).result()

    def shrink(self, op: _Operation, strategy: Any, max_cases: int) -> tuple[int, list[Finding]]:
        """Run generated cases through Hypothesis; the first failure is shrunk and returned.

        Shrinking runs real cases for at most ``options.shrink_time`` seconds; after that the
        smallest failing case found so far is the answer (Hypothesis finishes on no-ops).
        """
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis.reporting import with_reporter

        from eventwire.contracts._sample import unblamed_random

        ran = 0
        last: list[Finding] = []
        budget_end: float | None = None

        @settings(
            max_examples=max_cases,
            database=None,
            deadline=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
            print_blob=False,
        )
        @given(strategy)
        def case(message: Any) -> None:
            nonlocal ran, last, budget_end
            if budget_end is not None and time.monotonic() > budget_end:
                raise _CaseFailed("shrinking stopped: out of time")
            ran += 1
            found = self.run_sync(lambda: self.valid_case(op, message, "generated (shrunk)"))
            if found:
                last = found
                if budget_end is None:
                    budget_end = time.monotonic() + self.options.shrink_time
                raise _CaseFailed(found[0].problem)

        with with_reporter(lambda _: None), unblamed_random():  # the loop runs meanwhile
            try:
                case()
            except _CaseFailed:
                return ran, last
        return ran, []


async def run_contract_test(
    document: str | Any,
    bus: EventBus,
    options: Options | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    source: str | None = None,
) -> ContractTestReport:
    """Run the contract tests of `bus` against `document` (a path or a loaded mapping).

    Bad input (document, message without schema, unsupported schema keyword, bus already
    started, unreachable broker) raises an `EventwireError` before anything is sent.
    """
    from eventwire.contracts._cases import (
        coverage_messages,
        example_messages,
        invalid_cases,
        valid_messages,
    )

    options = options or Options()
    loaded = as_document(document)
    contract = _Contract(loaded)
    plans = []
    for op in contract.receives:
        for name in op.messages:
            valid: list[Any] = example_messages(loaded, name, channel=op.channel)
            invalid: list[Any] = []
            generated = None
            if not options.examples_only:
                valid = list(coverage_messages(loaded, name, channel=op.channel))
                invalid = list(invalid_cases(loaded, name, channel=op.channel))
                generated = valid_messages(loaded, name, channel=op.channel)
            plans.append((op, name, valid, generated, invalid))
    test = TestBus(bus, raise_handler_errors=True, timeout=options.settle_timeout, url=options.url)
    results: list[CheckResult] = []
    async with test:
        run = _Run(contract, test, options)
        for op, name, valid, generated, invalid in plans:
            if progress is not None:
                progress(f"{name} ({op.channel}, operation {op.id})")
            checks = {c: CheckResult(c, name, op.id) for c in CHECKS}
            checks["receive"].cases = 1
            if not run.groups_for(op.channel, name):
                checks["receive"].findings.append(
                    Finding(
                        "receive",
                        name,
                        op.id,
                        "-",
                        f"no handler of the bus receives {name} on channel {op.channel!r}",
                    )
                )
            else:
                count = len(valid)
                for message in valid:
                    label = f"example {message.example!r}" if message.example else message.covers
                    for f in await run.valid_case(op, message, str(label)):
                        checks[f.check].findings.append(f)
                if generated is not None and options.max_cases > 0:
                    ran, found = await asyncio.to_thread(
                        run.shrink, op, generated, options.max_cases
                    )
                    count += ran
                    for f in found:
                        checks[f.check].findings.append(f)
                for check in ("handler", "publish"):
                    checks[check].cases = count
                if op.follow_ups.get(name):
                    checks["follow-up"].cases = count
                for message in invalid:
                    for f in await run.invalid_case(op, message):
                        checks["invalid"].findings.append(f)
                checks["invalid"].cases = len(invalid)
            results += [r for r in checks.values() if r.cases or r.findings]
    coverage = [
        MessageCoverage(name, channels, run.exercised.get(name, 0), run.produced.get(name, 0))
        for name, channels in contract.channels.items()
    ]
    if source is None:
        source = "<document>" if isinstance(document, Mapping) else str(document)
    return ContractTestReport(source, test.url, results, coverage)


def _id_header(binding: str) -> str:
    return BINDINGS[binding] + "id"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _props(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    props = schema.get("properties")
    return props if isinstance(props, Mapping) else {}


def _handler_traceback(error: BaseException) -> str:
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith(_SDK)
    ]
    lines = traceback.format_list(frames)
    lines += traceback.format_exception_only(type(error), error)
    return "".join(lines).rstrip()
