"""Example payloads built from a JSON Schema, deterministic and readable.

Examples declared in the schema (``examples``, ``default``, ``const``, ``enum``) win; other
values come from a small walker over types and formats. A candidate that does not validate is
dropped; `hypothesis-jsonschema` is tried last when it is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from eventwire.contracts._document import resolve

__all__ = ["build_example"]

_FORMATS: dict[str, str] = {
    "date-time": "2024-05-01T12:00:00Z",
    "date": "2024-05-01",
    "time": "12:00:00Z",
    "duration": "P1D",
    "email": "customer@example.com",
    "idn-email": "customer@example.com",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "iri": "https://example.com/",
    "uuid": "3f2c6a1e-8d4b-4c1a-9b7e-2a5d6c8e9f01",
    "uuid1": "3f2c6a1e-8d4b-11ef-9b7e-2a5d6c8e9f01",
    "uuid4": "3f2c6a1e-8d4b-4c1a-9b7e-2a5d6c8e9f01",
    "binary": "ZXhhbXBsZQ==",
    "base64": "ZXhhbXBsZQ==",
}
_MAX_DEPTH = 8


class _Walker:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    def value(self, schema: Any, name: str, depth: int) -> Any:
        if not isinstance(schema, Mapping):
            return "example" if schema is True else None
        if depth > _MAX_DEPTH:
            return None
        if isinstance(schema.get("$ref"), str):
            try:
                target = resolve(self.document, schema["$ref"])
            except KeyError:
                return None
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            return self.value(merged, name, depth + 1)
        for key in ("examples",):
            examples = schema.get(key)
            if isinstance(examples, list) and examples:
                return examples[0]
        for key in ("const", "default"):
            if key in schema:
                return schema[key]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                non_null = [
                    o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")
                ]
                return self.value((non_null or options)[0], name, depth + 1)
        if isinstance(schema.get("allOf"), list) and schema["allOf"]:
            merged = {}
            for part in schema["allOf"]:
                if isinstance(part, Mapping):
                    merged.update(part)
            rest = {k: v for k, v in schema.items() if k != "allOf"}
            return self.value({**merged, **rest}, name, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
        if kind is None and "properties" in schema:
            kind = "object"
        return self._typed(str(kind) if kind is not None else "string", schema, name, depth)

    def _typed(self, kind: str, schema: Mapping[str, Any], name: str, depth: int) -> Any:
        if kind == "object":
            properties = schema.get("properties") or {}
            return {
                key: self.value(sub, key, depth + 1)
                for key, sub in properties.items()
                if isinstance(key, str)
            }
        if kind == "array":
            item = self.value(schema.get("items", {}), name, depth + 1)
            return [item] * max(1, int(schema.get("minItems", 1)))
        if kind == "integer":
            return int(_number(schema, 1))
        if kind == "number":
            return float(_number(schema, 9.99))
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return _string(schema, name)


def _number(schema: Mapping[str, Any], fallback: float) -> float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value = fallback
    if isinstance(low, int | float) and value <= low:
        value = low + 1
    if isinstance(high, int | float) and value >= high:
        value = high - 1 if not isinstance(low, int | float) else (low + high) / 2
    multiple = schema.get("multipleOf")
    if isinstance(multiple, int | float) and multiple > 0:
        value = multiple * max(1, round(value / multiple))
    return value


def _string(schema: Mapping[str, Any], name: str) -> str:
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS:
        return _FORMATS[fmt]
    base = f"{name}-1" if name else "example"
    low = int(schema.get("minLength", 0))
    high = schema.get("maxLength")
    text = base.ljust(low, "x")
    if isinstance(high, int):
        text = text[:high]
    return text


def build_example(
    schema: Mapping[str, Any],
    document: Mapping[str, Any],
    is_valid: Callable[[Any], bool],
) -> Any:
    """An example instance of `schema` (``$ref``s resolve in `document`) that `is_valid`.

    Returns ``None`` when no valid example could be built.
    """
    candidate = _Walker(document).value(schema, "", 0)
    if is_valid(candidate):
        return candidate
    try:
        from hypothesis import HealthCheck, find, settings
        from hypothesis_jsonschema import from_schema
    except ImportError:
        return None
    full = {**document, **schema} if "$ref" in schema else dict(schema)
    try:
        found = find(
            from_schema(full),
            is_valid,
            settings=settings(
                max_examples=200, database=None, suppress_health_check=list(HealthCheck)
            ),
        )
    except Exception:  # hypothesis found nothing, or cannot handle the schema
        return None
    return found
