"""What botocore's endpoint data (offline, shipped with it) says about a region or an
endpoint, the two API clients the backend opens, and what the backend's parts use of it
(`AwsClients`)."""

from __future__ import annotations

import contextlib
import difflib
import functools
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from eventwire.errors import ConfigurationError, EventwireError

from eventwire_eventbridge._settings import EventBridgeSettings

__all__ = [
    "SQS_BATCH",
    "AwsClients",
    "check_region",
    "is_aws_endpoint",
    "open_clients",
    "sqs_batches",
]

#: Attempts of one request (the AWS SDK's standard retry mode: throttling, 5xx, timeouts).
REQUEST_ATTEMPTS = 3
#: The SQS batch calls (DeleteMessageBatch, ChangeMessageVisibilityBatch, ReceiveMessage)
#: take at most 10 entries.
SQS_BATCH = 10


def sqs_batches(items: Sequence[str]) -> list[list[str]]:
    """`items` in chunks of at most `SQS_BATCH`."""
    return [list(items[i : i + SQS_BATCH]) for i in range(0, len(items), SQS_BATCH)]


class AwsClients(Protocol):
    """What the routes and subscriptions use of the backend (`EventBridgeBackend`)."""

    settings: EventBridgeSettings

    @property
    def events(self) -> Any: ...

    @property
    def sqs(self) -> Any: ...

    def map_errors(
        self,
        action: str,
        *,
        advice: str | None = None,
        into: type[EventwireError] | None = None,
    ) -> contextlib.AbstractContextManager[None]: ...


def check_region(region: str | None) -> None:
    """`ConfigurationError` for a region no AWS partition has; ``None`` is left to the
    SDK, which names the ways to give one."""
    if region is None:
        return
    known = _regions()
    if region in known:
        return
    close = difflib.get_close_matches(region, sorted(known), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigurationError(
        f"unknown AWS region {region!r}{hint}; give a region EventBridge runs in, e.g. "
        "eu-west-1 (?region=... or AWS_REGION)"
    )


def is_aws_endpoint(endpoint: str | None) -> bool:
    """Whether `endpoint` is AWS's own: none given (the region's), or a host under one of
    the DNS suffixes of AWS's partitions (``amazonaws.com``, ``api.aws``, ...; a VPC
    endpoint's ``*.vpce.amazonaws.com`` too). Anything else is an emulator or a proxy."""
    if endpoint is None:
        return True
    host = (urlsplit(endpoint).hostname or "").lower()
    return any(host == s or host.endswith(f".{s}") for s in _dns_suffixes())


async def open_clients(
    settings: EventBridgeSettings, stack: contextlib.AsyncExitStack
) -> tuple[Any, Any]:
    """The EventBridge and SQS clients (aiobotocore), closed with `stack`."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    config = AioConfig(
        connect_timeout=settings.connect_timeout,
        read_timeout=max(30.0, settings.wait_time + 10.0),
        retries={"total_max_attempts": REQUEST_ATTEMPTS, "mode": "standard"},
    )
    session = get_session()
    check_region(settings.region or session.get_config_variable("region"))
    kwargs = {"region_name": settings.region, "endpoint_url": settings.endpoint, "config": config}
    events = await stack.enter_async_context(session.create_client("events", **kwargs))
    sqs = await stack.enter_async_context(session.create_client("sqs", **kwargs))
    return events, sqs


@functools.cache
def _regions() -> frozenset[str]:
    from botocore.session import Session

    session = Session()
    return frozenset(
        name
        for partition in session.get_available_partitions()
        for name in session.get_available_regions("events", partition_name=partition)
    )


@functools.cache
def _dns_suffixes() -> frozenset[str]:
    from botocore.loaders import Loader

    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "dnsSuffix" and isinstance(value, str):
                    found.add(value.lower())
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(Loader().load_data("endpoints"))
    return frozenset(found)
