"""`Event` and `Command`: immutable pydantic models that declare where they travel.

Everything a message needs besides its data is declared once, as class keywords::

    class OrderPlaced(Event, channel="orders", key="order_id", version=1):
        order_id: str
        total: Decimal

- ``channel``: where it travels (inherited by subclasses; a class without one cannot be sent).
- ``key``: the name of the field whose value orders and partitions the events (optional).
- ``version``: the schema version of the payload (default 1).
- ``type``: the CloudEvents ``type`` (default: the class name).

A bad declaration (unknown key field, a channel a broker would reject) raises
`EventDefinitionError` when the class statement runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from eventwire._naming import check_name
from eventwire.errors import ConfigurationError, EventDefinitionError

__all__ = ["Command", "Event", "Message", "MessageSpec"]

Kind = Literal["event", "command"]


@dataclasses.dataclass(frozen=True, slots=True)
class MessageSpec:
    """What a message class declares: its type name, kind, channel, key field and version."""

    type: str
    kind: Kind
    channel: str | None
    key: str | None
    version: int

    def require_channel(self) -> str:
        """Return the channel, or raise a clear error for a class that declares none."""
        if self.channel is None:
            raise ConfigurationError(
                f"{self.type} declares no channel; add channel='...' to its class statement, "
                f"e.g. class {self.type}(Event, channel='orders')"
            )
        return self.channel


_OWN_KEYWORDS = frozenset({"channel", "key", "version", "type"})
#: Words other libraries use for what eventwire calls a channel or a key.
_SYNONYMS = {
    "topic": "channel",
    "queue": "channel",
    "stream": "channel",
    "subject": "channel",
    "address": "channel",
    "partition_key": "key",
    "ordering_key": "key",
    "routing_key": "key",
    "schema_version": "version",
    "name": "type",
}


def _unknown_keywords(name: str, unknown: list[str]) -> str:
    hints = [f"{word!r} -> {_SYNONYMS[word]}" for word in unknown if word in _SYNONYMS]
    hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
    return (
        f"{name}: unknown class keyword(s) {', '.join(map(repr, unknown))}{hint}; an Event or "
        "Command takes channel=, key=, version= and type= (and pydantic's model options, "
        "e.g. frozen=True)"
    )


class Message(BaseModel):
    """Common base of `Event` and `Command`. Use one of those two."""

    model_config = ConfigDict(frozen=True)

    __eventwire__: ClassVar[MessageSpec]
    __eventwire_kind__: ClassVar[Kind] = "event"
    _pending_declaration: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        own = {k: kwargs.pop(k) for k in list(kwargs) if k in _OWN_KEYWORDS}
        if kwargs:  # pydantic's own class keywords (frozen=..., extra=...) never reach here
            raise EventDefinitionError(_unknown_keywords(cls.__name__, sorted(kwargs)))
        cls._pending_declaration = own
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        declared = cls._pending_declaration
        cls._pending_declaration = {}
        parent: MessageSpec | None = getattr(cls, "__eventwire__", None)
        name = cls.__name__
        kind = cls.__eventwire_kind__
        type_name = declared.get("type", name)
        channel = declared.get("channel", parent.channel if parent else None)
        key = declared.get("key", parent.key if parent else None)
        version = declared.get("version", parent.version if parent else 1)
        if not isinstance(type_name, str) or not type_name.strip():
            raise EventDefinitionError(
                f"{name}: type must be a non-empty string, got {type_name!r}"
            )
        if channel is not None:
            try:
                check_name("channel", channel, owner=name)
            except ConfigurationError as exc:
                raise EventDefinitionError(str(exc)) from None
            if channel.endswith(".dlq"):
                raise EventDefinitionError(
                    f"{name}: channel {channel!r} ends with '.dlq', which eventwire reserves "
                    "for dead-letter channels; choose another name"
                )
        if key is not None and key not in cls.model_fields:
            fields = ", ".join(cls.model_fields) or "none"
            raise EventDefinitionError(
                f"{name}: key={key!r} is not a field of {name} (its fields: {fields}); "
                "name the field whose value orders these events"
            )
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise EventDefinitionError(f"{name}: version must be an integer >= 1, got {version!r}")
        cls.__eventwire__ = MessageSpec(
            type=type_name, kind=kind, channel=channel, key=key, version=version
        )

    def message_key(self) -> str | None:
        """The ordering key of this instance (the declared key field's value), if any."""
        field = type(self).__eventwire__.key
        if field is None:
            return None
        value = getattr(self, field)
        return None if value is None else str(value)


class Event(Message):
    """An immutable fact, named in the past tense (``OrderPlaced``).

    Every group subscribed to its channel receives it.
    """

    __eventwire_kind__: ClassVar[Kind] = "event"


class Command(Message):
    """A request to do something, named in the imperative (``ReserveStock``).

    Exactly one group handles it.
    """

    __eventwire_kind__: ClassVar[Kind] = "command"


Event.__eventwire__ = MessageSpec(type="Event", kind="event", channel=None, key=None, version=1)
Command.__eventwire__ = MessageSpec(
    type="Command", kind="command", channel=None, key=None, version=1
)
