"""``eventwire flow``: draw who publishes and who consumes which message."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from eventwire.flow._mermaid import to_mermaid
from eventwire.flow._model import (
    build_graph,
    load_bus,
    participant_from_asyncapi,
    participant_from_bus,
    read_document,
)
from eventwire.flow._svg import to_svg

__all__ = ["flow"]

_DOCUMENT_SUFFIXES = (".yaml", ".yml", ".json")


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "svg"]),
    default=None,
    help="Output format (default: from the -o suffix, else mermaid).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here instead of standard output.",
)
@click.option("--title", default="", help="A title drawn on the SVG picture.")
@click.option(
    "--unconsumed/--no-unconsumed",
    default=True,
    help="Draw messages nobody consumes, to a '(no consumer)' node.",
)
def flow(
    sources: tuple[str, ...], fmt: str | None, output: Path | None, title: str, unconsumed: bool
) -> None:
    """Draw the event flow between services, from buses or AsyncAPI documents.

    SOURCES are MODULE:BUS (an EventBus, a callable returning one, or an object with a
    .bus) and/or AsyncAPI 3.0 files (.yaml, .yml, .json), as many as you like. Each
    service becomes a box; each arrow goes from a publisher to a consumer and is labelled
    with the messages; commands are dashed.

        eventwire flow shop.orders:bus shop.billing:bus --format mermaid
        eventwire flow contracts/*.yaml -o flow.svg
    """
    if "." not in sys.path and "" not in sys.path:
        sys.path.insert(0, ".")  # let MODULE:BUS name modules of the current directory
    participants = []
    for source in sources:
        path = Path(source)
        if path.suffix in _DOCUMENT_SUFFIXES or (path.exists() and ":" not in source):
            participants.append(participant_from_asyncapi(read_document(path), source))
        else:
            participants.append(participant_from_bus(load_bus(source)))
    graph = build_graph(participants, unconsumed=unconsumed)
    if fmt is None:
        fmt = "svg" if output is not None and output.suffix == ".svg" else "mermaid"
    text = to_svg(graph, title) if fmt == "svg" else to_mermaid(graph)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(
            f"wrote {output} ({len(graph.nodes)} services, {len(graph.edges)} arrows)", err=True
        )
