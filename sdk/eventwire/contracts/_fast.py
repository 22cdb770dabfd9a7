"""Compiled payload checks: a `jsonschema_rs` validator that answers "valid" in about a
microsecond, before jsonschema is asked anything.

`ContractValidator` trusts only the *valid* answer of the compiled check; a payload it rejects
goes to jsonschema, which words every problem (or finds none, and then the payload is valid).
So the compiled check may be stricter than jsonschema without changing any result, and it
must never be more lenient. jsonschema-rs implements draft 2020-12 itself (the draft of
contract payloads), so keywords mean the same; the one difference that could make it more
lenient is formats: jsonschema-rs's ``date-time`` takes a leap second and the year 0 that
jsonschema's checker (rfc3339-validator) refuses, its ``date`` the year 0 too. So every
format jsonschema checks is handed to jsonschema-rs as jsonschema's own function, except
`NATIVE_FORMATS`, where jsonschema-rs was checked to be as strict or stricter
(tests/contracts/test_fast_validation.py).

A ``date-time`` of the usual shape (`plain_date_time`) is accepted without calling
jsonschema's function: a day from 01 to 28 exists in every month of every year from 0001, so
rfc3339-validator accepts it too (its other checks are the same pattern); any other text
goes to that function. It takes a quarter of the time, and a date-time is in most events.

Patterns are Rust regular expressions there and Python's in jsonschema; for the syntax both
share they match the same strings, except that Python's ``$`` also matches before a final
newline (Python is the more lenient one there, so that case reaches jsonschema).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from jsonschema import Draft202012Validator

__all__ = ["NATIVE_FORMATS", "Check", "compile_payload_check", "plain_date_time"]

#: Formats jsonschema-rs checks at least as strictly as jsonschema's format checker.
NATIVE_FORMATS = frozenset({"email", "idn-email", "ipv4", "uuid"})

#: The usual shape of a ``date-time`` (`plain_date_time`). ``\Z`` ends it, not ``$`` as in
#: rfc3339-validator's pattern, so it is the stricter one before a final newline too.
_PLAIN_DATE_TIME = re.compile(
    r"(?!0000)[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])\Z"
)


def plain_date_time(value: object) -> bool:
    """Whether `value` is a ``date-time`` of the usual shape (day 01-28, year from 0001): one
    jsonschema's format checker accepts without a doubt."""
    return isinstance(value, str) and _PLAIN_DATE_TIME.match(value) is not None


#: True when the payload is valid for sure; False: ask jsonschema.
Check = Callable[[Any], bool]


def compile_payload_check(document: Mapping[str, Any], pointer: str) -> Check | None:
    """The compiled check of the schema at `pointer` in `document` (``None`` when
    jsonschema-rs cannot compile it: jsonschema alone then)."""
    import jsonschema_rs

    root = {k: v for k, v in document.items() if k not in ("$id", "$schema")}
    root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    root["$ref"] = "#" + pointer
    checker = Draft202012Validator.FORMAT_CHECKER
    formats = {
        name: _format(func, raises)
        for name, (func, raises) in checker.checkers.items()
        if name not in NATIVE_FORMATS
    }
    if (slow := formats.get("date-time")) is not None:
        formats["date-time"] = lambda value: plain_date_time(value) or slow(value)
    try:
        validator = jsonschema_rs.Draft202012Validator(
            root, formats=formats, validate_formats=True, ignore_unknown_formats=True
        )
    except Exception:  # a schema (or a remote reference) it does not take
        return None
    is_valid: Callable[[Any], bool] = validator.is_valid

    def check(instance: Any) -> bool:
        try:
            return is_valid(instance)
        except Exception:  # e.g. an integer beyond 64 bits: jsonschema decides
            return False

    return check


def _format(
    func: Callable[[object], object], raises: type[Exception] | tuple[type[Exception], ...]
) -> Callable[[object], bool]:
    """jsonschema's own check of a format (as `FormatChecker.conforms` runs it)."""
    if not raises:
        return lambda value: bool(func(value))

    def conforms(value: object) -> bool:
        try:
            return bool(func(value))
        except raises:
            return False

    return conforms
