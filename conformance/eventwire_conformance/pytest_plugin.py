"""The pytest entry point of the conformance suite (``pytest11``: ``eventwire_conformance``).

Inert unless ``--eventwire-url URL`` is given: it only declares its command-line options.
With one or more URLs, it loads `eventwire_conformance._suite_plugin`, which adds the suite
to the collection and runs every test once per URL::

    pytest --eventwire-url memory:// --eventwire-url kafka://localhost:9092 -n 4

Without other path arguments only the suite runs; with paths, the suite runs alongside them.
Without a URL, the suite's own directory is left out of any collection.
"""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["SUITE_PLUGIN_NAME"]

SUITE_PLUGIN_NAME = "eventwire-conformance-suite"
_SUITE_DIR = Path(__file__).resolve().parent / "suite"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("eventwire", "eventwire conformance suite")
    group.addoption(
        "--eventwire-url",
        action="append",
        default=[],
        metavar="URL",
        help="run the eventwire conformance suite against this broker URL (repeatable)",
    )
    group.addoption(
        "--eventwire-urls-from",
        default=None,
        metavar="PATH",
        help="read broker URLs from PATH, one per line (keeps credentials off the command line)",
    )
    group.addoption(
        "--eventwire-only",
        action="append",
        default=[],
        metavar="IDS",
        help="only these guarantees, e.g. G05,G08 (repeatable)",
    )
    group.addoption(
        "--eventwire-restart-cmd",
        default=None,
        metavar="CMD",
        help="shell command that restarts the broker (enables G16 reconnect); {backend} is "
        "replaced by the backend's name",
    )
    group.addoption(
        "--eventwire-kill-cmd",
        default=None,
        metavar="CMD",
        help="shell command that kills the broker with SIGKILL and starts it again, returning "
        "once it answers (enables G22 broker crash under load); {backend} is replaced by the "
        "backend's name",
    )
    group.addoption(
        "--eventwire-node-kill-cmd",
        default=None,
        metavar="CMD",
        help="shell command that SIGKILLs the cluster node leading a channel and prints the "
        "node's name as its last line (enables G23 node failure, with "
        "--eventwire-node-start-cmd); {channel}, {url} and {backend} are replaced",
    )
    group.addoption(
        "--eventwire-node-start-cmd",
        default=None,
        metavar="CMD",
        help="shell command that starts the killed cluster node again, returning once it runs; "
        "{node} is replaced by the name the kill command printed, {backend} by the backend's",
    )
    group.addoption(
        "--eventwire-load",
        type=int,
        default=1,
        metavar="N",
        help="multiply the events of the chaos guarantees (G21, G22, G23) by N (default 1: a few "
        "hundred, seconds)",
    )
    group.addoption(
        "--eventwire-idempotency-store",
        default=None,
        metavar="URL",
        help="the shared idempotency store G11 checks across member processes (redis://, "
        "nats://, sqlite:///path, postgresql://...); default: the backend's own, if it has "
        "one (also read from EVENTWIRE_CONFORMANCE_IDEMPOTENCY_STORE)",
    )
    group.addoption(
        "--eventwire-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="time limit of one conformance test (default 120)",
    )
    group.addoption(
        "--eventwire-patience",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a test waits for an expected delivery before failing (default 30)",
    )


def _active(config: pytest.Config) -> bool:
    return bool(
        config.getoption("eventwire_url", default=None)
        or config.getoption("eventwire_urls_from", default=None)
    )


def pytest_configure(config: pytest.Config) -> None:
    if not _active(config):
        return
    if config.pluginmanager.has_plugin(SUITE_PLUGIN_NAME):
        return
    from eventwire_conformance import _suite_plugin

    config.pluginmanager.register(_suite_plugin, SUITE_PLUGIN_NAME)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path == _SUITE_DIR and not _active(config):
        return True  # the suite needs a broker URL; never collect it by accident
    return None
