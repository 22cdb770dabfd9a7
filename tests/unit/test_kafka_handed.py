"""The delivery record a kafka member keeps in its partitions' commit metadata."""

from __future__ import annotations

from eventwire_kafka._handed import count_for, decode, encode


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
