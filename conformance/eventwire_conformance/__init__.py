"""The eventwire conformance suite: guarantees G01-G23, checked against a real broker.

- `eventwire_conformance.pytest_plugin`: the pytest plugin (``--eventwire-url URL``);
- `eventwire_conformance.cli`: ``eventwire conformance run URL [URL ...]``;
- `eventwire_conformance.guarantees`: the guarantee ids and statements;
- `eventwire_conformance.report`: the guarantee x backend matrix (JSON, Markdown, terminal).

See docs/conformance.md.
"""
