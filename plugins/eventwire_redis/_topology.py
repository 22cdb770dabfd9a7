"""What the redis backend keeps on the server: key names, stream entry layout, Lua scripts.

The keys of a channel ``C`` are listed in ``docs/backends/redis.md`` (Operational notes):
``C:<n>`` shard streams, ``C:meta`` (its ``shards``, fixed by whoever touches the channel
first), ``C:members:<group>``, ``C:lease:<group>:<n>`` and ``C:gen:<group>`` (bumped on
every join, leave and give-back, so the other members rebalance at once).

A stream entry carries the message as fields: ``$body``, ``$key`` (when there is one) and
one field per header, named as the header (CloudEvents Kafka binding names); a header whose
name starts with ``$`` is written with one more ``$`` in front, so it cannot collide with
the reserved fields. An entry without ``$body`` was written by another producer: one
``__data__`` field (FastStream's binary message format) is read with FastStream's parser;
any other entry becomes a JSON object of its fields as the body (as a FastStream stream
subscriber reads it). The pipeline decides whether a subscription accepts it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from eventwire.backend import WireMessage

__all__ = [
    "BODY",
    "CLEAN_CONSUMER",
    "CREATE_GROUP",
    "GIVE_BACK",
    "HEARTBEAT",
    "KEY",
    "LEASES",
    "RELEASE",
    "ChannelKeys",
    "PackedHead",
    "decode_entry",
    "pack_command",
    "pack_entry",
    "pack_head",
]

BODY = b"$body"
#: The one field of a stream entry FastStream writes (its binary message format).
FASTSTREAM_DATA = b"__data__"
KEY = b"$key"


class ChannelKeys:
    """The Redis key names of one channel."""

    __slots__ = ("base", "streams")

    def __init__(self, prefix: str, channel: str, shards: int) -> None:
        self.base = f"{prefix}{channel}"
        self.streams = [f"{self.base}:{n}" for n in range(shards)]

    def members(self, group: str) -> str:
        return f"{self.base}:members:{group}"

    def lease(self, group: str, shard: int) -> str:
        return f"{self.base}:lease:{group}:{shard}"

    def gen(self, group: str) -> str:
        return f"{self.base}:gen:{group}"


#: The arguments of a command's head (``XADD key MAXLEN ~ n *``) in RESP, and their count.
PackedHead = tuple[int, bytes]


def pack_head(args: Sequence[bytes]) -> PackedHead:
    """`args` in RESP, packed once for every command that starts with them."""
    return len(args), b"".join([_bulk(arg) for arg in args])


def pack_entry(head: PackedHead, message: WireMessage) -> bytes:
    """The command `head` followed by the fields of `message`'s stream entry, in RESP:
    ``$body``, ``$key`` when there is one, then one field per header (see the module
    docstring). The field names' RESP is made once per name; publishing packs one entry per
    event."""
    count, packed_head = head
    body = message.body if isinstance(message.body, bytes) else bytes(message.body)
    parts = [b"", packed_head, _BODY, b"$%d\r\n" % len(body), body, b"\r\n"]
    fields = 1
    if message.key is not None:
        key = message.key.encode()
        parts += (_KEY, b"$%d\r\n" % len(key), key, b"\r\n")
        fields = 2
    names = _NAMES
    for name, value in message.headers.items():
        raw = value.encode()
        parts += (names.get(name) or _name(name), b"$%d\r\n" % len(raw), raw, b"\r\n")
        fields += 1
    parts[0] = b"*%d\r\n" % (count + 2 * fields)
    return b"".join(parts)


def pack_command(args: Sequence[bytes]) -> bytes:
    """One command in RESP (what redis-py's ``pack_command`` makes, for bytes arguments)."""
    return b"*%d\r\n%b" % pack_head(args)


def _bulk(arg: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(arg), arg)


#: Header name → its field name in RESP (a name starting with ``$`` gets one more).
_NAMES: dict[str, bytes] = {}
_BODY = _bulk(BODY)
_KEY = _bulk(KEY)


def _name(name: str) -> bytes:
    packed = _bulk(("$" + name if name.startswith("$") else name).encode())
    if len(_NAMES) < 4096:  # header names are few; keep the memory bounded all the same
        _NAMES[name] = packed
    return packed


def decode_entry(fields: Mapping[bytes, bytes]) -> WireMessage:
    """The message of a stream entry. Never fails: a damaged entry comes back with whatever
    it has (an empty body, headers it carries), and the pipeline dead-letters it as
    ``invalid``; an entry of another producer is read as the module docstring says."""
    body = fields.get(BODY)
    if body is None and not any(name.startswith(b"ce_") for name in fields):
        return _foreign_entry(fields)
    raw_key = fields.get(KEY)
    try:  # the usual entry: UTF-8 header fields, none escaped (a name without "$" in front)
        headers = {
            name.decode(): value.decode() for name, value in fields.items() if name[:1] != b"$"
        }
        key = None if raw_key is None else raw_key.decode()
    except UnicodeDecodeError:
        return _decode_fields(fields)
    if len(headers) + (body is not None) + (raw_key is not None) < len(fields):
        return _decode_fields(fields)  # an escaped header name ("$$...")
    return WireMessage(body=b"" if body is None else body, headers=headers, key=key)


def _decode_fields(fields: Mapping[bytes, bytes]) -> WireMessage:
    """`decode_entry`, field by field: escaped names, text that is not UTF-8 (replaced)."""
    body = b""
    key: str | None = None
    headers: dict[str, str] = {}
    for name, value in fields.items():
        if name == BODY:
            body = value
        elif name == KEY:
            key = value.decode(errors="replace")
        else:
            text = name.decode(errors="replace")
            if text.startswith("$$"):
                text = text[1:]
            headers[text] = value.decode(errors="replace")
    return WireMessage(body=body, headers=headers, key=key)


def _foreign_entry(fields: Mapping[bytes, bytes]) -> WireMessage:
    """An entry without ``$body``: FastStream's ``__data__`` format, or plain fields."""
    data = fields.get(FASTSTREAM_DATA)
    if data is not None and len(fields) == 1:
        from faststream.redis.parser.binary import BinaryMessageFormatV1

        try:
            body, headers = BinaryMessageFormatV1.parse(data)
        except Exception:  # damaged: the bytes as they are, the pipeline judges them
            body, headers = data, {}
        return WireMessage(body=body, headers={str(k): str(v) for k, v in headers.items()})
    document = {
        name.decode(errors="replace"): value.decode(errors="replace")
        for name, value in fields.items()
    }
    return WireMessage(body=json.dumps(document).encode(), headers={})


#: KEYS[1] = stream; ARGV[1] = group, ARGV[2] = "0" (from the oldest retained entry) or "$".
#: Creates the group (and the stream) unless it exists; returns 1 when created, 0 if it
#: existed. The group is created with its ``entries-read`` counter set (``ENTRIESREAD``), so
#: that its ``lag`` stays exact when retention trims entries it has not read yet, and
#: trimming is only reported for entries the group could have read.
CREATE_GROUP = """
local added, length = 0, 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'length' then length = info[i + 1]
    elseif info[i] == 'entries-added' then added = info[i + 1] end
  end
end
local read = added
if ARGV[2] == '0' then read = added - length end
local res = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], ARGV[2], 'MKSTREAM',
                        'ENTRIESREAD', read)
if type(res) == 'table' and res.err then
  if string.find(res.err, 'BUSYGROUP') then return 0 end
  return redis.error_reply(res.err)
end
return 1
"""

#: KEYS[1] = members zset, KEYS[2] = gen counter; ARGV[1] = member id, ARGV[2] = ttl ms,
#: ARGV[3] = "1" to register (heartbeat) or "0" to leave. Drops expired members; bumps gen
#: when the member set changed. Returns {gen, member, member, ...}.
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local changed = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[3] == '1' then
  changed = changed + redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
else
  changed = changed + redis.call('ZREM', KEYS[1], ARGV[1])
end
if changed > 0 then redis.call('INCR', KEYS[2]) end
local gen = redis.call('GET', KEYS[2]) or '0'
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
table.insert(members, 1, gen)
return members
"""

#: KEYS = lease keys; ARGV[1] = member id, ARGV[2] = ttl ms, ARGV[2+i] = "a" to acquire
#: lease i if free, "r" to only renew it. Returns per key 1 (renewed: we held it), 2
#: (acquired: it was free, e.g. our own lease expired meanwhile) or 0 (not ours).
LEASES = """
local out = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  elseif not holder and ARGV[2 + i] == 'a' then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    out[i] = 2
  else
    out[i] = 0
  end
end
return out
"""

#: KEYS[1] = gen counter, KEYS[2..] = lease keys; ARGV[1] = member id. Deletes the leases
#: we hold; bumps gen when one was given back. Returns how many were released.
RELEASE = """
local n = 0
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
if n > 0 then redis.call('INCR', KEYS[1]) end
return n
"""

#: KEYS[1] = stream; ARGV[1] = group, ARGV[2] = consumer. Deletes the consumer from the
#: group when it has no pending entries (deleting one with pending entries would lose them);
#: a missing stream or group is an error reply of XPENDING, and nothing is deleted.
CLEAN_CONSUMER = """
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if pending.err == nil and #pending == 0 then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""

#: KEYS[1] = stream; ARGV[1] = group, ARGV[2] = member, ARGV[3] = idle ms, then pairs of entry
#: id and delivery count. Sets the delivery count of each entry still pending for the member
#: (read, never handed to its handler) and makes it idle, so the shard's next owner claims it
#: at once and counts its first delivery as the first. Returns how many it set.
GIVE_BACK = """
local given = 0
for i = 4, #ARGV, 2 do
  if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2]) == 1 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3],
               'RETRYCOUNT', ARGV[i + 1], 'JUSTID')
    given = given + 1
  end
end
return given
"""
