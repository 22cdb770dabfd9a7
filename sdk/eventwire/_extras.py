"""Which pip extra provides a missing module, and the one-line message that says so."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

__all__ = [
    "DEFAULT_PORTS",
    "EXTRAS",
    "SCHEME_EXTRAS",
    "STORE_EXTRAS",
    "extra_for",
    "install_hint",
    "missing_modules",
]

#: extra -> the top-level modules it installs that eventwire imports (pyproject.toml's
#: [project.optional-dependencies]; a test keeps the two in step).
EXTRAS: Mapping[str, tuple[str, ...]] = {
    "kafka": ("aiokafka", "faststream"),
    "rabbit": ("aio_pika", "aiormq", "faststream"),
    "redis": ("redis", "faststream"),
    "nats": ("nats", "nkeys", "faststream"),
    "aws": ("aiobotocore", "botocore"),
    "conformance": ("pytest", "xdist", "pytest_timeout"),
    "reload": ("watchfiles",),
    "serve": ("starlette", "uvicorn"),
    "testing": ("hypothesis", "hypothesis_jsonschema"),
    "contract": ("pact",),
    "otel": ("opentelemetry",),
    "prometheus": ("prometheus_client",),
    "cloudevents": ("cloudevents",),
    "postgres": ("asyncpg",),
}
#: URL scheme of a built-in network backend -> the extra whose backend serves it.
SCHEME_EXTRAS: Mapping[str, str] = {
    "kafka": "kafka",
    "amqp": "rabbit",
    "amqps": "rabbit",
    "redis": "redis",
    "rediss": "redis",
    "nats": "nats",
    "eventbridge": "aws",
}

#: URL scheme of a built-in idempotency store -> the extra whose client it needs.
STORE_EXTRAS: Mapping[str, str] = {
    "redis": "redis",
    "rediss": "redis",
    "nats": "nats",
    "postgresql": "postgres",
    "postgres": "postgres",
}

#: The example port of each built-in network scheme, for messages.
DEFAULT_PORTS: Mapping[str, int] = {
    "kafka": 9092,
    "amqp": 5672,
    "amqps": 5671,
    "redis": 6379,
    "rediss": 6379,
    "nats": 4222,
}


def extra_for(module: str | None, prefer: str | None = None) -> str | None:
    """The extra that installs `module` (its top-level package); `prefer` breaks ties."""
    if not module:
        return None
    top = module.split(".", 1)[0]
    if prefer is not None and top in EXTRAS.get(prefer, ()):
        return prefer
    for extra, modules in EXTRAS.items():
        if top in modules:
            return extra
    return None


def install_hint(error: ModuleNotFoundError, needed_by: str, prefer: str | None = None) -> str:
    """``<needed_by> needs <module>, which is not installed: pip install 'eventwire[x]'``."""
    module = (error.name or str(error)).split(".", 1)[0]
    extra = extra_for(module, prefer)
    how = f"pip install 'eventwire[{extra}]'" if extra else f"install the {module!r} package"
    return f"{needed_by} needs {module!r}, which is not installed: {how}"


def missing_modules(extra: str) -> list[str]:
    """The modules of `extra` that cannot be imported here."""
    return [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
