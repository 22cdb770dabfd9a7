"""Connecting to Kafka: FastStream's security object, the client arguments each client
takes (`takes`), and a clear message for a refused login or a TLS problem."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from typing import Any, cast

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError
from eventwire.backendkit import diagnose_tls
from eventwire.errors import BackendUnavailableError, ConfigurationError
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from eventwire_kafka._settings import KafkaSettings

__all__ = ["aiokafka_producer", "explain", "security", "takes"]


def security(settings: KafkaSettings) -> BaseSecurity | None:
    """FastStream's security object for the settings (FastStream turns it into the
    aiokafka ``security_protocol`` / ``sasl_*`` / ``ssl_context`` arguments)."""
    use_ssl = settings.uses_ssl
    if settings.uses_sasl:
        assert settings.username is not None and settings.password is not None
        kind = {
            "PLAIN": SASLPlaintext,
            "SCRAM-SHA-256": SASLScram256,
            "SCRAM-SHA-512": SASLScram512,
        }[settings.sasl_mechanism or "PLAIN"]
        return kind(
            settings.username,
            settings.password,
            ssl_context=settings.ssl_context,
            use_ssl=use_ssl,
        )
    if use_ssl:
        return BaseSecurity(ssl_context=settings.ssl_context, use_ssl=True)
    return None


async def explain(
    settings: KafkaSettings, url: str, exc: KafkaConnectionError, kwargs: dict[str, Any]
) -> None:
    """aiokafka says only "unable to bootstrap": a TLS problem or a refused SASL login
    gets its own message (one connection to the first bootstrap broker finds which)."""
    s = settings
    host, _, port = s.hosts[0].rpartition(":")
    if s.uses_sasl:
        try:
            conn = await asyncio.wait_for(
                create_conn(host.strip("[]"), int(port), **takes(create_conn, kwargs)),
                min(s.connect_timeout, 3),
            )
            conn.close()
        except Exception as login:
            if "authentication" in str(login).lower():
                raise BackendUnavailableError(
                    f"Kafka at {url} refused the SASL {s.sasl_mechanism} login: "
                    "wrong user name or password (authentication failed); check the "
                    "credentials (URL, username / password, password_env or password_file)"
                ) from exc
    context = s.ssl_context if s.uses_ssl else None
    problem = await diagnose_tls(host.strip("[]"), int(port), context, min(s.connect_timeout, 3.0))
    if problem is not None:
        raise BackendUnavailableError(f"cannot connect to Kafka at {url}: {problem}") from exc


def takes(client: Callable[..., Any], kwargs: Mapping[str, Any], *drop: str) -> dict[str, Any]:
    """The arguments of `kwargs` (FastStream's for its producer) that the aiokafka `client`
    takes, by its signature; never ``loop`` (deprecated) nor `drop`."""
    names = inspect.signature(client).parameters.keys() - {"loop", *drop}
    return {k: v for k, v in kwargs.items() if k in names}


def aiokafka_producer(producer: object) -> Any:
    """The ``AIOKafkaProducer`` that FastStream's producer wraps (started by
    ``KafkaBroker.connect`` with ``enable_idempotence=True, acks="all"``)."""
    try:
        return cast(Any, producer)._producer.producer
    except AttributeError as exc:  # pragma: no cover - a FastStream release moved it
        raise ConfigurationError(
            "this FastStream release keeps its aiokafka producer elsewhere; install the "
            "FastStream version eventwire[kafka] pins"
        ) from exc
