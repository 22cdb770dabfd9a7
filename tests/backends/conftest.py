"""The backend tests leave nothing on the brokers: the channels their names were made for
are deleted once the session's tests have run (`tests.backends._base.delete_named_channels`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.backends._base import delete_named_channels


@pytest.fixture(scope="session", autouse=True)
def _delete_named_channels() -> Iterator[None]:
    yield
    asyncio.run(delete_named_channels())
