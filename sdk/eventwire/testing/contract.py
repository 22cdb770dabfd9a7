"""Property-based cases from an AsyncAPI 3.0 contract: Hypothesis strategies per message.

::

    from hypothesis import given
    from eventwire.testing.contract import valid_messages

    @given(valid_messages("contracts/order-service.v2.yaml", "OrderPlaced"))
    def test_my_handler_accepts(message): ...

- `valid_messages`: the message's examples from the document, then one case per coverage
  target (each enum member, each branch of ``anyOf``/``oneOf``, each optional property present,
  each boundary, each formatted field), then values generated from the payload schema. The
  simplest value of the strategy is the document's first example, and Hypothesis shrinks a
  failing case towards the examples and the simplest payloads.
- `invalid_messages`: valid messages broken in one place each — a required property missing,
  a value of a wrong type, a value outside its enum. Every one fails the schema.
- `example_messages`, `coverage_messages`, `invalid_cases`: the same cases as plain lists, in
  a fixed order (for loops, ``@example`` or reports).
- `assert_honours_contract(bus, document)` (async): the checks of ``eventwire contracts
  test`` in a test; `check_contract` returns the report instead of failing.

A document is a path (read and validated) or a mapping already loaded. A message is named by
its ``name`` (the event type for documents eventwire generated) or its key; ``channel`` (an
address or channel id) chooses among several channels. Headers are the CloudEvents envelope
headers of the document's naming (``ce_`` unless the headers schema says ``ce-`` or
``cloudEvents:``) plus any other header the schema declares; ``key`` is the value of the
message's key field (``x-eventwire-key``). A schema keyword or format the generator does not
handle raises `UnsupportedSchemaError` with its JSON path.

Needs the ``testing`` extra (``pip install 'eventwire[testing]'``): Hypothesis and
hypothesis-jsonschema.
"""

from __future__ import annotations

import json
from typing import Any

from eventwire.contracts._cases import (
    ContractMessage,
    Document,
    InvalidMessage,
    UnsupportedSchemaError,
    coverage_messages,
    example_messages,
    invalid_cases,
    invalid_messages,
    valid_messages,
)
from eventwire.contracts._runner import Options, run_contract_test

__all__ = [
    "ContractMessage",
    "InvalidMessage",
    "UnsupportedSchemaError",
    "assert_honours_contract",
    "check_contract",
    "coverage_messages",
    "example_messages",
    "invalid_cases",
    "invalid_messages",
    "valid_messages",
]


async def check_contract(
    bus: Any,
    document: Document,
    *,
    max_cases: int = 10,
    examples_only: bool = False,
    timeout: float = 2.0,
    url: str | None = None,
) -> Any:
    """Run ``eventwire contracts test``'s checks on `bus`; returns the report (no assertion).

    The bus must not be running; it runs under a `eventwire.testing.TestBus` and is put back
    afterwards, so a module-level bus can be checked and then used by other tests. `url` runs
    it on that broker instead of a fresh embedded one (the contract's channels must carry
    nothing else while it runs).
    """
    options = Options(examples_only=examples_only, max_cases=max_cases, timeout=timeout, url=url)
    return await run_contract_test(document, bus, options)


async def assert_honours_contract(
    bus: Any,
    document: Document,
    *,
    max_cases: int = 10,
    examples_only: bool = False,
    timeout: float = 2.0,
    url: str | None = None,
) -> None:
    """Fail (``AssertionError`` listing every violation) unless `bus` honours `document`."""
    report = await check_contract(
        bus,
        document,
        max_cases=max_cases,
        examples_only=examples_only,
        timeout=timeout,
        url=url,
    )
    if report.ok:
        return
    lines = [f"{len(report.findings)} contract violation(s) against {report.document}:"]
    for finding in report.findings:
        lines.append(f"- {finding.check} {finding.message}, case {finding.case}: {finding.problem}")
        lines.append(f"  payload: {json.dumps(finding.payload, default=str)}")
        lines += [f"  {line}" for line in finding.detail.splitlines()]
    raise AssertionError("\n".join(lines))
