"""``eventwire serve URL --contracts DOC...``: run the HTTP gateway with uvicorn."""

from __future__ import annotations

from pathlib import Path

import click

from eventwire.errors import EventwireError

__all__ = ["serve"]


class _Refused(click.ClickException):
    """Bad input: one line, exit status 2."""

    exit_code = 2


@click.command()
@click.argument("url")
@click.option(
    "--contracts",
    "contracts",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="AsyncAPI 3.0 contract (repeat for several): its send operations become endpoints.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the bearer token (default: $EVENTWIRE_GATEWAY_TOKEN).",
)
@click.option("--read-only", is_flag=True, help="Serve no ingress, replay or purge.")
@click.option(
    "--max-body",
    default=1024 * 1024,
    show_default=True,
    type=click.IntRange(1),
    help="Largest request body in bytes (413 past it).",
)
@click.option(
    "--scan-limit",
    default=1000,
    show_default=True,
    type=click.IntRange(1),
    help="Dead letters read per channel at most.",
)
@click.option(
    "--source",
    default="eventwire-gateway",
    show_default=True,
    help="CloudEvents source of events posted without one.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
def serve(
    url: str,
    contracts: tuple[Path, ...],
    host: str,
    port: int,
    token_file: Path | None,
    read_only: bool,
    max_body: int,
    scan_limit: int,
    source: str,
    log_level: str,
) -> None:
    """Serve the contracts' events over HTTP, and a dead-letter console, for the broker URL.

    The bearer token comes from --token-file or $EVENTWIRE_GATEWAY_TOKEN, never from the
    command line.
    """
    from eventwire.gateway import require_extra

    try:
        require_extra()
        import uvicorn

        from eventwire.gateway import GatewaySettings, create_app, load_token

        token = None if read_only else load_token(token_file)
        settings = GatewaySettings(
            token=token,
            read_only=read_only,
            max_body_bytes=max_body,
            scan_limit=scan_limit,
            source=source,
        )
        app = create_app(url, contracts, settings)
    except EventwireError as exc:
        raise _Refused(str(exc)) from None
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False)
