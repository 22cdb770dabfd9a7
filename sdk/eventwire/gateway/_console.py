"""The dead-letter console: server-rendered HTML pages (one small script, no CDN)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

__all__ = ["channels_page", "error_page", "letter_page", "letters_page"]


def _layout(title: str, body: str, *, read_only: bool) -> str:
    token = (
        ""
        if read_only
        else '<label for="token">Bearer token (for replay and purge)</label>'
        '<input id="token" type="password" autocomplete="off" placeholder="token">'
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · eventwire</title>
<link rel="stylesheet" href="/console/static/console.css">
</head>
<body>
<header><a href="/console">eventwire dead letters</a>
<nav><a href="/asyncapi/">AsyncAPI</a><a href="/flow.svg">Flow</a>
<a href="/openapi.json">OpenAPI</a></nav>{token}</header>
<main>
<div id="status" role="status"></div>
{body}
</main>
<script src="/console/static/console.js"></script>
</body>
</html>
"""


def _button(url: str, label: str, confirm: str, *, kind: str | None = None) -> str:
    cls = f' class="{kind}"' if kind else ""
    return (
        f'<button type="button"{cls} data-post="{escape(url)}" '
        f'data-confirm="{escape(confirm)}">{escape(label)}</button>'
    )


def channels_page(counts: Sequence[Mapping[str, Any]], *, read_only: bool) -> str:
    """Every served channel with the number of its dead letters."""
    rows = []
    for row in counts:
        count = int(row["count"])
        more = "+" if row["truncated"] else ""
        badge = f'<span class="badge{" zero" if count == 0 else ""}">{count}{more}</span>'
        name = escape(row["channel"])
        rows.append(
            f'<tr><td><a href="/console/{quote(row["channel"])}">{name}</a></td>'
            f'<td><code>{name}.dlq</code></td><td class="num">{badge}</td></tr>'
        )
    body = (
        "<h1>Dead letters per channel</h1>"
        "<table><thead><tr><th>Channel</th><th>Dead-letter channel</th>"
        '<th class="num">Letters</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
    )
    return _layout("Dead letters", body, read_only=read_only)


def letters_page(
    channel: str,
    page: Mapping[str, Any],
    query: Mapping[str, str],
    *,
    read_only: bool,
) -> str:
    """The filterable table of one channel's dead letters."""
    fields = []
    for name, label in (
        ("reason", "Reason"),
        ("error_type", "Error type"),
        ("group", "Group"),
        ("since", "Since (RFC 3339)"),
        ("until", "Until (RFC 3339)"),
    ):
        value = escape(query.get(name, ""))
        fields.append(f'<label>{label}<input name="{name}" value="{value}" size="16"></label>')
    form = (
        f'<form class="filters" method="get">{"".join(fields)}'
        '<button type="submit">Filter</button>'
        f'<a href="/console/{quote(channel)}">clear</a></form>'
    )
    base = f"/dead-letters/{quote(channel)}"
    rows = []
    for item in page["items"]:
        link = f"/console/{quote(channel)}/{item['id']}"
        replay = (
            ""
            if read_only
            else _button(
                f"{base}/{item['id']}/replay",
                "Replay",
                f"Replay event {item['event_id']} to {channel}?",
            )
        )
        rows.append(
            "<tr>"
            f"<td>{escape(item['time'] or '')}</td>"
            f'<td><a href="{link}">{escape(item["type"] or "?")}</a></td>'
            f"<td><code>{escape(item['key'] or '')}</code></td>"
            f"<td><code>{escape(item['event_id'] or '')}</code></td>"
            f"<td>{escape(item['reason'])}</td>"
            f'<td class="error">{escape(item["error_type"])}: {escape(item["error"][:160])}</td>'
            f"<td>{escape(item['group'])}</td>"
            f'<td class="num">{item["attempts"]}</td>'
            f"<td>{replay}</td></tr>"
        )
    filters = {
        k: v
        for k, v in query.items()
        if k in {"reason", "error_type", "group", "since", "until"} and v
    }
    selection = "matching letters" if filters else "letters"
    actions = (
        ""
        if read_only
        else '<div class="actions">'
        + _button(
            f"{base}/replay" + (f"?{urlencode(filters)}" if filters else ""),
            f"Replay all {page['total']} {selection}",
            f"Replay all {page['total']} {selection} of {channel}?",
            kind="secondary",
        )
        + _button(
            f"{base}/purge",
            f"Purge {channel}.dlq",
            f"Delete every dead letter of {channel} ({channel}.dlq), not only the ones "
            "shown? This cannot be undone.",
            kind="danger",
        )
        + "</div>"
    )
    shown = len(page["items"])
    nav = []
    offset, limit = int(page["offset"]), int(page["limit"])
    if offset > 0:
        prev = urlencode({**filters, "offset": max(0, offset - limit), "limit": limit})
        nav.append(f'<a href="?{prev}">previous</a>')
    if offset + shown < int(page["total"]):
        nxt = urlencode({**filters, "offset": offset + limit, "limit": limit})
        nav.append(f'<a href="?{nxt}">next</a>')
    more = " (the scan stopped at its limit: there are more)" if page["truncated"] else ""
    body = (
        f"<h1>Dead letters of <code>{escape(channel)}</code></h1>{form}{actions}"
        f'<p class="muted">{page["total"]} letter(s){more}; showing {shown} from '
        f"{offset + 1 if shown else 0}. {' · '.join(nav)}</p>"
        "<table><thead><tr><th>Dead-lettered at</th><th>Type</th><th>Key</th><th>Event id</th>"
        '<th>Reason</th><th>Error</th><th>Group</th><th class="num">Attempts</th><th></th>'
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )
    return _layout(f"{channel} dead letters", body, read_only=read_only)


def letter_page(channel: str, letter: Mapping[str, Any], *, read_only: bool) -> str:
    """One letter: its metadata, error, payload and headers."""
    facts = [
        ("Type", letter["type"]),
        ("Event id", letter["event_id"]),
        ("Source", letter["source"]),
        ("Key", letter["key"]),
        ("Correlation id", letter["correlationid"]),
        ("Reason", letter["reason"]),
        ("Error type", letter["error_type"]),
        ("Attempts", letter["attempts"]),
        ("Group", letter["group"]),
        ("Dead-lettered at", letter["time"]),
    ]
    rows = "".join(
        f"<dt>{name}</dt><dd>{escape('' if value is None else str(value))}</dd>"
        for name, value in facts
    )
    if letter["payload_text"] is None:
        payload = f"(binary, base64) {letter['payload_base64']}"
    elif letter["payload"] is not None or letter["payload_text"].strip() == "null":
        payload = json.dumps(letter["payload"], indent=2, ensure_ascii=False)
    else:
        payload = letter["payload_text"]
    replay = (
        ""
        if read_only
        else '<div class="actions">'
        + _button(
            f"/dead-letters/{quote(channel)}/{letter['id']}/replay",
            "Replay this letter",
            f"Replay event {letter['event_id']} to {channel}?",
        )
        + "</div>"
    )
    body = (
        f'<p><a href="/console/{quote(channel)}">← {escape(channel)}</a></p>'
        f"<h1>{escape(letter['type'] or 'Dead letter')} "
        f"<code>{escape(letter['event_id'] or letter['id'])}</code></h1>{replay}"
        f'<dl>{rows}</dl><h2>Error</h2><pre class="error">{escape(letter["error"])}</pre>'
        f"<h2>Payload</h2><pre>{escape(payload)}</pre>"
        f"<h2>Headers</h2><pre>{escape(json.dumps(letter['headers'], indent=2))}</pre>"
    )
    return _layout(f"{channel} letter", body, read_only=read_only)


def error_page(status: int, detail: str) -> str:
    """What went wrong, as a page of the console."""
    body = (
        f'<h1>{status}</h1><p class="error">{escape(detail)}</p>'
        '<p><a href="/console">All channels</a></p>'
    )
    return _layout(f"Error {status}", body, read_only=True)
