"""Lint rules for contracts: names, versions, envelope headers, examples."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from eventwire.bindings import BINDINGS
from eventwire.contracts._document import DOCUMENT_URI, deref, iter_messages, resolve
from eventwire.contracts._validate import Problem, json_path

__all__ = ["RULES", "lint_document"]

RULES = {
    "event-past-tense": "an event is a fact: its name ends in a past participle (OrderPlaced)",
    "command-imperative": "a command is a request: its name starts with a verb (ReserveStock)",
    "message-kind": "x-eventwire-kind says whether a message is an event or a command",
    "message-versioned": "every message has an integer x-eventwire-version >= 1",
    "envelope-headers": "every message declares the CloudEvents id, type, source, specversion",
    "examples-present": "every message has at least one example",
    "examples-valid": "every example's payload and headers validate against the schemas",
}

_IRREGULAR = frozenset(
    [
        "built",
        "bought",
        "brought",
        "caught",
        "chosen",
        "done",
        "drawn",
        "driven",
        "eaten",
        "fallen",
        "felt",
        "found",
        "forgotten",
        "given",
        "gone",
        "grown",
        "held",
        "hidden",
        "kept",
        "known",
        "laid",
        "led",
        "left",
        "lent",
        "lost",
        "made",
        "meant",
        "met",
        "paid",
        "put",
        "read",
        "rung",
        "run",
        "said",
        "seen",
        "sent",
        "set",
        "shown",
        "shut",
        "sold",
        "spent",
        "split",
        "spoken",
        "stood",
        "struck",
        "sung",
        "taken",
        "taught",
        "thought",
        "told",
        "thrown",
        "understood",
        "undone",
        "withdrawn",
        "won",
        "written",
        "begun",
        "become",
        "broken",
        "frozen",
        "stolen",
        "sworn",
        "torn",
        "worn",
        "woken",
        "rebuilt",
        "resent",
        "reset",
        "resold",
        "rewritten",
    ]
)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORDS.findall(name.rsplit(".", 1)[-1])]


def _past(word: str) -> bool:
    return word.endswith("ed") or word in _IRREGULAR


def _headers(document: Mapping[str, Any], message: Mapping[str, Any]) -> Any:
    """The message's headers schema, with its traits merged in (the message's own win)."""
    headers: dict[str, Any] = {}
    for trait in message.get("traits") or ():
        try:
            resolved, _ = deref(document, trait, "")
        except KeyError:
            continue
        if isinstance(resolved, Mapping) and isinstance(resolved.get("headers"), Mapping):
            headers = {**headers, **_resolved(document, resolved["headers"])}
    own = message.get("headers")
    if isinstance(own, Mapping):
        headers = {**headers, **_resolved(document, own)}
    return headers or None


def _resolved(document: Mapping[str, Any], node: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(node.get("$ref"), str):
        try:
            target = resolve(document, node["$ref"])
        except KeyError:
            return {}
        return dict(target) if isinstance(target, Mapping) else {}
    return dict(node)


def lint_document(document: Mapping[str, Any]) -> list[Problem]:
    """Findings for a (valid) contract: errors break a rule, warnings are advice."""
    findings: list[Problem] = []
    registry: Registry[Any] = Registry().with_resource(
        DOCUMENT_URI, DRAFT202012.create_resource(document)
    )
    for entry in iter_messages(document):
        message, name = entry.message, entry.name
        path = json_path([p for p in entry.pointer.lstrip("/").split("/") if p])
        words = _words(name)
        kind = message.get("x-eventwire-kind")
        if kind not in ("event", "command"):
            findings.append(
                Problem(
                    path,
                    f"{name}: x-eventwire-kind is {kind!r}; say 'event' or 'command'",
                    "message-kind",
                    "warning",
                )
            )
            kind = "event" if words and _past(words[-1]) else "command"
        if kind == "event" and not (words and _past(words[-1])):
            findings.append(
                Problem(
                    path,
                    f"event {name} is not named in the past tense (e.g. OrderPlaced, "
                    "PaymentDeclined)",
                    "event-past-tense",
                )
            )
        if kind == "command" and words and (_past(words[0]) or _past(words[-1])):
            findings.append(
                Problem(
                    path,
                    f"command {name} reads like an event; name it as a request in the "
                    "imperative (e.g. ReserveInventory)",
                    "command-imperative",
                )
            )
        version = message.get("x-eventwire-version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            findings.append(
                Problem(
                    path,
                    f"{name} has no x-eventwire-version (an integer >= 1)",
                    "message-versioned",
                )
            )
        headers = _headers(document, message)
        declared = set((headers or {}).get("properties") or ())
        if not any(
            {prefix + a for a in ("id", "type", "source", "specversion")} <= declared
            for prefix in BINDINGS.values()
        ):
            findings.append(
                Problem(
                    path,
                    f"{name} does not declare the CloudEvents envelope headers (id, type, "
                    "source, specversion with the binding's prefix, e.g. ce_id); add the "
                    "envelope trait",
                    "envelope-headers",
                )
            )
        examples = message.get("examples")
        if not examples:
            findings.append(Problem(path, f"{name} has no examples", "examples-present", "warning"))
            continue
        payload_validator = Draft202012Validator(
            {"$ref": DOCUMENT_URI + "#" + entry.pointer + "/payload"},
            registry=registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        header_validator = (
            Draft202012Validator(headers, registry=registry) if headers is not None else None
        )
        for i, example in enumerate(examples if isinstance(examples, list) else ()):
            if not isinstance(example, Mapping):
                continue
            where = f"{path}.examples[{i}]"
            if "payload" in example and "payload" in message:
                for error in payload_validator.iter_errors(example["payload"]):
                    findings.append(
                        Problem(
                            where + ".payload" + error.json_path[1:],
                            f"example of {name} does not validate: {error.message}",
                            "examples-valid",
                        )
                    )
            if "headers" in example and header_validator is not None:
                for error in header_validator.iter_errors(example["headers"]):
                    findings.append(
                        Problem(
                            where + ".headers" + error.json_path[1:],
                            f"example headers of {name} do not validate: {error.message}",
                            "examples-valid",
                        )
                    )
    return findings
