"""Tests of each backend against its real broker (``_base`` holds what they share)."""
