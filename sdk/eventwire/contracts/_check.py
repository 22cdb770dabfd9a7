"""Contract first: drift between what a bus publishes / consumes and a contract."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from eventwire.contracts._diff import schema_inclusion
from eventwire.contracts._document import MessageEntry, deref, iter_messages
from eventwire.contracts._generate import generate_asyncapi
from eventwire.contracts._validate import Problem, Severity, json_path
from eventwire.deadletter import DLQ_SUFFIX
from eventwire.errors import ContractError

if TYPE_CHECKING:
    from eventwire.bus import EventBus

__all__ = ["check_bus", "check_documents"]


def _entries(document: Mapping[str, Any], label: str) -> dict[str, MessageEntry]:
    try:
        return {e.name: e for e in iter_messages(document)}
    except KeyError as exc:
        raise ContractError(f"{label}: {exc.args[0]}") from None


def _addresses(document: Mapping[str, Any], channel_keys: tuple[str, ...]) -> set[str]:
    out: set[str] = set()
    channels = document.get("channels") or {}
    for key in channel_keys:
        channel, _ = deref(document, channels.get(key), "")
        if isinstance(channel, Mapping):
            out.add(str(channel.get("address", key)))
    return {a for a in out if not a.endswith(DLQ_SUFFIX)}


def _all_addresses(document: Mapping[str, Any]) -> set[str]:
    out: set[str] = set()
    for key, node in (document.get("channels") or {}).items():
        channel, _ = deref(document, node, "")
        if isinstance(channel, Mapping):
            out.add(str(channel.get("address", key)))
    return {a for a in out if not a.endswith(DLQ_SUFFIX)}


def _actions(document: Mapping[str, Any]) -> dict[str, set[str]]:
    """Message name -> the operation actions (send, receive) that carry it."""
    out: dict[str, set[str]] = {}
    for key, node in (document.get("operations") or {}).items():
        operation, pointer = deref(document, node, f"/operations/{key}")
        if not isinstance(operation, Mapping):
            continue
        action = str(operation.get("action"))
        refs = operation.get("messages")
        if not refs:  # no list: every message of its channel
            channel, _ = deref(document, operation.get("channel"), pointer)
            refs = list((channel.get("messages") or {}).values()) if channel else []
        for ref in refs:
            message, _ = deref(document, ref, pointer)
            if isinstance(message, Mapping) and isinstance(ref, Mapping):
                name = message.get("name") or str(ref.get("$ref", "")).rsplit("/", 1)[-1]
                out.setdefault(str(name), set()).add(action)
    return out


def _does(subject: str, actions: set[str]) -> str:
    if not actions:
        return f"{subject} neither sends nor receives"
    return f"{subject} " + " and ".join(f"{action}s" for action in sorted(actions))


def check_documents(
    code: Mapping[str, Any], contract: Mapping[str, Any], *, partial: bool = False
) -> list[Problem]:
    """Drift between the document generated from code and a contract document.

    Errors: a message or channel on one side only (with `partial`, contract-only ones are
    just reported as ``info``), a message on other channels, another version, or a payload
    schema that is not equivalent (FULL compatible) with the contract's.
    """
    problems: list[Problem] = []
    mine, theirs = _entries(code, "code"), _entries(contract, "contract")
    extra_severity: Severity = "info" if partial else "error"
    acts_mine, acts_theirs = _actions(code), _actions(contract)
    for name in sorted(set(mine) | set(theirs)):
        path = json_path(["messages", name])
        if name not in theirs:
            problems.append(
                Problem(
                    path, f"{name} is used by the code but not in the contract", "drift-message"
                )
            )
            continue
        if name not in mine:
            problems.append(
                Problem(
                    path,
                    f"{name} is in the contract but not used by the code",
                    "drift-message",
                    extra_severity,
                )
            )
            continue
        ours, their = mine[name], theirs[name]
        did, promised = acts_mine.get(name, set()), acts_theirs.get(name, set())
        if acts_theirs and did != promised:  # (a contract without operations: messages only)
            unexpected = did - promised
            problems.append(
                Problem(
                    path,
                    f"{_does('the code', did)} {name}; {_does('the contract', promised)} it",
                    "drift-operation",
                    "error" if unexpected or not partial else "info",
                )
            )
        channels_ours = _addresses(code, ours.channels)
        channels_their = _addresses(contract, their.channels)
        if channels_ours != channels_their:
            problems.append(
                Problem(
                    path,
                    f"{name} travels on {', '.join(sorted(channels_ours)) or 'no channel'} in the "
                    f"code, on {', '.join(sorted(channels_their)) or 'no channel'} in the contract",
                    "drift-channel",
                )
            )
        version_ours = ours.message.get("x-eventwire-version")
        version_their = their.message.get("x-eventwire-version")
        if version_their is not None and version_ours != version_their:
            problems.append(
                Problem(
                    path,
                    f"{name} is version {version_ours} in the code, {version_their} in the "
                    "contract",
                    "drift-version",
                )
            )
        theirs_payload = their.message.get("payload", True)
        ours_payload = ours.message.get("payload", True)
        reasons = [
            r.format(a="the contract", b="the code")
            for r in schema_inclusion(theirs_payload, ours_payload, contract, code)
        ]
        reasons += [
            r.format(a="the code", b="the contract")
            for r in schema_inclusion(ours_payload, theirs_payload, code, contract)
        ]
        if reasons:
            problems.append(
                Problem(
                    path + ".payload",
                    f"{name}'s payload schema differs from the contract: " + "; ".join(reasons),
                    "drift-schema",
                )
            )
    code_channels, contract_channels = _all_addresses(code), _all_addresses(contract)
    for address in sorted(code_channels - contract_channels):
        problems.append(
            Problem(
                json_path(["channels", address]),
                f"channel {address} is used by the code but not in the contract",
                "drift-channel",
            )
        )
    for address in sorted(contract_channels - code_channels):
        problems.append(
            Problem(
                json_path(["channels", address]),
                f"channel {address} is in the contract but not used by the code",
                "drift-channel",
                extra_severity,
            )
        )
    return problems


def check_bus(
    bus: EventBus, contract: Mapping[str, Any], *, partial: bool = False
) -> list[Problem]:
    """Drift between `bus` (its declared and subscribed messages) and `contract`."""
    return check_documents(generate_asyncapi(bus), contract, partial=partial)
