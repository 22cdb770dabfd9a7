"""The backend kit: what every backend needs beyond its broker's primitives, written once.

A backend built on the kit is its broker's primitives plus a few declarations:

- `BackendSettings` + `option`: the backend's options as a frozen dataclass; one parser for
  URL and keyword options (`BackendSettings.parse`), coercion by annotation (`Seconds`,
  `ByteSize`, enums, ``Literal``, ``X | None``), secrets redacted, the docs' options table
  rendered from it (`render_options_table`, `sync_options_tables`).
- `BaseBackend`: idempotent ``connect`` on a `ConnectionState`, ``close``/``abort`` of every
  subscription, the one connection guard (`BaseBackend.check_connected`), the name and size
  checks (`check_publish`, `check_subscribe`, `message_size`), and error mapping
  (`BaseBackend.map_errors`, `map_errors`, `scrub`) that keeps the cause.
- `BaseSubscription`: the one shutdown contract (``stop`` / ``close`` / ``abort``, see
  its module), background-task supervision, the one place a handler exception is caught;
  `Outage` for a loop that retries a failing broker call (log once, back off).
- `TlsOptions`, `CredentialOptions`: the TLS and credential options, spelled and meaning the
  same on every backend (``ca_file``, ``cert_file``, ``tls_verify``, ``password_file``...);
  a backend's settings inherit them.
- `AckBatcher`: acks queued one by one, sent in batches by a background task, the last
  ones on close; `GroupCommit`: concurrent publishes written together (what queues during
  a write goes in the next one), each caller told its own outcome; `Memo`: per-key
  topology worked out once (single flight); `retrying`, `quietly`, `wait_event`,
  `retrieve`: a call retried while the broker is away, a bounded quiet shutdown step, a
  bounded wait for an event, the outcome of a future nobody awaits collected.
- `address`, `join_host`: server addresses, read the same way by every backend;
  `Location.nodes` reads a URL's ``host[:port],...`` list (errors with an example URL),
  `with_port`, `join_hosts`, `server_url` resolve and write it back (the redacted URL).
- `connect_failure`: why a first connect failed (TLS, timeout, login, a broker's own
  refusals), as one line that says what to do; `describe_exception` for one error.
- `BackendPlugin`: the plugin module's hooks (backend info, factory, AsyncAPI protocol);
  `lazy_exports`: the package's names that need the client library, imported on first use.
- `ShardCoordinator` over a `LeaseStore`: which member reads which shard, hand-over only
  after in-flight deliveries are settled (`ShardState`); `MemoryLeaseStore` is the
  in-process store; `shard_of` is the one key → shard function. `ShardedSubscription` runs
  a member's coordinator, fetch loop and `AckBatcher` with the shutdown hooks wired; its
  deliveries are `ShardInbound` (settled once), which need only a `ShardMember` (the spec
  and ``ack``) of whatever made them.

``docs/backend-authors.md`` is the guide; ``eventwire_memory`` and ``eventwire_sqlite`` are
worked examples.
"""

from eventwire.backendkit._acks import AckBatcher
from eventwire.backendkit._aio import Memo, quietly, retrieve, retrying, wait_event
from eventwire.backendkit._backend import BaseBackend, ConnectionState
from eventwire.backendkit._checks import (
    check_messages,
    check_spec,
    first_oversized,
    message_size,
)
from eventwire.backendkit._coerce import ByteSize, Seconds, coerce
from eventwire.backendkit._docs import render_options_table, sync_options_tables
from eventwire.backendkit._errors import ErrorMap, map_errors, scrub
from eventwire.backendkit._group_commit import GroupCommit
from eventwire.backendkit._leases import Grant, LeaseRequest, LeaseStore, MemoryLeaseStore
from eventwire.backendkit._net import (
    HostPort,
    address,
    join_host,
    join_hosts,
    server_url,
    with_port,
)
from eventwire.backendkit._outage import Outage
from eventwire.backendkit._plugin import BackendPlugin, lazy_exports
from eventwire.backendkit._refused import Connecting, connect_failure, describe_exception
from eventwire.backendkit._security import (
    CredentialOptions,
    TlsOptions,
    describe_permission_failure,
    describe_tls_failure,
    diagnose_tls,
)
from eventwire.backendkit._settings import (
    BackendSettings,
    Location,
    OptionInfo,
    OptionSpec,
    option,
)
from eventwire.backendkit._sharded import ShardedSubscription, ShardInbound, ShardMember
from eventwire.backendkit._shards import Shard, ShardCoordinator, ShardState, shard_of
from eventwire.backendkit._subscription import (
    BaseSubscription,
    SubscriptionState,
    cancel_and_wait,
)

__all__ = [
    "AckBatcher",
    "BackendPlugin",
    "BackendSettings",
    "BaseBackend",
    "BaseSubscription",
    "ByteSize",
    "Connecting",
    "ConnectionState",
    "CredentialOptions",
    "ErrorMap",
    "Grant",
    "GroupCommit",
    "HostPort",
    "LeaseRequest",
    "LeaseStore",
    "Location",
    "Memo",
    "MemoryLeaseStore",
    "OptionInfo",
    "OptionSpec",
    "Outage",
    "Seconds",
    "Shard",
    "ShardCoordinator",
    "ShardInbound",
    "ShardMember",
    "ShardState",
    "ShardedSubscription",
    "SubscriptionState",
    "TlsOptions",
    "address",
    "cancel_and_wait",
    "check_messages",
    "check_spec",
    "coerce",
    "connect_failure",
    "describe_exception",
    "describe_permission_failure",
    "describe_tls_failure",
    "diagnose_tls",
    "first_oversized",
    "join_host",
    "join_hosts",
    "lazy_exports",
    "map_errors",
    "message_size",
    "option",
    "quietly",
    "render_options_table",
    "retrieve",
    "retrying",
    "scrub",
    "server_url",
    "shard_of",
    "sync_options_tables",
    "wait_event",
    "with_port",
]
