"""AsyncAPI 3.0 contracts: generate, validate, compare, lint and render them.

- `load_validator`: the payload validator behind ``EventBus(..., contract=path)``.
- `generate_asyncapi`: the AsyncAPI document of a bus (code first).
- `validate_document`: the official AsyncAPI 3.0 JSON Schema plus semantic checks.
- `diff_documents`: compatibility verdicts between contract versions (Confluent's modes).
- `check_bus`: drift between a bus and a contract (contract first).
- `lint_document`, `generate_code`, `render_html`: naming rules, classes from a contract,
  offline HTML documentation.
- `verify_live`, `run_mock`: check a broker's live traffic against a contract; publish a
  contract's messages as a mock producer.
- `can_i_deploy`, `export_pacts`, `verify_pacts`: between teams (consumer-driven contracts,
  Pact V4 message pacts).

The command line is ``eventwire asyncapi ...`` and ``eventwire contracts ...``.
"""

from eventwire.contracts._check import check_bus, check_documents
from eventwire.contracts._codegen import generate_code
from eventwire.contracts._deploy import can_i_deploy
from eventwire.contracts._diff import (
    MODES,
    DiffReport,
    Verdict,
    diff_documents,
    schema_compatibility,
    schema_inclusion,
)
from eventwire.contracts._document import read_document
from eventwire.contracts._generate import generate_asyncapi
from eventwire.contracts._html import render_html
from eventwire.contracts._lint import lint_document
from eventwire.contracts._load import ContractValidator, load_document, load_validator
from eventwire.contracts._mock import run_mock
from eventwire.contracts._pact import PactMessage, eventwire_message, export_pacts, verify_pacts
from eventwire.contracts._validate import Problem, validate_document
from eventwire.contracts._verify import VerifyReport, verify_live

__all__ = [
    "MODES",
    "ContractValidator",
    "DiffReport",
    "PactMessage",
    "Problem",
    "Verdict",
    "VerifyReport",
    "can_i_deploy",
    "check_bus",
    "check_documents",
    "diff_documents",
    "eventwire_message",
    "export_pacts",
    "generate_asyncapi",
    "generate_code",
    "lint_document",
    "load_document",
    "load_validator",
    "read_document",
    "render_html",
    "run_mock",
    "schema_compatibility",
    "schema_inclusion",
    "validate_document",
    "verify_live",
    "verify_pacts",
]
