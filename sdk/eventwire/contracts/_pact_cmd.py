"""``eventwire contracts pact ...``: Pact V4 message pacts from a consumer's contract."""

from __future__ import annotations

from pathlib import Path

import click

from eventwire.contracts._commands import clear_errors

__all__ = ["COMMAND", "pact"]


@click.group()
def pact() -> None:
    """Interoperate with Pact: export a consumer's expectations as message pacts, verify a
    provider's contract against them."""


@pact.command("export")
@click.argument("consumer", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--provider", required=True, help="The provider's name in the pact.")
@click.option("--consumer-name", help="The consumer's name (default: the contract's info.title).")
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the pact file to.",
)
@clear_errors
def export(consumer: Path, provider: str, consumer_name: str | None, out_dir: Path) -> None:
    """Write the messages CONSUMER receives as a Pact V4 message pact with PROVIDER.

    One asynchronous message interaction per (channel, message) of its receive operations;
    the body is what the consumer's schema requires, with matching rules from the schema.
    """
    from eventwire.contracts._load import load_document
    from eventwire.contracts._pact import export_pacts

    written = export_pacts(
        load_document(consumer),
        provider,
        out_dir,
        consumer_name=consumer_name,
        source=str(consumer),
    )
    click.echo(f"wrote {written}", err=True)


@pact.command("verify")
@click.argument("provider", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("pacts", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--provider-name", help="The provider's name in the pacts (default: info.title).")
@clear_errors
def verify(provider: Path, pacts: tuple[Path, ...], provider_name: str | None) -> None:
    """Verify the contract PROVIDER against consumers' message PACTS (files or directories).

    Each interaction is answered with the example of the message PROVIDER sends on that
    channel; pact-python's verifier checks it against the consumer's expectation. Exits 1
    when an interaction fails.
    """
    from eventwire.contracts._load import load_document
    from eventwire.contracts._pact import ContractProvider, verify_pacts

    document = load_document(provider)
    name = provider_name or str((document.get("info") or {}).get("title") or "provider")
    produce = ContractProvider(document, str(provider))
    result = verify_pacts(name, list(pacts), produce)
    for description in sorted(set(produce.missing)):
        click.echo(f"FAILED {description}: {provider} does not send this message")
    for interaction, path, mismatch in result.mismatches:
        if not any(interaction.endswith(f" - {d}") for d in produce.missing):
            click.echo(f"FAILED {interaction}: {path}: {mismatch}")
    if not result.ok:
        if not result.mismatches:
            click.echo(result.output)
        raise click.exceptions.Exit(1)
    click.echo(f"{provider}: every interaction verified")


#: The command, typed for ``contracts.cli`` (which imports this module at its end).
COMMAND: click.Command = pact
