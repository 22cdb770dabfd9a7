"""Compiled payload checks: `fastjsonschema` code for schemas where it agrees with jsonschema.

`ContractValidator` answers "valid" from the compiled function and asks jsonschema only for
a payload the compiled function rejects (jsonschema then words every problem, or finds none,
and its answer is the one returned). So a compiled check may be stricter than jsonschema
without changing any result; it must never be more lenient. Two differences would make it
so, and both are kept out:

- fastjsonschema implements JSON Schema drafts 4, 6 and 7, contracts use 2020-12. A schema
  is compiled only when every keyword it reaches means the same in draft 7 and 2020-12
  (`SAME_IN_DRAFT7` plus annotations); one with ``prefixItems``, ``unevaluated*``,
  ``dependent*``, ``$id``/``$anchor``/``$dynamicRef`` or a ``$ref`` with validating siblings
  (draft 7 ignores those siblings) is left to jsonschema alone.
- formats: every format the compiled code checks calls jsonschema's own format checker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft202012Validator

__all__ = ["SAME_IN_DRAFT7", "compile_payload_check"]

#: Validation keywords with the same meaning in draft 7 and draft 2020-12.
SAME_IN_DRAFT7 = frozenset(
    {
        "type",
        "enum",
        "const",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "format",
        "maxItems",
        "minItems",
        "uniqueItems",
        "contains",
        "maxProperties",
        "minProperties",
        "required",
        "properties",
        "patternProperties",
        "additionalProperties",
        "propertyNames",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "items",
        "$ref",
    }
)
#: Keywords that carry no assertion in either draft (or hold subschemas only reached by $ref).
_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "example",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$comment",
        "$defs",
        "definitions",
        "$schema",
        "contentMediaType",
        "contentEncoding",
        "discriminator",
        "externalDocs",
        "xml",
    }
)
#: Keywords whose value is one subschema, a list of them, or a name -> subschema map.
_ONE = frozenset({"contains", "propertyNames", "not", "if", "then", "else", "items"})
_LIST = frozenset({"allOf", "anyOf", "oneOf"})
_MAP = frozenset({"properties", "patternProperties"})

Check = Callable[[Any], Any]


def compile_payload_check(document: Mapping[str, Any], pointer: str) -> Check | None:
    """A compiled check of the schema at `pointer` in `document`, or ``None`` when the schema
    uses something draft 7 would read differently (or fastjsonschema is not installed)."""
    try:
        import fastjsonschema
    except ModuleNotFoundError:  # pragma: no cover - a dependency of eventwire
        return None
    formats: set[str] = set()
    if not _same_in_draft7(document, _resolve(document, pointer), formats, set()):
        return None
    checker = Draft202012Validator.FORMAT_CHECKER
    root = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        **{k: v for k, v in document.items() if k not in ("$schema", "$id")},
        "$ref": "#" + pointer,
    }
    try:
        return fastjsonschema.compile(  # type: ignore[no-any-return]
            root,
            formats={name: _format(checker.conforms, name) for name in formats},
            use_default=False,
            detailed_exceptions=False,
        )
    except Exception:  # a construct the compiler does not take: jsonschema alone
        return None


def _format(conforms: Callable[[object, str], bool], name: str) -> Callable[[object], bool]:
    return lambda value: conforms(value, name)


def _resolve(document: Mapping[str, Any], pointer: str) -> Any:
    node: Any = document
    for token in pointer.lstrip("/").split("/") if pointer else ():
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def _same_in_draft7(
    document: Mapping[str, Any], node: Any, formats: set[str], seen: set[str]
) -> bool:
    if isinstance(node, bool):
        return True
    if not isinstance(node, Mapping):
        return False
    ref = node.get("$ref")
    if ref is not None:
        if not isinstance(ref, str) or not ref.startswith("#"):
            return False
        if any(k in SAME_IN_DRAFT7 for k in node if k != "$ref"):
            return False  # draft 7 ignores the siblings of $ref; 2020-12 applies them
        if ref in seen:
            return True
        seen.add(ref)
        try:
            target = _resolve(document, unquote(ref[1:]))
        except (KeyError, IndexError, ValueError, TypeError):
            return False
        return _same_in_draft7(document, target, formats, seen)
    for key, value in node.items():
        if key.startswith("x-") or key in _ANNOTATIONS:
            continue
        if key not in SAME_IN_DRAFT7:
            return False
        if key == "format":
            if not isinstance(value, str):
                return False
            formats.add(value)
        elif key == "items" and isinstance(value, list):
            return False  # the tuple form: prefixItems in 2020-12
        elif key in _ONE or key == "additionalProperties":
            if isinstance(value, (Mapping, bool)) and not _same_in_draft7(
                document, value, formats, seen
            ):
                return False
        elif key in _LIST:
            if not isinstance(value, list) or not all(
                _same_in_draft7(document, v, formats, seen) for v in value
            ):
                return False
        elif key in _MAP and (
            not isinstance(value, Mapping)
            or not all(_same_in_draft7(document, v, formats, seen) for v in value.values())
        ):
            return False
    return True
