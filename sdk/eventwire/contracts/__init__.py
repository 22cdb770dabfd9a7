"""AsyncAPI 3.0 contracts: generate, validate, compare, lint and render them.

- `load_validator`: the payload validator behind ``EventBus(..., contract=path)``.
- `generate_asyncapi`: the AsyncAPI document of a bus (code first).
- `validate_document`: the official AsyncAPI 3.0 JSON Schema plus semantic checks.
- `diff_documents`: compatibility verdicts between contract versions (Confluent's modes).
- `check_bus`: drift between a bus and a contract (contract first).
- `lint_document`, `generate_code`, `render_html`: naming rules, classes from a contract,
  offline HTML documentation.

The command line is ``eventwire asyncapi ...`` and ``eventwire contracts ...``.
"""

from eventwire.contracts._load import (
    ContractValidator,
    load_document,
    load_validator,
    read_document,
)
from eventwire.contracts._generate import generate_asyncapi
from eventwire.contracts._validate import Problem, validate_document

__all__ = [
    "ContractValidator",
    "Problem",
    "generate_asyncapi",
    "load_document",
    "load_validator",
    "read_document",
    "validate_document",
]
