"""Declaring a saga: its ordered steps, their commands, replies and compensations."""

from __future__ import annotations

import dataclasses
import enum
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from eventwire._naming import check_name
from eventwire.errors import ConfigurationError
from eventwire.events import Command, Event, Message

__all__ = [
    "REQUIRED",
    "Saga",
    "SagaCompensating",
    "SagaCompleted",
    "SagaContext",
    "SagaEvents",
    "SagaFailed",
    "SagaLifecycleEvent",
    "SagaStarted",
    "SagaStepCompleted",
    "Step",
]


class _Required(enum.Enum):
    REQUIRED = "REQUIRED"

    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of ``Step(compensation=...)``: a compensation must be given (or ``None``
#: to say on purpose that the step needs none).
REQUIRED: Final = _Required.REQUIRED


@dataclasses.dataclass(frozen=True, slots=True)
class SagaContext:
    """What a command builder sees: the saga's id and its data.

    ``data`` is the payload of the message that started the saga (or the mapping given to
    `SagaOrchestrator.begin`). ``replies`` maps the name of every completed step to the
    payload of the reply that completed it, so later steps and compensations can use what
    earlier ones produced (a reservation id, say). ``reason`` says why a saga is
    compensating or failed (empty otherwise).
    """

    saga_id: str
    data: Mapping[str, Any]
    replies: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    reason: str = ""

    def value(self, name: str) -> Any:
        """`name` from the data, else from the replies of completed steps (latest first)."""
        if name in self.data:
            return self.data[name]
        for reply in reversed(list(self.replies.values())):
            if name in reply:
                return reply[name]
        raise KeyError(name)

    def has(self, name: str) -> bool:
        """Whether `value(name)` finds something."""
        return name in self.data or any(name in reply for reply in self.replies.values())


CommandBuilder = Callable[[SagaContext], Command]
EventBuilder = Callable[[SagaContext], Message]


def build_from_data(model: type[Command], context: SagaContext) -> Command:
    """Build `model` from the saga values of the same names (the default builder)."""
    fields = {name: context.value(name) for name in model.model_fields if context.has(name)}
    return model.model_validate(fields)


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One step of a saga: send `command`, wait for a reply in `completed_by` or `failed_by`.

    - ``command``: the `Command` class sent (with ``bus.send``) when the step starts. It is
      built by ``build(context)`` if given, else from the saga values of the same names
      (`SagaContext.value`: the data, then the replies of earlier steps).
    - ``completed_by`` / ``failed_by``: the reply events that complete or fail the step.
      Replies are matched to their saga by correlation id, which the handling service must
      copy from the command (``correlation_id=delivery.correlation_id``).
    - ``compensation``: the `Command` that undoes the step, sent in reverse order when a
      later step fails or times out. Required for every step but the last; ``None`` says on
      purpose that the step needs no undoing (a read, say). ``build_compensation`` builds it
      (default: from the saga data).
    - ``compensated_by``: the events that confirm the compensation. When given, the saga
      waits for one before compensating the step before; when empty it moves on at once.
    - ``timeout``: seconds to wait for a reply (default: the saga's ``step_timeout``). A step
      that times out is compensated too, since its command may have taken effect.
    """

    name: str
    command: type[Command]
    completed_by: Sequence[type[Event]]
    failed_by: Sequence[type[Event]] = ()
    compensation: type[Command] | _Required | None = REQUIRED
    compensated_by: Sequence[type[Event]] = ()
    build: CommandBuilder | None = None
    build_compensation: CommandBuilder | None = None
    timeout: float | None = None

    def make_command(self, context: SagaContext) -> Command:
        """The command that starts this step."""
        if self.build is not None:
            return self.build(context)
        return build_from_data(self.command, context)

    def make_compensation(self, context: SagaContext) -> Command | None:
        """The command that undoes this step, or ``None`` when it needs none."""
        if not isinstance(self.compensation, type):
            return None
        if self.build_compensation is not None:
            return self.build_compensation(context)
        return build_from_data(self.compensation, context)

    @property
    def compensates(self) -> bool:
        """Whether this step has a compensation command."""
        return isinstance(self.compensation, type)


# -- lifecycle events --------------------------------------------------------------------


class SagaLifecycleEvent(Event):
    """Base of the events an orchestrator publishes about a saga (on ``sagas.<name>``)."""

    saga: str
    saga_id: str


class SagaStarted(SagaLifecycleEvent):
    """A saga instance started."""

    data: dict[str, Any] = {}


class SagaStepCompleted(SagaLifecycleEvent):
    """A step got the reply that completes it."""

    step: str
    reply: str


class SagaCompensating(SagaLifecycleEvent):
    """A step failed or timed out: completed steps are being undone in reverse order."""

    step: str
    reason: str


class SagaCompleted(SagaLifecycleEvent):
    """Every step completed."""


class SagaFailed(SagaLifecycleEvent):
    """The saga failed and its completed steps were compensated."""

    step: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class SagaEvents:
    """The lifecycle event classes of one saga, bound to its channel ``sagas.<name>``."""

    channel: str
    started: type[SagaStarted]
    step_completed: type[SagaStepCompleted]
    compensating: type[SagaCompensating]
    completed: type[SagaCompleted]
    failed: type[SagaFailed]

    def all(self) -> list[type[SagaLifecycleEvent]]:
        """Every lifecycle class, in lifecycle order."""
        return [self.started, self.step_completed, self.compensating, self.completed, self.failed]

    def by_type(self, name: str) -> type[SagaLifecycleEvent]:
        """The class whose CloudEvents type is `name`."""
        for model in self.all():
            if model.__eventwire__.type == name:
                return model
        raise KeyError(name)


def _bind(base: type[SagaLifecycleEvent], channel: str, saga: str) -> Any:
    name = f"{base.__name__}_{saga.replace('.', '_').replace('-', '_')}"
    keywords = {"channel": channel, "key": "saga_id", "type": base.__name__}
    return types.new_class(name, (base,), keywords)


# -- the saga ------------------------------------------------------------------------------


def _models(value: object, what: str, kind: type[Message]) -> tuple[type[Any], ...]:
    items: Iterable[object]
    if isinstance(value, type):
        items = (value,)
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise ConfigurationError(f"{what} must be a {kind.__name__} class or a list of them")
    out = []
    for item in items:
        if not isinstance(item, type) or not issubclass(item, kind) or item is kind:
            raise ConfigurationError(f"{what}: {item!r} is not a {kind.__name__} subclass")
        item.__eventwire__.require_channel()
        out.append(item)
    return tuple(out)


class Saga:
    """A saga: steps run in order; on a failure or timeout, completed steps are undone.

    ::

        order_saga = Saga(
            "order",
            started_by=OrderPlaced, saga_id=lambda e: e.order_id,
            steps=[
                Step("reserve", ReserveInventory, completed_by=[InventoryReserved],
                     failed_by=[InventoryReservationFailed], compensation=ReleaseInventory),
                Step("charge", ChargePayment, completed_by=[PaymentCharged],
                     failed_by=[PaymentDeclined], compensation=RefundPayment),
                Step("ship", ShipOrder, completed_by=[ItemShipped]),
            ],
            on_completed=lambda ctx: OrderCompleted(order_id=ctx.data["order_id"]),
        )

    - ``started_by``: an event that starts an instance (optional; `SagaOrchestrator.start`
      starts one from code). Its payload becomes the saga data.
    - ``saga_id``: the instance id from the starting event (default: the event's correlation
      id, else its id). Starting an id that exists does nothing, so a redelivered or
      duplicated starting event runs the saga once.
    - ``on_completed`` / ``on_failed``: build an event to publish (or a command to send) when
      the saga ends.
    - ``step_timeout``: the default seconds a step waits for its reply.
    - ``compensation_attempts``: how often an unconfirmed compensation is sent before the
      saga gives up waiting for it (the saga then fails with that noted in its reason).

    A bad declaration raises `ConfigurationError` here: no steps, duplicate step names, a
    step other than the last without ``compensation`` (pass ``compensation=None`` to say it
    needs none), a reply class used twice, or a name a broker would reject.
    """

    def __init__(
        self,
        name: str,
        steps: Sequence[Step],
        *,
        started_by: type[Event] | None = None,
        saga_id: Callable[[Any], str] | None = None,
        on_completed: EventBuilder | None = None,
        on_failed: EventBuilder | None = None,
        step_timeout: float = 30.0,
        compensation_attempts: int = 3,
    ) -> None:
        check_name("saga", name)
        self.name = name
        steps = list(steps)
        if not steps:
            raise ConfigurationError(f"saga {name!r} has no steps; declare at least one Step")
        seen: set[str] = set()
        replies: dict[type[Event], str] = {}
        for index, step in enumerate(steps):
            if not isinstance(step, Step):
                raise ConfigurationError(f"saga {name!r}: step {index} is not a Step: {step!r}")
            check_name("step", step.name, owner=f"saga {name!r}")
            if step.name in seen:
                raise ConfigurationError(
                    f"saga {name!r} declares the step name {step.name!r} twice; step names "
                    "must be unique"
                )
            seen.add(step.name)
            where = f"saga {name!r}, step {step.name!r}"
            _models(step.command, f"{where}: command", Command)
            completed = _models(step.completed_by, f"{where}: completed_by", Event)
            if not completed:
                raise ConfigurationError(f"{where}: completed_by names no event")
            failed = _models(step.failed_by, f"{where}: failed_by", Event)
            compensated = _models(step.compensated_by, f"{where}: compensated_by", Event)
            if step.compensation is REQUIRED:
                if index < len(steps) - 1:
                    raise ConfigurationError(
                        f"{where} has no compensation, but a later step can fail; give "
                        "compensation=<Command class> that undoes it, or compensation=None "
                        "if it needs no undoing"
                    )
            elif step.compensation is not None:
                _models(step.compensation, f"{where}: compensation", Command)
            elif compensated:
                raise ConfigurationError(f"{where}: compensated_by without a compensation")
            for reply in (*completed, *failed, *compensated):
                owner = replies.get(reply)
                if owner is not None:
                    raise ConfigurationError(
                        f"{where}: {reply.__eventwire__.type} already answers step {owner!r}; "
                        "a reply event must belong to one step so it can be routed"
                    )
                replies[reply] = step.name
            if step.timeout is not None and not step.timeout > 0:
                raise ConfigurationError(f"{where}: timeout must be > 0, got {step.timeout!r}")
        if not step_timeout > 0:
            raise ConfigurationError(f"saga {name!r}: step_timeout must be > 0")
        if compensation_attempts < 1:
            raise ConfigurationError(f"saga {name!r}: compensation_attempts must be >= 1")
        if started_by is not None:
            _models(started_by, f"saga {name!r}: started_by", Event)
        self.steps: tuple[Step, ...] = tuple(steps)
        self.started_by = started_by
        self.saga_id_of = saga_id
        self.on_completed = on_completed
        self.on_failed = on_failed
        self.step_timeout = float(step_timeout)
        self.compensation_attempts = compensation_attempts
        self.replies: dict[type[Event], str] = replies
        channel = check_name("channel", f"sagas.{name}")
        self.events = SagaEvents(
            channel=channel,
            started=_bind(SagaStarted, channel, name),
            step_completed=_bind(SagaStepCompleted, channel, name),
            compensating=_bind(SagaCompensating, channel, name),
            completed=_bind(SagaCompleted, channel, name),
            failed=_bind(SagaFailed, channel, name),
        )

    def __repr__(self) -> str:
        return f"Saga({self.name!r}, steps={[s.name for s in self.steps]})"

    def step(self, name: str) -> Step:
        """The step called `name`."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def index(self, name: str) -> int:
        """The position of the step called `name`."""
        return [s.name for s in self.steps].index(name)

    def timeout_of(self, step: Step) -> float:
        """Seconds `step` waits for its reply."""
        return step.timeout if step.timeout is not None else self.step_timeout

    def commands(self) -> list[type[Command]]:
        """Every command class this saga may send."""
        out: list[type[Command]] = []
        for step in self.steps:
            out.append(step.command)
            if isinstance(step.compensation, type):
                out.append(step.compensation)
        return out
