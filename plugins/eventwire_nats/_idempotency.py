"""`NatsIdempotencyStore`: handled event ids in a JetStream key-value bucket, shared by every
process of a group (``EventBus("nats://...")``'s default; any backend can use one).

One key per claimed id (base64url of ``<group>:<event id>``: KV keys allow few characters).
``claim`` *creates* ``busy <token> <expiry>`` (atomic); on an existing key: ``done`` is
DONE, an expired claim is taken over with *update at its revision* (one of two contenders
wins, the other is BUSY), else BUSY. ``complete`` writes ``done``; ``release`` deletes the
key at its revision while it still holds this claim. Done ids live for the bucket's
``max_age`` (`DONE_TTL`; NATS 2.9 has no per-key TTL). Claim expiry compares the hosts'
wall clocks.
"""

from __future__ import annotations

import base64
import contextlib
import time
import uuid
from typing import Any, Protocol

from eventwire.backendkit import Memo
from eventwire.errors import BackendUnavailableError
from eventwire.idempotency import Claim

from eventwire_nats._topology import Topology

__all__ = ["BUCKET", "DONE_TTL", "JetStreamConnection", "NatsIdempotencyStore"]

BUCKET = "eventwire_idempotency"
#: How long done ids are kept (the bucket's max age; the pipeline asks for the same).
DONE_TTL = 7 * 24 * 3600.0
_DONE = b"done"


class JetStreamConnection(Protocol):
    """What the store needs of its connection: a `eventwire_nats.NatsBackend` (not connected
    yet; the store connects it on first use and closes it)."""

    js: Any
    topology: Topology

    @property
    def url(self) -> str: ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...


class NatsIdempotencyStore:
    """An `eventwire.idempotency.IdempotencyStore` in a NATS JetStream KV bucket (atomic,
    shared across processes).

    ``connection``: its own `NatsBackend`, not connected yet: the store connects it on first
    use and closes it (``NatsBackend.idempotency_store(url)`` builds one from a URL:
    ``nats://user:pass@host:4222``, ``tls://...``, ``creds``, ``connect_timeout`` ...).
    ``bucket``: the KV bucket's name.
    """

    def __init__(self, connection: JetStreamConnection, *, bucket: str = BUCKET) -> None:
        self._connection = connection
        self.bucket = bucket
        self._kv: Memo[str, Any] = Memo()
        self._claims: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"<NatsIdempotencyStore {self._connection.url} bucket={self.bucket}>"

    async def _ready(self) -> Any:
        """The KV bucket (connected and created on first use, once)."""
        return await self._kv.get(self.bucket, self._open)

    async def _open(self) -> Any:
        from nats.js.api import KeyValueConfig

        await self._connection.connect()
        config = KeyValueConfig(
            bucket=self.bucket,
            history=1,
            ttl=DONE_TTL,
            replicas=self._connection.topology.replicas,
        )
        try:
            return await self._connection.js.create_key_value(config)
        except Exception as exc:
            raise BackendUnavailableError(
                f"idempotency store {self!r}: cannot open the KV bucket: {exc}"
            ) from exc

    async def claim(self, key: str, lease: float) -> Claim:
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        kv = await self._ready()
        name = _key(key)
        value = f"busy {uuid.uuid4().hex} {time.time() + lease:.3f}".encode()
        try:
            await kv.create(name, value)
        except KeyWrongLastSequenceError:
            try:
                entry = await kv.get(name)
            except KeyNotFoundError:  # released or purged meanwhile: ask again
                return Claim.BUSY
            if entry.value == _DONE:
                return Claim.DONE
            if not _expired(entry.value):
                return Claim.BUSY
            try:  # the holder's lease ran out: take it over, unless someone else did
                await kv.update(name, value, last=entry.revision)
            except KeyWrongLastSequenceError:
                return Claim.BUSY
        self._claims[key] = value
        return Claim.ACQUIRED

    async def complete(self, key: str, ttl: float) -> None:
        kv = await self._ready()
        await kv.put(_key(key), _DONE)
        self._claims.pop(key, None)

    async def release(self, key: str) -> None:
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        value = self._claims.pop(key, None)
        if value is None:
            return
        kv = await self._ready()
        name = _key(key)
        # taken over or gone: not ours to free any more
        with contextlib.suppress(KeyNotFoundError, KeyWrongLastSequenceError):
            entry = await kv.get(name)
            if entry.value == value:
                await kv.delete(name, last=entry.revision)

    async def close(self) -> None:
        """Disconnect (a later call connects again)."""
        self._kv.forget(self.bucket)
        await self._connection.close()


def _key(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def _expired(value: bytes) -> bool:
    try:
        expires = float(value.split()[2])
    except (IndexError, ValueError):
        return True  # not a claim this store wrote: treat as expired
    return expires <= time.time()
