"""The redis backend's stream entries: what `encode_entry` writes, `decode_entry` reads back,
by its fast path for the usual entry and field by field for the rest (no broker needed)."""

from __future__ import annotations

import pytest
from eventwire.backend import WireMessage
from eventwire_redis._topology import _pack_in_python, decode_entry, encode_entry, pack_command


def _fields(message: WireMessage) -> dict[bytes, bytes]:
    flat = encode_entry(message)
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


def test_a_command_packs_the_same_with_hiredis_and_without() -> None:
    head = [b"XADD", b"orders:0", b"MAXLEN", b"~", b"1000", b"*"]
    args = encode_entry(WireMessage(b"\x00\r\n" * 3, {"ce_id": "1", "$x": "ü"}, "k"))
    packed = pack_command(head, args)
    assert packed == _pack_in_python(head, args)
    assert (
        packed.startswith(b"*14\r\n$4\r\nXADD\r\n")
        and b"$9\r\n\x00\r\n\x00\r\n\x00\r\n\r\n" in packed
    )
