"""`resend_unconfirmed`: the unconfirmed remainder is sent again until a deadline."""

from __future__ import annotations

import asyncio

import pytest
from eventwire.backendkit import resend_unconfirmed
from eventwire.errors import PublishError


def test_only_the_unconfirmed_messages_are_sent_again_until_all_are_confirmed() -> None:
    rounds: list[list[str]] = []
    logged: list[list[str]] = []
    lost = {"b", "c"}  # lost with the connection in the first round

    async def send(todo: list[str], deadline: float) -> list[str]:
        rounds.append(list(todo))
        unconfirmed = [m for m in todo if m in lost]
        lost.discard("b")  # the broker is back for b, not yet for c
        if len(rounds) == 2:
            lost.clear()
        return unconfirmed

    asyncio.run(
        resend_unconfirmed(
            send,
            ["a", "b", "c"],
            timeout=30,
            give_up=PublishError,
            before_resend=logged.append,
            pause=0,
        )
    )
    assert rounds == [["a", "b", "c"], ["b", "c"], ["c"]]
    assert logged == [["b", "c"], ["c"]]


def test_what_stays_unconfirmed_past_the_deadline_is_the_give_up_error() -> None:
    async def send(todo: list[int], deadline: float) -> list[int]:
        return todo[1:]  # the first is confirmed, the rest never

    def give_up(todo: list[int]) -> PublishError:
        return PublishError(f"{len(todo)} unconfirmed")

    with pytest.raises(PublishError, match=r"^1 unconfirmed$"):
        asyncio.run(resend_unconfirmed(send, [1, 2], timeout=0, give_up=give_up, pause=0))


def test_a_refusal_raised_by_the_round_is_not_sent_again() -> None:
    rounds: list[list[int]] = []

    async def send(todo: list[int], deadline: float) -> list[int]:
        rounds.append(todo)
        raise PublishError("refused")

    with pytest.raises(PublishError, match="refused"):
        asyncio.run(resend_unconfirmed(send, [1], timeout=30, give_up=PublishError, pause=0))
    assert rounds == [[1]]
