"""The redis backend's stream entries: what `pack_entry` writes, `decode_entry` reads back,
by its fast path for the usual entry and field by field for the rest (no broker needed)."""

from __future__ import annotations

import pytest
from eventwire.backend import WireMessage
from eventwire_redis._topology import decode_entry, pack_command, pack_entry, pack_head

HEAD = [b"XADD", b"orders:0", b"MAXLEN", b"~", b"1000", b"*"]


def parse_resp(packed: bytes) -> list[bytes]:
    """The arguments of one RESP command (an array of bulk strings), read by the protocol's
    rules, independently of how `pack_entry` builds it."""
    line, _, rest = packed.partition(b"\r\n")
    assert line.startswith(b"*")
    args = []
    for _ in range(int(line[1:])):
        line, _, rest = rest.partition(b"\r\n")
        assert line.startswith(b"$")
        size = int(line[1:])
        args.append(rest[:size])
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]
    assert rest == b""
    return args


def _fields(message: WireMessage) -> dict[bytes, bytes]:
    args = parse_resp(pack_entry(pack_head(HEAD), message))
    assert args[: len(HEAD)] == HEAD
    flat = args[len(HEAD) :]
    return dict(zip(flat[::2], flat[1::2], strict=True))


@pytest.mark.parametrize(
    "message",
    [
        WireMessage(b'{"n":1}', {"ce_id": "1", "ce_type": "t", "content-type": "json"}, "k-1"),
        WireMessage(b"", {"ce_id": "2"}, None),
        WireMessage(b"x", {"ce_id": "3", "$odd": "a", "$$odder": "b", "ünï": "çödé"}, "ķ"),
        WireMessage(b"\xff\xfe", {}, ""),
    ],
    ids=["usual", "no-key", "escaped-names", "no-headers"],
)
def test_an_entry_reads_back_as_the_message_written(message: WireMessage) -> None:
    assert decode_entry(_fields(message)) == message


def test_text_that_is_not_utf8_is_replaced_not_refused() -> None:
    fields = {b"$body": b"b", b"$key": b"k\xff", b"ce_id": b"1", b"bad": b"v\xfe"}
    assert decode_entry(fields) == WireMessage(b"b", {"ce_id": "1", "bad": "v\ufffd"}, "k\ufffd")


def test_a_damaged_entry_keeps_what_it_has() -> None:
    # no body field, but CloudEvents headers: eventwire's, damaged (dead-lettered as invalid)
    assert decode_entry({b"ce_id": b"1", b"$stray": b"s"}) == WireMessage(
        b"", {"ce_id": "1", "$stray": "s"}, None
    )


def test_an_entry_packs_as_the_module_docstring_lays_it_out() -> None:
    message = WireMessage(b"\x00\r\n" * 3, {"ce_id": "1", "$x": "ü"}, "k")
    args = parse_resp(pack_entry(pack_head(HEAD), message))
    assert args == [
        *HEAD,
        b"$body",
        b"\x00\r\n" * 3,
        b"$key",
        b"k",
        b"ce_id",
        b"1",
        b"$$x",
        "ü".encode(),
    ]
    assert parse_resp(pack_command([b"WAIT", b"1", b"500"])) == [b"WAIT", b"1", b"500"]
