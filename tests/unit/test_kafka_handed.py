"""The delivery record a kafka member keeps in its partitions' commit metadata."""

from __future__ import annotations

from eventwire.backend import WireMessage
from eventwire_kafka._handed import count_for, decode, encode
from eventwire_kafka._records import KafkaInbound, Partition
from hypothesis import given, settings
from hypothesis import strategies as st


def test_round_trip_merges_equal_counts_into_runs() -> None:
    metadata = encode([(5, 2), (6, 2), (8, 1), (9, 1), (12, 3)])
    assert metadata == "eventwire.handed:1 6:2,9:1,12:3"
    runs = decode(metadata)
    assert [count_for(runs, offset) for offset in (5, 6, 7, 9, 10, 12, 13)] == [2, 2, 1, 1, 3, 3, 0]


def test_nothing_handed_is_empty_and_foreign_or_broken_metadata_counts_nothing() -> None:
    assert encode([]) == ""
    for metadata in (
        None,
        "",
        "written by someone else",
        "eventwire.handed:1 7:x",
        "eventwire.handed:1 7",
    ):
        assert decode(metadata) == []


def test_many_runs_collapse_to_one_with_the_highest_count() -> None:
    pairs = [(offset, 1 + offset % 2) for offset in range(200)]
    runs = decode(encode(pairs))
    assert runs == [(199, 2)]
    assert len(encode(pairs)) < 4096  # Kafka's default offset.metadata.max.bytes


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 3), st.booleans(), st.integers(1, 4)), max_size=40),
    st.lists(st.tuples(st.integers(0, 60), st.integers(1, 4)), max_size=4),
)
def test_a_partition_keeps_its_delivery_record_as_records_come_and_finish(
    steps: list[tuple[int, bool, int]], handed: list[tuple[int, int]]
) -> None:
    """Whatever is fetched, finished and committed, the record a partition commits names
    every unfinished entry's count, then what earlier owners handed beyond them."""
    earlier = sorted({upto: count for upto, count in handed}.items())
    part = Partition(None, 0, earlier)
    offset = 0
    for fetched, finish, count in steps:
        new = [KafkaInbound(WireMessage(b"", {}), offset + i, count, part) for i in range(fetched)]
        offset += fetched
        part.add(new)
        if finish:
            for entry in list(part.entries)[: len(part.entries) // 2 + 1]:
                entry.done = True
        part.advance()
        pairs = [(e.offset, e.delivery_count) for e in part.entries]
        last = pairs[-1][0] if pairs else part.next - 1
        assert part.metadata() == encode(pairs + [r for r in earlier if r[0] > last])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 3), st.integers(1, 4)), min_size=1, max_size=20),
    st.integers(0, 6),
    st.integers(0, 60),
    st.lists(st.tuples(st.integers(0, 90), st.integers(1, 4)), max_size=4),
)
def test_records_never_offered_leave_the_delivery_record(
    fetches: list[tuple[int, int]], finished: int, offered: int, handed: list[tuple[int, int]]
) -> None:
    """A stop or revoke gives up the records taken after the last one offered to the
    handler: the record committed next names the offered ones, then what earlier owners
    handed beyond them, as if the rest had never been taken."""
    earlier = sorted({upto: count for upto, count in handed}.items())
    part = Partition(None, 0, earlier)
    offset = 0
    for fetched, count in fetches:
        part.add(
            [KafkaInbound(WireMessage(b"", {}), offset + i, count, part) for i in range(fetched)]
        )
        offset += fetched
    for entry in list(part.entries)[:finished]:
        entry.done = True
    part.advance()
    part.offered = max(offered, part.next - 1)
    kept = [(e.offset, e.delivery_count) for e in part.entries if e.offset <= part.offered]
    part.give_up()
    assert [(e.offset, e.delivery_count) for e in part.entries] == kept
    last = kept[-1][0] if kept else part.next - 1
    assert part.metadata() == encode(kept + [r for r in earlier if r[0] > last])
