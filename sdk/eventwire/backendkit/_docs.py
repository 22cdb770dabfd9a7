"""The options table of a backend's docs page, rendered from its settings class.

A page marks where the table goes::

    <!-- options: eventwire_memory:MemorySettings -->
    (the rendered table)
    <!-- /options -->

`sync_options_tables` rewrites what stands between the markers (or reports the pages that
differ); a test runs it over ``docs/backends/*.md`` so the tables never drift from the code.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from pathlib import Path

from eventwire.backendkit._settings import BackendSettings

__all__ = ["render_options_table", "sync_options_tables"]

_BLOCK = re.compile(
    r"(?P<open><!-- options: (?P<target>[\w.]+:\w+) -->\n)(?P<body>.*?)"
    r"(?P<close><!-- /options -->)",
    re.S,
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_options_table(settings: type[BackendSettings]) -> str:
    """The Markdown table of `settings`' options: option, default, meaning."""
    lines = ["| option | default | meaning |", "|---|---|---|"]
    for info in settings.options():
        default = info.default if info.default.startswith(("—", "from ")) else f"`{info.default}`"
        meaning = info.doc + (" (secret: never shown)" if info.secret else "")
        lines.append(f"| `{info.name}` | {_cell(default)} | {_cell(meaning)} |")
    return "\n".join(lines) + "\n"


def _load(target: str) -> type[BackendSettings]:
    module_name, _, name = target.partition(":")
    found = getattr(importlib.import_module(module_name), name)
    if not (isinstance(found, type) and issubclass(found, BackendSettings)):
        raise TypeError(f"{target} is not a BackendSettings class")
    return found


def sync_options_tables(pages: Iterable[Path], *, write: bool = False) -> list[Path]:
    """The pages whose options tables differ from the code; with `write`, rewrite them."""
    stale: list[Path] = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        fresh = _BLOCK.sub(
            lambda m: m["open"] + render_options_table(_load(m["target"])) + m["close"], text
        )
        if fresh != text:
            stale.append(page)
            if write:
                page.write_text(fresh, encoding="utf-8")
    return stale


USAGE = "usage: python -m eventwire.backendkit.docs [--write] PAGE..."


def main(argv: list[str] | None = None) -> int:
    """``python -m eventwire.backendkit.docs [--write] PAGE...``: check (or rewrite) pages.

    Exit status: 0 when every table matches (or was rewritten), 1 when one differs, 2 for
    no page, an unknown option or a page that cannot be read (one line on stderr).
    """
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    write = "--write" in args
    pages = [Path(a) for a in args if a != "--write"]
    unknown = [a for a in args if a.startswith("-") and a != "--write"]
    if unknown or not pages:
        reason = f"unknown option {unknown[0]}" if unknown else "no page given"
        print(f"{USAGE} ({reason})", file=sys.stderr)
        return 2
    unreadable = [p for p in pages if not p.is_file()]
    if unreadable:
        print(f"{unreadable[0]}: no such page; {USAGE}", file=sys.stderr)
        return 2
    stale = sync_options_tables(pages, write=write)
    for page in stale:
        print(f"{page}: options table {'rewritten' if write else 'differs from the code'}")
    return 1 if stale and not write else 0
