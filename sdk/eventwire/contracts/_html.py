"""Offline HTML documentation of a contract with the vendored AsyncAPI React component."""

from __future__ import annotations

import html
import json
import os
import shutil
from importlib import resources
from pathlib import Path

from eventwire.contracts._load import load_document
from eventwire.errors import ContractError

__all__ = ["ASSETS", "render_html"]

#: vendored from @asyncapi/react-component 3.1.5 (Apache-2.0)
ASSETS = ("asyncapi-react.js", "asyncapi-react.min.css", "LICENSE", "asyncapi-react.js.LICENSE.txt")

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="asyncapi-react.min.css">
</head>
<body>
<div id="asyncapi"></div>
<script src="asyncapi-react.js"></script>
<script>
AsyncApiStandalone.render({{
  schema: {document},
  config: {{ show: {{ sidebar: true, errors: true }} }}
}}, document.getElementById("asyncapi"));
</script>
</body>
</html>
"""


def render_html(contract: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``index.html`` and the viewer's assets to `out_dir`; returns the page's path.

    The page embeds the contract's text as it is (not re-serialized) and loads nothing from
    the network, so it works from ``file://`` and on an offline machine.
    """
    document = load_document(contract)  # refuses a broken contract with a clear error
    raw = Path(contract).read_text(encoding="utf-8")
    target = Path(out_dir)
    try:
        target.mkdir(parents=True, exist_ok=True)
        assets = resources.files("eventwire.contracts").joinpath("html")
        for name in ASSETS:
            with resources.as_file(assets.joinpath(name)) as source:
                shutil.copyfile(source, target / name)
    except OSError as exc:
        raise ContractError(f"{target}: cannot write the HTML documentation: {exc}") from None
    embedded = json.dumps(raw).replace("</", "<\\/")
    info = document.get("info") or {}
    title = html.escape(f"{info.get('title', 'AsyncAPI')} {info.get('version', '')}".strip())
    index = target / "index.html"
    index.write_text(_PAGE.format(title=title, document=embedded), encoding="utf-8")
    return index
