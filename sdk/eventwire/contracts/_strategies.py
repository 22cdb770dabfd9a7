"""Cases from a contract's message: coverage variants, violations and Hypothesis strategies.

Values come from `hypothesis-jsonschema` (``from_schema``), which needs ``hypothesis<6.170.10``
(newer Hypothesis breaks it; the ``testing`` extra pins it). On top of it:

- *coverage variants*: the schema narrowed so that one thing must happen — an enum member, a
  branch of ``anyOf``/``oneOf``, each type of a type list, ``true``/``false``, an optional
  property present, a boundary (``minimum``, ``maximum``, exclusive bounds, ``minLength``,
  ``maxLength``, ``minItems``, ``maxItems``), a formatted string present. The simplest value of
  each variant is a deterministic case, so every one of them is exercised in a handful of cases.
- *violations*: each required property missing, each value of a wrong type, each enum left,
  each bound crossed (numbers, string lengths).
  Each is checked to really fail the schema (jsonschema) before it is used.
"""

from __future__ import annotations

import base64
import copy
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException
from hypothesis_jsonschema import from_schema
from jsonschema import Draft7Validator

from eventwire.contracts._sample import unblamed_random
from eventwire.contracts._schema import MessageModel, UnsupportedSchemaError

__all__ = [
    "Invalid",
    "Schema",
    "Step",
    "Variant",
    "coverage_variants",
    "custom_formats",
    "format_path",
    "minimal",
    "payload_strategy",
    "usable_variants",
    "violations",
]

Schema = dict[str, Any] | bool
#: One step down a schema: ("properties", name), ("items",), ("items", i), ("anyOf", i), ...
Step = tuple[Any, ...]
DataPath = tuple[str | int, ...]

_MINIMAL: dict[str, Any] = {}
_MINIMAL_SIZE = 512
_FIRST = settings(
    database=None,
    max_examples=1,
    phases=[Phase.generate],
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def custom_formats() -> dict[str, st.SearchStrategy[str]]:
    """Strategies for the formats hypothesis-jsonschema does not know (draft-07 has no uuid)."""
    return {
        "uuid": st.uuids().map(str),
        "duration": st.builds(
            "P{}DT{}H{}M".format,
            st.integers(0, 400),
            st.integers(0, 23),
            st.integers(0, 59),
        ),
        "byte": st.binary(max_size=32).map(lambda b: base64.b64encode(b).decode()),
        "base64": st.binary(max_size=32).map(lambda b: base64.b64encode(b).decode()),
        "binary": st.binary(max_size=32).map(lambda b: base64.b64encode(b).decode()),
        "int32": st.integers(-(2**31), 2**31 - 1).map(str),
        "int64": st.integers(-(2**63), 2**63 - 1).map(str),
        "float": st.floats(allow_nan=False, allow_infinity=False).map(str),
        "double": st.floats(allow_nan=False, allow_infinity=False).map(str),
    }


def _formats_for(schema: Schema) -> dict[str, st.SearchStrategy[str]]:
    text = json.dumps(schema)
    return {name: s for name, s in custom_formats().items() if f'"{name}"' in text}


def payload_strategy(schema: Schema) -> st.SearchStrategy[Any]:
    """Values `schema` accepts (hypothesis-jsonschema, with eventwire's formats).

    In an open content model, unknown properties are generated as short scalars (not whole
    JSON trees): a handler still meets fields it does not know, and generation stays fast.
    """
    bounded = _bound_open_objects(schema)
    return from_schema(bounded, custom_formats=_formats_for(bounded), allow_x00=False)


_EXTRA_VALUE: dict[str, Any] = {"type": ["string", "integer", "boolean", "null"], "maxLength": 8}


def _bound_open_objects(schema: Schema) -> Schema:
    def walk(node: Any, in_all_of: bool) -> Any:
        if not isinstance(node, dict):
            return node
        out = dict(node)
        for key in ("properties", "patternProperties"):
            if isinstance(node.get(key), dict):
                out[key] = {k: walk(v, False) for k, v in node[key].items()}
        for key in ("items", "additionalItems", "additionalProperties", "then", "else"):
            if isinstance(node.get(key), dict):
                out[key] = walk(node[key], False)
        if isinstance(node.get("items"), list):
            out["items"] = [walk(v, False) for v in node["items"]]
        for key in ("anyOf", "oneOf"):
            if isinstance(node.get(key), list):
                out[key] = [walk(v, in_all_of) for v in node[key]]
        if isinstance(node.get("allOf"), list):
            out["allOf"] = [walk(v, True) for v in node["allOf"]]
        is_object = "properties" in node or _types(node) == ["object"]
        open_model = not any(
            k in node for k in ("additionalProperties", "patternProperties", "allOf")
        )
        if is_object and open_model and not in_all_of:
            out["additionalProperties"] = _EXTRA_VALUE
        return out

    return walk(schema, False)  # type: ignore[no-any-return]


def minimal(schema: Schema) -> Any:
    """The simplest value of `schema`: Hypothesis' first case (all choices at their simplest).

    Deterministic and cheap (one draw, no search); remembered per schema.
    """
    text = json.dumps(schema, sort_keys=True)
    if text in _MINIMAL:
        return copy.deepcopy(_MINIMAL[text])
    found: list[Any] = []

    @_FIRST
    @given(payload_strategy(schema))
    def first(value: Any) -> None:
        found.append(value)

    with unblamed_random():
        first()
    if len(_MINIMAL) >= _MINIMAL_SIZE:
        _MINIMAL.clear()
    _MINIMAL[text] = found[0]
    return copy.deepcopy(found[0])


def format_path(path: DataPath) -> str:
    """``$.lines[0].sku`` from ``("lines", 0, "sku")``."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


@dataclass(frozen=True)
class Variant:
    """A narrowed schema whose values all show one thing (``label``)."""

    label: str
    schema: Schema


@dataclass(frozen=True)
class Invalid:
    """How to break a valid value: where, what, and the schema that makes `where` present."""

    label: str
    path: DataPath
    schema: Schema
    apply: Callable[[Any], Any]


@dataclass(frozen=True)
class _Site:
    steps: tuple[Step, ...]
    path: DataPath
    node: dict[str, Any]


def _sites(schema: Schema) -> Iterator[_Site]:
    """Every sub-schema a value must follow, with how to reach it (no ``not``/``if`` parts)."""

    def walk(node: Any, steps: tuple[Step, ...], path: DataPath) -> Iterator[_Site]:
        if not isinstance(node, dict):
            return
        yield _Site(steps, path, node)
        for name, sub in (node.get("properties") or {}).items():
            yield from walk(sub, (*steps, ("properties", name)), (*path, name))
        items = node.get("items")
        if isinstance(items, dict):
            yield from walk(items, (*steps, ("items",)), (*path, 0))
        elif isinstance(items, list):
            for index, sub in enumerate(items):
                yield from walk(sub, (*steps, ("items", index)), (*path, index))
        for key in ("anyOf", "oneOf", "allOf"):
            for index, sub in enumerate(node.get(key) or ()):
                yield from walk(sub, (*steps, (key, index)), path)

    yield from walk(schema, (), ())


def _focus(schema: Schema, steps: Sequence[Step]) -> tuple[Schema, dict[str, Any]]:
    """A copy of `schema` in which the value at `steps` must be present; and that node."""
    root = copy.deepcopy(schema)
    node: Any = root
    for step in steps:
        kind = step[0]
        if kind == "properties":
            required = node.setdefault("required", [])
            if step[1] not in required:
                required.append(step[1])
            node = node["properties"][step[1]]
        elif kind == "items":
            index = step[1] if len(step) > 1 else 0
            node["minItems"] = max(int(node.get("minItems", 0)), index + 1)
            node = node["items"] if len(step) == 1 else node["items"][index]
        elif kind in ("anyOf", "oneOf"):
            branch = node[kind][step[1]]
            node[kind] = [branch]
            node = branch
        else:  # allOf: every part applies anyway
            node = node[kind][step[1]]
    assert isinstance(node, dict)
    return root, node


def _types(node: dict[str, Any]) -> list[str]:
    kind = node.get("type")
    return list(kind) if isinstance(kind, list) else [kind] if isinstance(kind, str) else []


def coverage_variants(schema: Schema) -> list[Variant]:
    """One variant per enum member, branch, type, boolean, optional property, bound, format."""
    out: list[Variant] = []

    def add(label: str, site: _Site, change: Callable[[dict[str, Any]], None] | None) -> None:
        root, node = _focus(schema, site.steps)
        if change is not None:
            change(node)
        out.append(Variant(label, root))

    for site in _sites(schema):
        where = format_path(site.path)
        node = site.node
        last = site.steps[-1] if site.steps else None
        if last is not None and last[0] == "properties":
            parent_required = _parent(schema, site.steps).get("required") or []
            if last[1] not in parent_required:
                add(f"{where} present (optional)", site, None)
        if last is not None and last[0] in ("anyOf", "oneOf"):
            add(f"{where} as {last[0]} branch {last[1]}", site, None)
        for member in node.get("enum") or ():
            add(f"{where} = {json.dumps(member)}", site, _setter("const", member))
        types = _types(node)
        if len(types) > 1:
            for kind in types:
                add(f"{where} of type {kind}", site, _setter("type", kind))
        if types == ["boolean"]:
            for flag in (False, True):
                add(f"{where} = {json.dumps(flag)}", site, _setter("const", flag))
        integer = types == ["integer"]
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            bound = node.get(key)
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                continue
            value = _boundary(key, bound, integer)
            add(f"{where} = {value} ({key})", site, _setter("const", value))
        for low, high in (("minLength", "maxLength"), ("minItems", "maxItems")):
            if low in node:
                add(f"{where} at {low} {node[low]}", site, _setter(high, node[low]))
            if high in node:
                add(f"{where} at {high} {node[high]}", site, _setter(low, node[high]))
        if "format" in node:
            add(f"{where} with format {node['format']}", site, None)
    return out


def _parent(schema: Schema, steps: tuple[Step, ...]) -> dict[str, Any]:
    node: Any = schema
    for step in steps[:-1]:
        node = node[step[0]] if step[0] == "items" and len(step) == 1 else node[step[0]][step[1]]
    assert isinstance(node, dict)
    return node


def _setter(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(node: dict[str, Any]) -> None:
        node[key] = value

    return change


def _boundary(key: str, bound: float, integer: bool) -> float:
    if key == "minimum":
        return math.ceil(bound) if integer else bound
    if key == "maximum":
        return math.floor(bound) if integer else bound
    if key == "exclusiveMinimum":
        return math.floor(bound) + 1 if integer else math.nextafter(bound, math.inf)
    return math.ceil(bound) - 1 if integer else math.nextafter(bound, -math.inf)


#: A value of each JSON type, tried in order to break a value's type.
_WRONG: tuple[tuple[str, Any], ...] = (
    ("string", "not-a-valid-value"),
    ("integer", 7),
    ("boolean", True),
    ("null", None),
    ("array", []),
    ("object", {}),
    ("number", 0.5),
)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def violations(schema: Schema) -> list[Invalid]:
    """Each required property missing, each value of a wrong type, each enum left, each
    numeric or length bound crossed."""
    out: list[Invalid] = []
    seen: set[tuple[str, DataPath]] = set()
    for site in _sites(schema):
        focused, _ = _focus(schema, site.steps)
        where = format_path(site.path)
        for name in site.node.get("required") or ():
            if ("missing", (*site.path, name)) in seen:
                continue
            seen.add(("missing", (*site.path, name)))
            out.append(
                Invalid(
                    f"{format_path((*site.path, name))}: required property missing",
                    (*site.path, name),
                    focused,
                    _remover(site.path, name),
                )
            )
        allowed = _allowed_types(site.node)
        if site.path and allowed and ("type", site.path) not in seen:
            seen.add(("type", site.path))
            kind, wrong = next((k, w) for k, w in _WRONG if not _accepts(allowed, k))
            out.append(
                Invalid(
                    f"{where}: {kind} instead of {' or '.join(sorted(allowed))}",
                    site.path,
                    focused,
                    _replacer(site.path, wrong),
                )
            )
        if site.path:  # each site once: a branch of anyOf has bounds of its own
            for label, wrong in _out_of_bounds(site.node):
                out.append(
                    Invalid(f"{where}: {label}", site.path, focused, _replacer(site.path, wrong))
                )
        enum = site.node.get("enum")
        if site.path and enum and ("enum", site.path) not in seen:
            seen.add(("enum", site.path))
            outside = _outside(enum)
            out.append(
                Invalid(
                    f"{where}: {json.dumps(outside)} is not one of {json.dumps(enum)}",
                    site.path,
                    focused,
                    _replacer(site.path, outside),
                )
            )
    return out


def _out_of_bounds(node: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Values just past each numeric, length and size bound of `node`."""
    integer = _types(node) == ["integer"]
    step = 1 if integer else 0.5
    for key, sign in (("minimum", -1), ("maximum", 1)):
        bound = node.get(key)
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            value = (math.ceil(bound) if sign < 0 else math.floor(bound)) if integer else bound
            wrong = value + sign * step
            yield f"{wrong} is {'below' if sign < 0 else 'above'} {key} {bound}", wrong
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        bound = node.get(key)
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            yield f"{bound} is not within {key} {bound}", bound
    low, high = node.get("minLength"), node.get("maxLength")
    if isinstance(low, int) and low > 0:
        yield f"{low - 1} characters, under minLength {low}", "x" * (low - 1)
    if isinstance(high, int):
        yield f"{high + 1} characters, over maxLength {high}", "x" * (high + 1)


def _allowed_types(node: dict[str, Any]) -> set[str]:
    """The JSON types a node accepts, when it says (empty: it does not restrict types)."""
    if "const" in node:
        return {_json_type(node["const"])}
    if isinstance(node.get("enum"), list):
        return {_json_type(m) for m in node["enum"]}
    types = set(_types(node))
    if types:
        return types
    for key in ("anyOf", "oneOf"):
        branches = node.get(key)
        if isinstance(branches, list) and branches:
            union: set[str] = set()
            for branch in branches:
                found = _allowed_types(branch) if isinstance(branch, dict) else set()
                if not found:
                    return set()
                union |= found
            return union
    return set()


def _accepts(allowed: set[str], kind: str) -> bool:
    return kind in allowed or (kind == "integer" and "number" in allowed)


def _outside(enum: Sequence[Any]) -> Any:
    if all(isinstance(m, str) for m in enum):
        candidate = "not-a-member"
        while candidate in enum:
            candidate += "-"
        return candidate
    return max((m for m in enum if isinstance(m, int | float)), default=0) + 1


def _locate(value: Any, path: DataPath) -> Any:
    for part in path:
        value = value[part]
    return value


def _remover(path: DataPath, name: str) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        value = copy.deepcopy(value)
        _locate(value, path).pop(name, None)
        return value

    return apply


def _replacer(path: DataPath, new: Any) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        value = copy.deepcopy(value)
        _locate(value, path[:-1])[path[-1]] = copy.deepcopy(new)
        return value

    return apply


def usable_variants(model: MessageModel) -> list[tuple[str, Any]]:
    """The simplest value of each coverage variant that the full schema accepts."""
    validator = Draft7Validator(model.payload)
    out: list[tuple[str, Any]] = []
    for variant in coverage_variants(model.payload):
        try:
            value = minimal(variant.schema)
        except (HypothesisException, UnsupportedSchemaError):
            continue  # the narrowing contradicts the rest of the schema (e.g. multipleOf)
        if validator.is_valid(value):
            out.append((variant.label, value))
    return out
