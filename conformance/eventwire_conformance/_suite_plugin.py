"""The conformance suite as pytest runs it (loaded only when ``--eventwire-url`` is given).

- adds the suite's modules to the collection (alone when no paths were given);
- runs each suite test once per URL, with the backend id in the test id
  (``test_G05_key_order[memory]``);
- tags each test with its guarantee (marker ``eventwire_guarantee`` and the report's
  ``user_properties``) and deselects the ones ``--eventwire-only`` leaves out;
- runs the ``async def`` tests on a fresh event loop each, within ``--eventwire-timeout``;
- checks once per process that each broker answers, and turns a guarantee the backend
  declares unsupported into an *unsupported* skip that carries the backend's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from eventwire_conformance._crash_consumer import STORE_VARIABLE
from eventwire_conformance._support import Harness, Target, unsupported
from eventwire_conformance._targets import backend_ids
from eventwire_conformance.guarantees import guarantee_of, parse_ids

SUITE_DIR = Path(__file__).resolve().parent / "suite"
#: How long a broker may take to accept the first connection of a run.
CONNECT_TIMEOUT = 15.0


@dataclasses.dataclass
class SuiteState:
    """The suite's options and what this process learned about each backend."""

    targets: dict[str, str]
    only: list[str]
    restart_cmd: str | None
    kill_cmd: str | None
    node_kill_cmd: str | None
    node_start_cmd: str | None
    load: int
    timeout: float
    patience: float
    #: The idempotency store URL every bus of the run uses (``None``: the backend's default).
    idempotency_store: str | None = None
    resolved: dict[str, Target | str] = dataclasses.field(default_factory=dict)


STATE = pytest.StashKey[SuiteState]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "eventwire_guarantee(id): the eventwire guarantee a conformance test checks"
    )
    try:
        only = parse_ids(config.getoption("eventwire_only"))
    except ValueError as exc:
        raise pytest.UsageError(f"--eventwire-only: {exc}") from None
    timeout = float(config.getoption("eventwire_timeout"))
    patience = float(config.getoption("eventwire_patience"))
    if timeout <= 0 or patience <= 0:
        raise pytest.UsageError("--eventwire-timeout and --eventwire-patience must be > 0")
    if config.getoption("eventwire_load") < 1:
        raise pytest.UsageError("--eventwire-load must be >= 1")
    config.stash[STATE] = SuiteState(
        targets=backend_ids(_urls(config)),
        only=only,
        restart_cmd=config.getoption("eventwire_restart_cmd") or None,
        kill_cmd=config.getoption("eventwire_kill_cmd") or None,
        node_kill_cmd=config.getoption("eventwire_node_kill_cmd") or None,
        node_start_cmd=config.getoption("eventwire_node_start_cmd") or None,
        load=int(config.getoption("eventwire_load")),
        timeout=timeout,
        patience=patience,
        idempotency_store=config.getoption("eventwire_idempotency_store")
        or os.environ.get(STORE_VARIABLE)
        or None,
    )
    suite = str(SUITE_DIR)
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [suite]  # no paths given: run the suite only
    elif suite not in config.args:
        config.args.append(suite)


def _urls(config: pytest.Config) -> list[str]:
    urls = list(config.getoption("eventwire_url"))
    source = config.getoption("eventwire_urls_from")
    if source:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise pytest.UsageError(f"--eventwire-urls-from: cannot read {source}: {exc}") from None
        urls += [line.strip() for line in text.splitlines() if line.strip()]
    if not urls:
        raise pytest.UsageError("--eventwire-urls-from: no URL in the file")
    return urls


def time_factor(item: pytest.Item) -> float:
    """How many ``--eventwire-timeout`` a test may take (``TIME_FACTOR`` of its function)."""
    return float(getattr(getattr(item, "obj", None), "TIME_FACTOR", 1))


def _is_suite_item(item: pytest.Item) -> bool:
    return isinstance(item, pytest.Function) and item.path.parent == SUITE_DIR


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "eventwire_target" not in metafunc.fixturenames:
        return
    ids = list(metafunc.config.stash[STATE].targets)
    metafunc.parametrize("eventwire_target", ids, ids=ids)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE]
    has_timeout = any(line.startswith("timeout") for line in config.getini("markers"))
    selected: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        if not _is_suite_item(item):
            selected.append(item)
            continue
        assert isinstance(item, pytest.Function)
        gid = guarantee_of(item.originalname)
        if gid is None:
            raise pytest.UsageError(f"conformance test {item.nodeid} names no guarantee id")
        item.add_marker(pytest.mark.eventwire_guarantee(gid))
        item.user_properties.append(("eventwire_guarantee", gid))
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("eventwire_target") if callspec is not None else None
        item.user_properties.append(("eventwire_backend", str(backend)))
        if has_timeout and item.get_closest_marker("timeout") is None:
            # A backstop behind the suite's own asyncio limit (which fails more clearly).
            item.add_marker(pytest.mark.timeout(state.timeout * time_factor(item) + 30))
        if state.only and gid not in state.only:
            deselected.append(item)
        else:
            selected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not _is_suite_item(pyfuncitem) or not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    state = pyfuncitem.config.stash[STATE]
    wanted = inspect.signature(pyfuncitem.obj).parameters
    kwargs = {name: value for name, value in pyfuncitem.funcargs.items() if name in wanted}
    harness = kwargs.get("harness")
    asyncio.run(
        _run_test(
            pyfuncitem.obj,
            kwargs,
            harness if isinstance(harness, Harness) else None,
            state.timeout * time_factor(pyfuncitem),
            pyfuncitem.name,
        )
    )
    return True


async def _run_test(
    func: Callable[..., Coroutine[Any, Any, None]],
    kwargs: dict[str, Any],
    harness: Harness | None,
    timeout: float,
    name: str,
) -> None:
    try:
        async with asyncio.timeout(timeout) as limit:
            await func(**kwargs)
    except TimeoutError:
        if not limit.expired():
            raise
        raise AssertionError(
            f"{name} did not finish within {timeout:g}s (raise --eventwire-timeout for a "
            "slow broker)"
        ) from None
    finally:
        problems = await harness.aclose() if harness is not None else []
    if problems:
        raise AssertionError(
            "the checks passed, but shutting the test's buses down failed: " + "; ".join(problems)
        )


def _resolve(state: SuiteState, target_id: str) -> Target:
    """The target's capabilities, and whether its broker answers (once per process)."""
    known = state.resolved.get(target_id)
    if known is None:
        known = state.resolved[target_id] = asyncio.run(_probe(target_id, state.targets[target_id]))
    if isinstance(known, str):
        pytest.fail(known, pytrace=False)
    return known


async def _probe(target_id: str, url: str) -> Target | str:
    from eventwire import EventwireError, create_backend, redact_url

    try:
        backend = create_backend(url)
    except EventwireError as exc:
        return f"cannot use {redact_url(url)}: {exc}"
    try:
        await asyncio.wait_for(backend.connect(), CONNECT_TIMEOUT)
    except TimeoutError:
        return (
            f"broker {backend.url} did not accept a connection within {CONNECT_TIMEOUT:g}s; "
            "is it running and reachable?"
        )
    except Exception as exc:
        return f"cannot connect to {backend.url}: {type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(backend.close(), 10)
    return Target(target_id, url, backend.capabilities)


@pytest.fixture
def harness(request: pytest.FixtureRequest, eventwire_target: str) -> Harness:
    """The backend under test, unique names, buses and deadline-bound waiting."""
    state = request.config.stash[STATE]
    target = _resolve(state, eventwire_target)
    marker = request.node.get_closest_marker("eventwire_guarantee")
    gid = str(marker.args[0]) if marker is not None else ""
    reason = target.capabilities.unsupported.get(gid)
    if reason is not None:
        unsupported(f"declared by the {target.id} backend: {reason}")
    name = getattr(request.node, "originalname", request.node.name)
    return Harness(
        target,
        patience=state.patience,
        restart_cmd=state.restart_cmd,
        kill_cmd=state.kill_cmd,
        node_kill_cmd=state.node_kill_cmd,
        node_start_cmd=state.node_start_cmd,
        load=state.load,
        test_name=name,
        properties=request.node.user_properties,
        idempotency_store=state.idempotency_store,
    )
