"""Helpers shared by the project's tests."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

#: The full run (``make test``, CI) has every broker and tool installed.
FULL_RUN = os.environ.get("EVENTWIRE_BROKERS") == "1"


def missing(reason: str) -> NoReturn:
    """A tool a test needs is absent: skip on a developer's machine, fail in the full run."""
    if FULL_RUN:
        pytest.fail(f"{reason} (the full run, EVENTWIRE_BROKERS=1, must not skip)")
    pytest.skip(reason)
