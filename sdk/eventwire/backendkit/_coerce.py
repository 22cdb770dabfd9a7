"""Coercion of option values by annotation: the one vocabulary every backend's options use.

Supported annotations: ``int``, ``float``, ``bool``, ``str``, `Seconds` (a duration:
``5``, ``2.5``, ``250ms``, ``5s``, ``2m``, ``1h``), `ByteSize` (``1048576``, ``512KiB``,
``8MiB``, ``1GiB``), an `enum.Enum` (by value or name), a ``Literal[...]`` of strings or
numbers, any other class (``ssl.SSLContext``: an instance, given as a keyword option since a
URL cannot carry it), and ``X | None`` of any of these (``""`` or ``none`` give ``None``). A
value given as a keyword option may already have the right type; text (from a URL) is parsed.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import types
import typing
from typing import Annotated, Any, Literal

__all__ = ["ByteSize", "Seconds", "coerce", "describe", "show_default"]


class _Unit(enum.Enum):
    SECONDS = "seconds"
    BYTES = "bytes"


#: A duration in seconds (a float); text may carry a unit: ``ms``, ``s``, ``m``, ``h``.
Seconds = Annotated[float, _Unit.SECONDS]
#: A size in bytes (an int); text may carry a unit: ``KiB``, ``MiB``, ``GiB`` (or kB, MB, GB).
ByteSize = Annotated[int, _Unit.BYTES]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(ms|s|m|h)?\s*$", re.I)
_SECONDS_PER = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^\s*([0-9]+)\s*(b|kib|mib|gib|kb|mb|gb)?\s*$", re.I)
_BYTES_PER = {
    None: 1,
    "b": 1,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
}


def _parts(hint: Any) -> tuple[Any, _Unit | None, bool]:
    """(base type, unit, optional) of an annotation."""
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        if len(args) != 1:
            raise TypeError(f"an option cannot be annotated {hint!r}: use one type, or X | None")
        hint = args[0]
        origin = typing.get_origin(hint)
    unit = None
    if origin is Annotated:
        base, *extras = typing.get_args(hint)
        unit = next((e for e in extras if isinstance(e, _Unit)), None)
        hint = base
    return hint, unit, optional


def _bounds(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {_number(minimum)} to {_number(maximum)}"
    if minimum is not None:
        return f" >= {_number(minimum)}"
    if maximum is not None:
        return f" <= {_number(maximum)}"
    return ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def describe(hint: Any, minimum: float | None = None, maximum: float | None = None) -> str:
    """What a value of `hint` looks like, in words ("a whole number >= 1", "true or false")."""
    base, unit, optional = _parts(hint)
    bounds = _bounds(minimum, maximum)
    if unit is _Unit.SECONDS:
        text = f"a duration in seconds{bounds} (e.g. 5, 2.5, 250ms, 2m)"
    elif unit is _Unit.BYTES:
        text = f"a size in bytes{bounds} (e.g. 1048576, 512KiB, 8MiB)"
    elif base is bool:
        text = "true or false"
    elif base is int:
        text = f"a whole number{bounds}"
    elif base is float:
        text = f"a number{bounds}"
    elif base is str:
        text = "a text"
    elif isinstance(base, type) and issubclass(base, enum.Enum):
        text = "one of " + ", ".join(str(m.value) for m in base)
    elif typing.get_origin(base) is Literal:
        text = "one of " + ", ".join(str(a) for a in typing.get_args(base))
    elif isinstance(base, type) and base not in (str, bytes, object):
        text = f"an {base.__module__}.{base.__qualname__} (as a keyword option)"
    else:
        raise TypeError(f"an option cannot be annotated {hint!r}")
    return f"{text}, or none" if optional else text


def coerce(
    value: object, hint: Any, *, minimum: float | None = None, maximum: float | None = None
) -> Any:
    """`value` as the annotation `hint` wants it; `ValueError` says what to give instead."""
    base, unit, optional = _parts(hint)
    if optional and (
        value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))
    ):
        return None
    want = describe(hint, minimum, maximum)
    result: Any
    if unit is _Unit.SECONDS:
        result = _seconds(value, want)
    elif unit is _Unit.BYTES:
        result = _bytes(value, want)
    elif base is bool:
        result = _bool(value, want)
    elif base is int:
        result = _int(value, want)
    elif base is float:
        result = _float(value, want)
    elif base is str:
        if not isinstance(value, str):
            raise ValueError(want)
        result = value
    elif isinstance(base, type) and issubclass(base, enum.Enum):
        result = _enum(value, base, want)
    elif isinstance(base, type):
        if not isinstance(value, base):
            raise ValueError(want)
        result = value
    else:  # Literal
        result = _literal(value, typing.get_args(base), want)
    number = isinstance(result, int | float) and not isinstance(result, bool)
    if number and (
        (minimum is not None and result < minimum) or (maximum is not None and result > maximum)
    ):
        raise ValueError(want)
    return result


def _bool(value: object, want: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(want)


def _int(value: object, want: str) -> int:
    if isinstance(value, bool):
        raise ValueError(want)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        return int(value)
    raise ValueError(want)


def _float(value: object, want: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(want)
    try:
        number = float(value)
    except ValueError:
        raise ValueError(want) from None
    if not math.isfinite(number):
        raise ValueError(want)
    return number


def _seconds(value: object, want: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _float(value, want)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(want)
    unit = match.group(2).lower() if match.group(2) else None
    return float(match.group(1)) * _SECONDS_PER[unit]


def _bytes(value: object, want: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(want)
    unit = match.group(2).lower() if match.group(2) else None
    return int(match.group(1)) * _BYTES_PER[unit]


def _enum(value: object, base: type[enum.Enum], want: str) -> enum.Enum:
    if isinstance(value, base):
        return value
    for member in base:
        if value == member.value or (
            isinstance(value, str)
            and value.strip().lower() in (str(member.value).lower(), member.name.lower())
        ):
            return member
    raise ValueError(want)


def _literal(value: object, allowed: tuple[Any, ...], want: str) -> Any:
    for choice in allowed:
        if value == choice or (
            isinstance(value, str) and value.strip().lower() == str(choice).lower()
        ):
            return choice
    raise ValueError(want)


def show_default(value: object, hint: Any) -> str:
    """How the docs show a default value (``—`` for none, ``true``, ``5``, ``8 MiB``)."""
    _, unit, _ = _parts(hint)
    if value is None or value is dataclasses.MISSING:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if unit is _Unit.BYTES and isinstance(value, int):
        for name, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if value >= size and value % size == 0:
                return f"{value // size} {name}"
    if isinstance(value, float):
        return _number(value)
    if value == "":
        return '""'
    return str(value)
