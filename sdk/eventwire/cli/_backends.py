"""``eventwire backends``: the installed backends and their declared capabilities."""

from __future__ import annotations

from importlib.metadata import entry_points

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from eventwire._extras import EXTRAS, SCHEME_EXTRAS, missing_modules
from eventwire.backend import BackendInfo
from eventwire.plugins import available_backends

GUARANTEES = [f"G{i:02d}" for i in range(1, 24)]


@click.command()
def backends() -> None:
    """List installed backends, their URL schemes and the guarantees they declare."""
    table = Table(title="eventwire backends")
    table.add_column("backend", style="bold")
    table.add_column("schemes")
    table.add_column("client")
    table.add_column("binding")
    table.add_column("max message")
    table.add_column("declared unsupported")
    reasons: list[str] = []
    for info in available_backends():
        caps = info.capabilities
        unsupported = ", ".join(sorted(caps.unsupported))
        reasons += [f"{info.name} {g}: {why}" for g, why in sorted(caps.unsupported.items())]
        limit = f"{caps.max_message_bytes:,} B" if caps.max_message_bytes else "broker's"
        table.add_row(
            info.name,
            ", ".join(f"{s}://" for s in info.schemes),
            client_status(info),
            info.binding,
            limit,
            unsupported or f"none (all of {GUARANTEES[0]}-{GUARANTEES[-1]} claimed)",
        )
    console = Console()
    console.print(table)
    if reasons:
        console.print("why each declared guarantee is unsupported:", style="bold")
        for reason in reasons:
            console.print(f"  {escape(reason)}")


def client_status(info: BackendInfo) -> str:
    """Whether the broker client of `info` is installed, and the extra that installs it."""
    extras = [SCHEME_EXTRAS[s] for s in info.schemes if s in SCHEME_EXTRAS]
    extra = extras[0] if extras else info.name
    if extra not in EXTRAS:  # needs no client of its own
        provider = _provider(info.name)
        if provider is None:  # registered by hand, not through an entry point
            return "(plugin)"
        if provider[0] == "eventwire":
            return "built in"
        return escape(f"from {provider[0]} {provider[1]}")
    if not missing_modules(extra):
        return "installed"
    return escape(f"missing: pip install 'eventwire[{extra}]'")


def _provider(name: str) -> tuple[str, str] | None:
    """The distribution (name, version) whose ``eventwire`` entry point is the backend plugin
    `name`, if one is installed."""
    for ep in entry_points(group="eventwire"):
        if ep.name == name and ep.dist is not None:
            return ep.dist.name, ep.dist.version
    return None
