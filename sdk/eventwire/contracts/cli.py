"""``eventwire asyncapi ...`` and ``eventwire contracts ...``."""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console

from eventwire.contracts._commands import CommandError, clear_errors, make_console

__all__ = ["asyncapi", "contracts"]

_STYLES = {"error": "red", "warning": "yellow", "info": "dim"}


class _Dumper(yaml.SafeDumper):
    """Plain YAML: no anchors or aliases, even for objects shared in the document."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_document(document: Any, fmt: str = "yaml") -> str:
    """The document as YAML (keys in document order) or JSON text."""
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def _print_problems(console: Console, label: str, problems: Sequence[Any]) -> None:
    for problem in problems:
        console.print(
            f"{label}: {problem.severity}: {problem.path}: {problem.message} [{problem.rule}]",
            style=_STYLES.get(problem.severity, ""),
            markup=False,
        )


# -- eventwire asyncapi ------------------------------------------------------------------------


@click.group()
def asyncapi() -> None:
    """Generate, validate and render AsyncAPI 3.0 documents."""


@asyncapi.command()
@click.argument("target")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="Output format.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (default: standard output).",
)
@click.option("--title", help="info.title (default: the bus's source).")
@click.option(
    "--version",
    "doc_version",
    default="1.0.0",
    show_default=True,
    help="info.version of the document.",
)
@clear_errors
def generate(
    target: str, fmt: str, output: Path | None, title: str | None, doc_version: str
) -> None:
    """Write the AsyncAPI document of the bus TARGET (MODULE:BUS or path/to/file.py:BUS)."""
    from eventwire.contracts._bus_target import load_bus
    from eventwire.contracts._generate import generate_asyncapi
    from eventwire.contracts._validate import validate_document

    bus = load_bus(target)
    if not bus.published:
        click.secho(
            f"warning: {target} declares nothing it publishes, so the document has no send "
            "operations; if the service publishes, list its messages with bus.declare(...)",
            fg="yellow",
            err=True,
        )
    document = generate_asyncapi(bus, title=title, version=doc_version)
    problems = [p for p in validate_document(document) if p.severity == "error"]
    if problems:
        _print_problems(Console(stderr=True, highlight=False, soft_wrap=True), target, problems)
        raise CommandError(
            f"the document generated for {target} is not valid AsyncAPI 3.0 (see above); "
            "a plugin's eventwire_asyncapi_document hook may have broken it"
        )
    text = dump_document(document, fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


@asyncapi.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@clear_errors
def validate(files: tuple[Path, ...]) -> None:
    """Check AsyncAPI 3.0 documents: the official schema, references, operation messages.

    Prints every problem with its JSON path; exits 1 when there is an error.
    """
    from eventwire.contracts._document import read_document
    from eventwire.contracts._validate import validate_document

    console = make_console()
    failed = False
    for file in files:
        problems = validate_document(read_document(file))
        _print_problems(console, str(file), problems)
        if any(p.severity == "error" for p in problems):
            failed = True
        else:
            console.print(f"{file}: valid AsyncAPI 3.0", style="green", markup=False)
    if failed:
        raise click.exceptions.Exit(1)


@asyncapi.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write.",
)
@clear_errors
def html(file: Path, out_dir: Path) -> None:
    """Render FILE as an HTML page that works offline (no CDN, no network)."""
    from eventwire.contracts._html import render_html

    index = render_html(file, out_dir)
    click.echo(f"wrote {index}", err=True)


# -- eventwire contracts -----------------------------------------------------------------------


@click.group()
def contracts() -> None:
    """Contract first: drift checks, compatibility, lint, code generation."""


@contracts.command()
@click.argument("target")
@click.argument("contract", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--partial",
    is_flag=True,
    help="The code may use a part of the contract: messages and channels only in "
    "the contract are not drift.",
)
@clear_errors
def check(target: str, contract: Path, partial: bool) -> None:
    """Report drift between the bus TARGET (MODULE:BUS) and CONTRACT; exit 1 on drift."""
    from eventwire.contracts._bus_target import load_bus
    from eventwire.contracts._check import check_bus
    from eventwire.contracts._load import load_document

    document = load_document(contract)
    problems = check_bus(load_bus(target), document, partial=partial)
    console = make_console()
    _print_problems(console, str(contract), problems)
    if any(p.severity == "error" for p in problems):
        raise click.exceptions.Exit(1)
    console.print(f"{target} matches {contract}", style="green", markup=False)


@contracts.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--mode",
    type=click.Choice(
        [
            "backward",
            "forward",
            "full",
            "backward-transitive",
            "forward-transitive",
            "full-transitive",
            "none",
        ]
    ),
    default="forward",
    show_default=True,
    help="Compatibility required of the last file against the earlier ones.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@clear_errors
def diff(files: tuple[Path, ...], mode: str, fmt: str) -> None:
    """Compatibility of the last of FILES (new) against the others (old, oldest first).

    Gives a verdict per message, channel and operation with the reason; exits 1 when a
    change breaks MODE.
    """
    from eventwire.contracts._diff import diff_documents
    from eventwire.contracts._load import load_document

    if len(files) < 2:
        raise CommandError("give at least two contracts: OLD [OLD...] NEW")
    documents = [load_document(f) for f in files]
    report = diff_documents(documents[:-1], documents[-1], mode, [str(f) for f in files[:-1]])
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "mode": report.mode,
                    "ok": report.ok,
                    "verdicts": [vars(v) for v in report.verdicts],
                },
                indent=2,
            )
        )
    else:
        console = make_console()
        for v in report.verdicts:
            if v.change == "unchanged":
                continue
            status = "BREAKS" if v.breaks else "ok"
            why = "; ".join(v.reasons)
            console.print(
                f"{status:6} {v.kind} {v.name}: {v.change} (vs {v.against})"
                + (f": {why}" if why else ""),
                style="red" if v.breaks else "",
                markup=False,
            )
        summary = (
            f"compatible under {mode}"
            if report.ok
            else f"{len(report.breaking)} change(s) break {mode}"
        )
        console.print(
            f"{files[-1]}: {summary}", style="green" if report.ok else "red bold", markup=False
        )
    if not report.ok:
        raise click.exceptions.Exit(1)


@contracts.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@clear_errors
def lint(files: tuple[Path, ...]) -> None:
    """Naming and completeness rules for contracts; exits 1 on an error finding."""
    from eventwire.contracts._lint import lint_document
    from eventwire.contracts._load import load_document

    console = make_console()
    failed = False
    for file in files:
        findings = lint_document(load_document(file))
        _print_problems(console, str(file), findings)
        failed = failed or any(f.severity == "error" for f in findings)
        if not findings:
            console.print(f"{file}: no findings", style="green", markup=False)
    if failed:
        raise click.exceptions.Exit(1)


@contracts.command()
@click.argument("contract", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Python module to write.",
)
@clear_errors
def codegen(contract: Path, output: Path) -> None:
    """Write Event and Command classes (and a bus) for the messages of CONTRACT."""
    from eventwire.contracts._codegen import generate_code
    from eventwire.contracts._load import load_document

    code = generate_code(load_document(contract), source=str(contract))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(code, encoding="utf-8")
    click.echo(f"wrote {output}", err=True)


# Commands in modules of their own; they use the helpers above, so they are imported last.
from eventwire.contracts._deploy_cmd import COMMAND as _can_i_deploy  # noqa: E402
from eventwire.contracts._mock_cmd import COMMAND as _mock  # noqa: E402
from eventwire.contracts._pact_cmd import COMMAND as _pact  # noqa: E402
from eventwire.contracts._verify_cmd import COMMAND as _verify  # noqa: E402

contracts.add_command(_can_i_deploy)
contracts.add_command(_mock)
contracts.add_command(_pact)
contracts.add_command(_verify)
contracts.add_command(importlib.import_module("eventwire.contracts._test_command").test)
