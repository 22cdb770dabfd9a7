"""Compatibility between contract versions, with Confluent's modes and JSON Schema rules.

The core question is *inclusion*: is every payload valid under schema A also valid under
schema B? ``BACKWARD`` (new readers read old data) is ``old ⊆ new``; ``FORWARD`` (old readers
read new data) is ``new ⊆ old``; ``FULL`` is both. The check is conservative: when inclusion
cannot be shown, it is reported as a break with the reason.

The content model decides what adding or removing a property means, as in Confluent's
JSON Schema rules: an object schema without ``additionalProperties: false`` is *open* (it
accepts any value for properties it does not list); with it, *closed*. So in an open model
adding an optional property is FORWARD-compatible only and removing one BACKWARD only; in a
closed model it is the reverse. A type change is NONE; widening an enum is BACKWARD,
narrowing it FORWARD; a newly required property breaks BACKWARD.

Structure: a channel or operation removed, a channel's address, an operation's action or
channel changed, a message no longer on a channel, a changed ordering key break every mode
but ``none``. Added channels, operations and messages are compatible (a reader ignores
message types it does not handle).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from eventwire.contracts._document import deref, iter_messages, resolve
from eventwire.errors import ContractError

__all__ = [
    "MODES",
    "DiffReport",
    "Verdict",
    "diff_documents",
    "schema_compatibility",
    "schema_inclusion",
]

Mode = Literal[
    "backward",
    "forward",
    "full",
    "backward-transitive",
    "forward-transitive",
    "full-transitive",
    "none",
]
MODES: tuple[str, ...] = (
    "backward",
    "forward",
    "full",
    "backward-transitive",
    "forward-transitive",
    "full-transitive",
    "none",
)
Compatibility = Literal["FULL", "BACKWARD", "FORWARD", "NONE"]

_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "examples",
        "example",
        "default",
        "deprecated",
        "$comment",
        "readOnly",
        "writeOnly",
        "$id",
        "$schema",
        "$defs",
        "definitions",
        "externalDocs",
        "discriminator",
    }
)


def _types(schema: Mapping[str, Any]) -> set[str] | None:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {str(k) for k in kind}
    return None


def _values(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return list(enum) if isinstance(enum, list) else None


def _same_value(x: Any, y: Any) -> bool:
    return (type(x) is type(y) and x == y) or (
        isinstance(x, int | float)
        and isinstance(y, int | float)
        and not isinstance(x, bool)
        and not isinstance(y, bool)
        and x == y
    )


def _label(path: str) -> str:
    return path or "$"


class _Inclusion:
    """Reasons why some instance of schema A (in doc_a) may be invalid under B (in doc_b)."""

    def __init__(self, doc_a: Mapping[str, Any], doc_b: Mapping[str, Any]) -> None:
        self.doc_a = doc_a
        self.doc_b = doc_b
        self._active: set[tuple[str, str]] = set()

    def _resolve(self, doc: Mapping[str, Any], schema: Any) -> tuple[Any, str | None]:
        if isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
            ref: str = schema["$ref"]
            try:
                target = resolve(doc, ref)
            except KeyError as exc:
                raise ContractError(f"dangling reference: {exc.args[0]}") from None
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            if isinstance(target, Mapping) and siblings:
                inner, _ = self._resolve(doc, target)
                if isinstance(inner, Mapping):
                    return {**inner, **siblings}, ref
            resolved, _ = self._resolve(doc, target)
            return resolved, ref
        if isinstance(schema, Mapping):
            all_of = schema.get("allOf")
            if isinstance(all_of, list) and len(all_of) == 1:
                inner, inner_ref = self._resolve(doc, all_of[0])
                if isinstance(inner, Mapping):
                    rest = {k: v for k, v in schema.items() if k != "allOf"}
                    return {**inner, **rest}, inner_ref
        return schema, None

    @staticmethod
    def _constrains(schema: Any) -> bool:
        if schema is True or schema is None:
            return False
        if schema is False:
            return True
        if isinstance(schema, Mapping):
            return any(k not in _ANNOTATIONS and not k.startswith("x-") for k in schema)
        return True

    def check(self, a: Any, b: Any, path: str) -> list[str]:
        a, ref_a = self._resolve(self.doc_a, a)
        b, ref_b = self._resolve(self.doc_b, b)
        if ref_a is not None and ref_b is not None:
            pair = (ref_a, ref_b)
            if pair in self._active:
                return []  # recursive schema: assume the cycle holds
            self._active.add(pair)
            try:
                return self._check(a, b, path)
            finally:
                self._active.discard(pair)
        return self._check(a, b, path)

    def _check(self, a: Any, b: Any, path: str) -> list[str]:
        where = _label(path)
        if not self._constrains(b) or a is False:
            return []
        if b is False:
            return [f"{where}: {{b}} forbids any value here, {{a}} does not"]
        if not self._constrains(a):
            return [f"{where}: {{a}} accepts any value here, {{b}} constrains it"]
        assert isinstance(a, Mapping) and isinstance(b, Mapping)
        for key in ("anyOf", "oneOf"):
            if isinstance(a.get(key), list):
                reasons: list[str] = []
                for branch in a[key]:
                    merged = _merge_branch(a, key, branch)
                    reasons += self.check(merged, b, path)
                return _unique(reasons)
        for key in ("anyOf", "oneOf"):
            if isinstance(b.get(key), list):
                best: list[str] | None = None
                for branch in b[key]:
                    found = self.check(a, _merge_branch(b, key, branch), path)
                    if not found:
                        return []
                    if best is None or len(found) < len(best):
                        best = found
                return best or [f"{where}: no alternative of {{b}} accepts {{a}}'s values"]
        reasons = self._type_and_values(a, b, where)
        if reasons:
            return reasons
        reasons += _bounds(a, b, where)
        types_a = _types(a) or set()
        types_b = _types(b) or set()
        if "array" in types_a | types_b or "items" in a or "items" in b:
            reasons += self.check(a.get("items", True), b.get("items", True), f"{path}[*]")
        if "object" in types_a | types_b or "properties" in a or "properties" in b:
            reasons += self._objects(a, b, path)
        for key in sorted(set(b) - _ANNOTATIONS - _KNOWN):
            if not key.startswith("x-") and a.get(key) != b.get(key):
                reasons.append(f"{where}: keyword {key!r} differs and cannot be compared")
        return _unique(reasons)

    def _type_and_values(self, a: Mapping[str, Any], b: Mapping[str, Any], where: str) -> list[str]:
        types_a, types_b = _types(a), _types(b)
        values_a, values_b = _values(a), _values(b)
        if types_b is not None:
            if types_a is None and values_a is None:
                return [
                    f"{where}: type is not constrained in {{a}}, {{b}} requires {_join(types_b)}"
                ]
            if types_a is not None:
                extra = {
                    t
                    for t in types_a
                    if t not in types_b and not (t == "integer" and "number" in types_b)
                }
                if extra:
                    return [
                        f"{where}: type changed from {_join(types_a)} in {{a}} to "
                        f"{_join(types_b)} in {{b}}"
                    ]
        if values_b is not None:
            if values_a is None:
                return [f"{where}: {{b}} allows only {values_b!r}, {{a}} any value"]
            missing = [v for v in values_a if not any(_same_value(v, w) for w in values_b)]
            if missing:
                return [f"{where}: value(s) {missing!r} allowed by {{a}} are not allowed by {{b}}"]
        return []

    def _objects(self, a: Mapping[str, Any], b: Mapping[str, Any], path: str) -> list[str]:
        where = _label(path)
        reasons: list[str] = []
        props_a: Mapping[str, Any] = a.get("properties") or {}
        props_b: Mapping[str, Any] = b.get("properties") or {}
        required_a = set(a.get("required") or ())
        required_b = set(b.get("required") or ())
        for name in sorted(required_b - required_a):
            reasons.append(f"{where}: property {name!r} is required in {{b}} but not in {{a}}")
        extra_a = a.get("additionalProperties", True)
        extra_b = b.get("additionalProperties", True)
        for name in sorted(set(props_a) | set(props_b)):
            sub = f"{path}.{name}" if path else f"$.{name}"
            if name in props_a and name in props_b:
                reasons += self.check(props_a[name], props_b[name], sub)
            elif name in props_a:
                if extra_b is False:
                    reasons.append(
                        f"{sub}: property is allowed by {{a}}, {{b}} (closed content model) "
                        "does not list it"
                    )
                elif extra_b is not True:
                    reasons += self.check(props_a[name], extra_b, sub)
            else:
                if extra_a is False:
                    continue  # {a} never carries it
                if self._constrains(props_b[name]):
                    why = self.check(extra_a, props_b[name], sub)
                    if why:
                        reasons.append(
                            f"{sub}: property is declared by {{b}} only; {{a}} (open content "
                            "model) allows it with any value"
                            if extra_a is True
                            else why[0]
                        )
        if extra_b is not True and extra_a is not False:
            if extra_b is False:
                reasons.append(
                    f"{where}: {{a}} (open content model) allows properties {{b}} (closed) "
                    "does not list"
                )
            else:
                reasons += self.check(extra_a, extra_b, f"{path}.*" if path else "$.*")
        return reasons


_KNOWN = frozenset(
    {
        "type",
        "enum",
        "const",
        "anyOf",
        "oneOf",
        "allOf",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "minItems",
        "maxItems",
        "uniqueItems",
        "$ref",
        "minProperties",
        "maxProperties",
    }
)


def _merge_branch(parent: Mapping[str, Any], key: str, branch: Any) -> Any:
    rest = {k: v for k, v in parent.items() if k != key and k not in _ANNOTATIONS}
    if not rest:
        return branch
    if isinstance(branch, Mapping) and "$ref" not in branch:
        return {**rest, **branch}
    return {**rest, "allOf": [branch]}


def _bounds(a: Mapping[str, Any], b: Mapping[str, Any], where: str) -> list[str]:
    reasons: list[str] = []
    lower = (("minimum", "exclusiveMinimum"), ("minLength",), ("minItems",), ("minProperties",))
    upper = (("maximum", "exclusiveMaximum"), ("maxLength",), ("maxItems",), ("maxProperties",))
    for names in lower:
        for name in names:
            bound_b = b.get(name)
            if isinstance(bound_b, int | float) and not isinstance(bound_b, bool):
                bound_a = _tightest(a, names, max)
                if bound_a is None or bound_a < bound_b:
                    reasons.append(
                        f"{where}: {name} is {bound_b} in {{b}}, "
                        f"{'unset' if bound_a is None else bound_a} in {{a}}"
                    )
    for names in upper:
        for name in names:
            bound_b = b.get(name)
            if isinstance(bound_b, int | float) and not isinstance(bound_b, bool):
                bound_a = _tightest(a, names, min)
                if bound_a is None or bound_a > bound_b:
                    reasons.append(
                        f"{where}: {name} is {bound_b} in {{b}}, "
                        f"{'unset' if bound_a is None else bound_a} in {{a}}"
                    )
    multiple_b = b.get("multipleOf")
    if isinstance(multiple_b, int | float) and multiple_b:
        multiple_a = a.get("multipleOf")
        if not isinstance(multiple_a, int | float) or not math.isclose(
            (multiple_a / multiple_b) % 1, 0, abs_tol=1e-9
        ):
            reasons.append(f"{where}: multipleOf is {multiple_b} in {{b}}, {multiple_a} in {{a}}")
    for name in ("pattern", "format"):
        if name in b and a.get(name) != b[name]:
            reasons.append(f"{where}: {name} is {b[name]!r} in {{b}}, {a.get(name)!r} in {{a}}")
    if b.get("uniqueItems") is True and a.get("uniqueItems") is not True:
        reasons.append(f"{where}: {{b}} requires unique items, {{a}} does not")
    return reasons


def _tightest(schema: Mapping[str, Any], names: Sequence[str], pick: Any) -> float | None:
    values = [
        schema[n]
        for n in names
        if isinstance(schema.get(n), int | float) and not isinstance(schema.get(n), bool)
    ]
    return pick(values) if values else None


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _join(types: set[str]) -> str:
    return "|".join(sorted(types))


def schema_inclusion(
    a: Any, b: Any, doc_a: Mapping[str, Any] | None = None, doc_b: Mapping[str, Any] | None = None
) -> list[str]:
    """Why an instance valid under `a` may be invalid under `b` (empty: ``a ⊆ b`` holds).

    ``$ref``s resolve in `doc_a` / `doc_b` (default: the schema itself). Reasons say
    ``{a}`` and ``{b}`` for the two sides.
    """
    inclusion = _Inclusion(
        doc_a if doc_a is not None else _doc(a), doc_b if doc_b is not None else _doc(b)
    )
    return inclusion.check(a, b, "")


def _doc(schema: Any) -> Mapping[str, Any]:
    return schema if isinstance(schema, Mapping) else {}


def schema_compatibility(
    old: Any,
    new: Any,
    doc_old: Mapping[str, Any] | None = None,
    doc_new: Mapping[str, Any] | None = None,
) -> tuple[Compatibility, list[str]]:
    """The compatibility class of a schema change and the reasons for what it breaks."""
    backward = [r.format(a="old", b="new") for r in schema_inclusion(old, new, doc_old, doc_new)]
    forward = [r.format(a="new", b="old") for r in schema_inclusion(new, old, doc_new, doc_old)]
    reasons = [f"not backward: {r}" for r in backward] + [f"not forward: {r}" for r in forward]
    if not backward and not forward:
        return "FULL", reasons
    if not backward:
        return "BACKWARD", reasons
    if not forward:
        return "FORWARD", reasons
    return "NONE", reasons


# -- documents -------------------------------------------------------------------------------


@dataclass
class Verdict:
    """The verdict on one message, channel or operation between two contract versions."""

    kind: Literal["message", "channel", "operation"]
    name: str
    against: str
    change: str  # FULL, BACKWARD, FORWARD, NONE, added, removed, unchanged, structural
    breaks: bool
    reasons: list[str] = field(default_factory=list)


@dataclass
class DiffReport:
    """Every verdict of a diff under one mode."""

    mode: str
    verdicts: list[Verdict]

    @property
    def breaking(self) -> list[Verdict]:
        """The verdicts that break the mode."""
        return [v for v in self.verdicts if v.breaks]

    @property
    def ok(self) -> bool:
        """True when nothing breaks the mode."""
        return not self.breaking


def _allows(change: str, mode: str) -> bool:
    base = mode.removesuffix("-transitive")
    if base == "none":
        return True
    if change in ("FULL", "added", "unchanged"):
        return True
    if change == "structural" or change == "NONE":
        return False
    if change == "removed-message":
        return base == "forward"
    return base == change.lower()


def _messages(document: Mapping[str, Any], label: str) -> dict[str, Any]:
    try:
        return {entry.name: entry for entry in iter_messages(document)}
    except KeyError as exc:
        raise ContractError(f"{label}: {exc.args[0]}") from None


def _payload(document: Mapping[str, Any], message: Mapping[str, Any]) -> Any:
    payload = message.get("payload", True)
    if isinstance(payload, Mapping) and "schemaFormat" in payload and "schema" in payload:
        return payload["schema"]
    return payload


def _addresses(document: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    channels = document.get("channels") or {}
    for key, node in channels.items():
        channel, _ = deref(document, node, "")
        out[str(key)] = channel.get("address", key) if isinstance(channel, Mapping) else None
    return out


def _compare_pair(
    old: Mapping[str, Any], new: Mapping[str, Any], label: str, mode: str
) -> list[Verdict]:
    verdicts: list[Verdict] = []
    old_channels, new_channels = _addresses(old), _addresses(new)
    # a channel whose key changed but whose address did not is the same channel
    renamed = _pair_unmatched(old_channels, new_channels)
    for key in sorted(set(old_channels) | set(new_channels)):
        if key in renamed.values() and key not in old_channels:
            continue
        if key not in new_channels and key in renamed:
            verdicts.append(
                Verdict(
                    "channel",
                    key,
                    label,
                    "unchanged",
                    False,
                    [f"renamed to {renamed[key]!r} (same address)"],
                )
            )
        elif key not in new_channels:
            verdicts.append(
                Verdict(
                    "channel",
                    key,
                    label,
                    "structural",
                    mode != "none",
                    [f"channel {key!r} ({old_channels[key]}) was removed"],
                )
            )
        elif key not in old_channels:
            verdicts.append(
                Verdict(
                    "channel",
                    key,
                    label,
                    "added",
                    False,
                    [f"new channel {key!r} ({new_channels[key]})"],
                )
            )
        elif old_channels[key] != new_channels[key]:
            verdicts.append(
                Verdict(
                    "channel",
                    key,
                    label,
                    "structural",
                    mode != "none",
                    [f"address changed from {old_channels[key]!r} to {new_channels[key]!r}"],
                )
            )
        else:
            verdicts.append(Verdict("channel", key, label, "unchanged", False))

    old_ops = _operations(old, old_channels)
    new_ops = _operations(new, new_channels)
    renamed_ops = _pair_unmatched(old_ops, new_ops)
    for key in sorted(set(old_ops) | set(new_ops)):
        if key in renamed_ops.values() and key not in old_ops:
            continue
        if key not in new_ops and key in renamed_ops:
            verdicts.append(
                Verdict(
                    "operation",
                    key,
                    label,
                    "unchanged",
                    False,
                    [f"renamed to {renamed_ops[key]!r} (same action and channel)"],
                )
            )
            continue
        if key not in new_ops:
            verdicts.append(
                Verdict(
                    "operation",
                    key,
                    label,
                    "structural",
                    mode != "none",
                    [f"operation {key!r} ({old_ops[key][0]}) was removed"],
                )
            )
            continue
        if key not in old_ops:
            verdicts.append(
                Verdict(
                    "operation",
                    key,
                    label,
                    "added",
                    False,
                    [f"new operation ({new_ops[key][0]} on {new_ops[key][1]})"],
                )
            )
            continue
        reasons = []
        if old_ops[key][0] != new_ops[key][0]:
            reasons.append(f"action changed from {old_ops[key][0]} to {new_ops[key][0]}")
        if old_ops[key][1] != new_ops[key][1]:
            reasons.append(f"channel changed from {old_ops[key][1]!r} to {new_ops[key][1]!r}")
        if reasons:
            verdicts.append(Verdict("operation", key, label, "structural", mode != "none", reasons))
        else:
            verdicts.append(Verdict("operation", key, label, "unchanged", False))

    old_messages, new_messages = _messages(old, label), _messages(new, "new contract")
    for name in sorted(set(old_messages) | set(new_messages)):
        if name not in new_messages:
            verdicts.append(
                Verdict(
                    "message",
                    name,
                    label,
                    "removed-message",
                    not _allows("removed-message", mode),
                    [
                        "message removed: new readers cannot read the old events of this type "
                        "still stored (FORWARD only)"
                    ],
                )
            )
            continue
        if name not in old_messages:
            verdicts.append(
                Verdict(
                    "message",
                    name,
                    label,
                    "added",
                    False,
                    ["new message: old readers ignore types they do not handle"],
                )
            )
            continue
        entry_old, entry_new = old_messages[name], new_messages[name]
        change, reasons = schema_compatibility(
            _payload(old, entry_old.message), _payload(new, entry_new.message), old, new
        )
        structural = []
        gone = sorted(
            {str(old_channels.get(c, c)) for c in entry_old.channels}
            - {str(new_channels.get(c, c)) for c in entry_new.channels}
        )
        if gone:
            structural.append(f"no longer on channel(s) {', '.join(map(str, gone))}")
        key_old = entry_old.message.get("x-eventwire-key")
        key_new = entry_new.message.get("x-eventwire-key")
        if key_old != key_new:
            structural.append(f"ordering key changed from {key_old!r} to {key_new!r}")
        if structural:
            verdicts.append(
                Verdict("message", name, label, "structural", mode != "none", structural + reasons)
            )
        else:
            verdicts.append(
                Verdict("message", name, label, change, not _allows(change, mode), reasons)
            )
    return verdicts


def _pair_unmatched(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, str]:
    """Old key -> new key for entries present under another key with the same value."""
    unmatched_new = {k: v for k, v in new.items() if k not in old}
    pairs: dict[str, str] = {}
    for key, value in old.items():
        if key in new:
            continue
        for new_key, new_value in unmatched_new.items():
            if new_value == value and new_key not in pairs.values():
                pairs[key] = new_key
                break
    return pairs


def _operations(
    document: Mapping[str, Any], addresses: Mapping[str, Any]
) -> dict[str, tuple[str, Any]]:
    out: dict[str, tuple[str, Any]] = {}
    for key, node in (document.get("operations") or {}).items():
        operation, _ = deref(document, node, "")
        if not isinstance(operation, Mapping):
            continue
        channel = operation.get("channel")
        ref = channel.get("$ref", "") if isinstance(channel, Mapping) else ""
        channel_key = ref.removeprefix("#/channels/")
        out[str(key)] = (str(operation.get("action")), addresses.get(channel_key, channel_key))
    return out


def diff_documents(
    olds: Sequence[Mapping[str, Any]],
    new: Mapping[str, Any],
    mode: str = "forward",
    labels: Sequence[str] | None = None,
) -> DiffReport:
    """Compare `new` with earlier versions `olds` (oldest first) under `mode`.

    Non-transitive modes compare with the latest old version only, ``-transitive`` ones with
    every old version.
    """
    if mode not in MODES:
        raise ContractError(f"unknown compatibility mode {mode!r}; use one of {', '.join(MODES)}")
    if not olds:
        raise ContractError("give at least one earlier contract version to compare with")
    names = list(labels) if labels is not None else [f"old[{i}]" for i in range(len(olds))]
    pairs = list(zip(olds, names, strict=True))
    if not mode.endswith("-transitive"):
        pairs = pairs[-1:]
    verdicts: list[Verdict] = []
    for old, label in pairs:
        verdicts += _compare_pair(old, new, label, mode)
    return DiffReport(mode, verdicts)
