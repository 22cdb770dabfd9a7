"""The declarative settings layer: URL + options parsed by annotation, secrets redacted."""

from __future__ import annotations

import dataclasses
import enum
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
from eventwire.backendkit import (
    BackendSettings,
    ByteSize,
    Location,
    Seconds,
    coerce,
    option,
    render_options_table,
    sync_options_tables,
)
from eventwire.errors import ConfigurationError, InvalidURLError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "backends"


class Mode(enum.Enum):
    FAST = "fast"
    SAFE = "safe"


@dataclasses.dataclass(frozen=True, kw_only=True)
class DemoSettings(BackendSettings):
    backend = "demo"
    schemes = ("demo", "demos")

    host: str = "localhost"
    port: int = 1234
    shards: int = option(8, "shards per channel", minimum=1)
    ratio: float = option(0.5, "a fraction", minimum=0, maximum=1)
    timeout: Seconds = option(5.0, "how long to wait")
    limit: ByteSize = option(8 * 1024 * 1024, "largest message")
    verbose: bool = option(False, "say more")
    mode: Mode = option(Mode.SAFE, "how to run")
    acks: Literal["all", "one"] = option("all", "acks to wait for")
    retention: Seconds | None = option(None, "keep messages this long")
    username: str | None = option(None, "user", default_doc="from the URL")
    password: str | None = option(None, "password", secret=True, default_doc="from the URL")

    @classmethod
    def from_location(cls, location: Location) -> dict[str, Any]:
        host, _, port = (location.hosts or ("localhost",))[0].partition(":")
        return {
            "host": host,
            "port": int(port or 1234),
            "username": location.username,
            "password": location.password,
        }


def test_defaults_location_query_and_options_in_that_order() -> None:
    s = DemoSettings.parse("demo://h:99?shards=3&verbose=yes", {"shards": 4})
    assert (s.host, s.port, s.shards, s.verbose) == ("h", 99, 4, True)
    assert (s.ratio, s.timeout, s.mode, s.acks, s.retention) == (0.5, 5.0, Mode.SAFE, "all", None)
    assert s.url == "demo://h:99"


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("timeout", "250ms", 0.25),
        ("timeout", "2m", 120.0),
        ("timeout", "1.5", 1.5),
        ("timeout", "1h", 3600.0),
        ("limit", "512KiB", 512 * 1024),
        ("limit", "2MB", 2_000_000),
        ("limit", "100", 100),
        ("verbose", "off", False),
        ("mode", "FAST", Mode.FAST),
        ("mode", "fast", Mode.FAST),
        ("acks", "one", "one"),
        ("retention", "none", None),
        ("retention", "", None),
        ("retention", "30s", 30.0),
        ("ratio", "1", 1.0),
    ],
)
def test_text_is_coerced_by_annotation(name: str, text: str, value: object) -> None:
    assert getattr(DemoSettings.parse(f"demo://?{name}={text}"), name) == value


def test_typed_keyword_options_are_taken_as_they_are() -> None:
    s = DemoSettings.parse("demo://", {"timeout": 2, "mode": Mode.FAST, "verbose": True})
    assert (s.timeout, s.mode, s.verbose) == (2.0, Mode.FAST, True)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"shards": "0"}, "option shards='0' is invalid; give a whole number >= 1"),
        ({"shards": True}, "shards=True is invalid; give a whole number"),
        ({"shards": "2.5"}, "a whole number >= 1"),
        ({"ratio": "2"}, "give a number from 0 to 1"),
        ({"ratio": "nan"}, "give a number from 0 to 1"),
        ({"timeout": "soon"}, "give a duration in seconds"),
        ({"limit": "8 apples"}, "give a size in bytes"),
        ({"verbose": "maybe"}, "give true or false"),
        ({"mode": "turbo"}, "give one of fast, safe"),
        ({"acks": "two"}, "give one of all, one"),
        ({"retention": "forever"}, "a duration in seconds (e.g. 5, 2.5, 250ms, 2m), or none"),
    ],
)
def test_a_bad_value_names_the_option_the_value_and_what_to_give(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=r"^demo backend option ") as caught:
        DemoSettings.parse("demo://", options)
    assert message in str(caught.value)


def test_an_unknown_option_lists_the_valid_ones_and_the_closest() -> None:
    with pytest.raises(ConfigurationError) as caught:
        DemoSettings.parse("demo://?shard=3", {"colour": "red"})
    text = str(caught.value)
    assert "unknown demo backend option(s) 'colour', 'shard' (did you mean 'shards'?)" in text
    assert "the demo backend knows: shards, ratio, timeout, limit, verbose, mode" in text
    assert "host" not in text.split("knows:")[1]  # location fields are not options


def test_secrets_never_show() -> None:
    s = DemoSettings.parse("demo://me:hunter2@h:1?shards=2")
    assert s.password == "hunter2" and s.username == "me"
    assert "hunter2" not in repr(s) and "hunter2" not in s.url
    assert s.secrets() == ("hunter2",)
    assert s.scrub("auth hunter2 failed") == "auth *** failed"
    with pytest.raises(ConfigurationError) as caught:
        DemoSettings.parse("demo://", {"password": 1234})
    assert "password=<hidden>" in str(caught.value) and "1234" not in str(caught.value)
    with pytest.raises(ConfigurationError) as misplaced:  # a secret given to a plain option
        DemoSettings.parse("demo://", {"password": "hunter2", "mode": "xhunter2x"})
    assert "mode='x***x'" in str(misplaced.value) and "hunter2" not in str(misplaced.value)


def test_a_class_annotated_option_takes_an_instance_as_a_keyword() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Tls(BackendSettings):
        backend = "tls"
        schemes = ("tls",)
        context: ssl.SSLContext | None = option(None, "a ready TLS context")

    context = ssl.create_default_context()
    assert Tls.parse("tls://", {"context": context}).context is context
    assert Tls.parse("tls://").context is None
    with pytest.raises(ConfigurationError, match=r"give an ssl.SSLContext \(a keyword option"):
        Tls.parse("tls://?context=/etc/ca.pem")
    assert Tls.options()[0].kind == "an ssl.SSLContext (a keyword option, not in the URL), or none"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("kafka://h", "is not a demo URL; write demo:// or demos://"),
        ("demo://h?shards=1&shards=2", "gives the option 'shards' twice"),
        ("demo://h?shards", "malformed query"),
        ("demo://h#frag", "#fragment"),
        ("demo://h:port", "not a valid demo URL"),
    ],
)
def test_a_bad_url_says_what_to_write(url: str, message: str) -> None:
    with pytest.raises(InvalidURLError, match=message):
        DemoSettings.parse(url)


def test_a_bad_url_never_shows_its_password() -> None:
    with pytest.raises(InvalidURLError) as caught:
        DemoSettings.parse("demo://me:hunter2@h?a&")
    assert "hunter2" not in str(caught.value)


def test_the_base_location_accepts_only_a_bare_scheme() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Bare(BackendSettings):
        backend = "bare"
        schemes = ("bare",)

    assert Bare.parse("bare://").url == "bare://"
    with pytest.raises(InvalidURLError, match="write bare://"):
        Bare.parse("bare://host/path")
    with pytest.raises(ConfigurationError, match="knows: no options"):
        Bare.parse("bare://?x=1")


def test_an_unsupported_annotation_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot be annotated"):
        coerce("1", list[int])
    with pytest.raises(TypeError, match="one type"):
        coerce("1", int | str)


def test_the_options_table_is_rendered_from_the_fields() -> None:
    table = render_options_table(DemoSettings)
    lines = table.splitlines()
    assert lines[:2] == ["| option | default | meaning |", "|---|---|---|"]
    assert "| `shards` | `8` | shards per channel |" in lines
    assert "| `timeout` | `5` | how long to wait |" in lines
    assert "| `limit` | `8 MiB` | largest message |" in lines
    assert "| `verbose` | `false` | say more |" in lines
    assert "| `mode` | `safe` | how to run |" in lines
    assert "| `retention` | — | keep messages this long |" in lines
    assert "| `password` | from the URL | password (secret: never shown) |" in lines
    assert len(lines) == 2 + len(DemoSettings.options())


def test_sync_rewrites_a_stale_table_and_reports_it(tmp_path: Path) -> None:
    page = tmp_path / "demo.md"
    target = f"{__name__}:DemoSettings"
    page.write_text(f"# Demo\n\n<!-- options: {target} -->\n| old |\n<!-- /options -->\nafter\n")
    assert sync_options_tables([page]) == [page]
    assert sync_options_tables([page], write=True) == [page]
    text = page.read_text()
    assert render_options_table(DemoSettings) in text and "| old |" not in text
    assert text.endswith("<!-- /options -->\nafter\n")
    assert sync_options_tables([page]) == []


def test_the_backend_docs_tables_match_the_code() -> None:
    pages = sorted(DOCS.glob("*.md"))
    marked = [p for p in pages if "<!-- options: " in p.read_text()]
    assert any(p.name == "memory.md" for p in marked)
    stale = sync_options_tables(marked)
    assert stale == [], (
        f"options tables differ from the code in {[p.name for p in stale]}; run "
        "python -m eventwire.backendkit.docs --write docs/backends/*.md"
    )


def test_the_docs_command_checks_and_rewrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from eventwire.backendkit._docs import main

    page = tmp_path / "demo.md"
    page.write_text(f"<!-- options: {__name__}:DemoSettings -->\n<!-- /options -->\n")
    assert main([str(page)]) == 1
    assert "options table differs from the code" in capsys.readouterr().out
    assert main(["--write", str(page)]) == 0
    assert main([str(page)]) == 0


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ([], "(no page given)"),
        (["--write"], "(no page given)"),
        (["--wrte", "docs/backends/memory.md"], "(unknown option --wrte)"),
        (["docs/backends/no-such-page.md"], "no-such-page.md: no such page; usage:"),
    ],
)
def test_the_docs_command_without_a_usable_page_prints_its_usage(
    args: list[str], reason: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eventwire.backendkit.docs", *args],
        capture_output=True,
        text=True,
        cwd=DOCS.parents[1],
        timeout=60,
    )
    assert done.returncode == 2, done
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "usage: python -m eventwire.backendkit.docs [--write] PAGE..." in lines[0]
    assert reason in lines[0]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ListSettings(BackendSettings):
    backend = "lists"
    schemes = ("lists",)

    servers: tuple[str, ...] = option((), "more servers")
    ports: tuple[int, ...] = option((1, 2), "ports", minimum=1)
    context: ssl.SSLContext | None = option(None, "a TLS context")


def test_lists_from_text_or_a_sequence_and_objects_from_keyword_options() -> None:
    s = ListSettings.parse("lists://?servers=a:1,b&ports=3,4")
    assert (s.servers, s.ports, s.context) == (("a:1", "b"), (3, 4), None)
    context = ssl.create_default_context()
    s = ListSettings.parse("lists://", {"servers": ["c"], "ports": (5,), "context": context})
    assert (s.servers, s.ports, s.context) == (("c",), (5,), context)
    assert [(o.name, o.default) for o in ListSettings.options()] == [
        ("servers", "—"),
        ("ports", "1,2"),
        ("context", "—"),
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ports": "3,0"}, "ports='3,0' is invalid; give comma-separated items, each a whole"),
        ({"ports": 3}, "ports=3 is invalid"),
        ({"context": "tls"}, "context='tls' is invalid; give an ssl.SSLContext (a keyword option"),
    ],
)
def test_a_bad_list_item_or_object_is_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ListSettings.parse("lists://", options)
    assert message in str(caught.value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PollSettings(BackendSettings):
    backend = "poll"
    schemes = ("poll",)

    lease_ttl: Seconds = option(2.0, "lease time")
    poll_interval: Seconds = option(0.5, "poll period", below="lease_ttl")
    retry: Seconds | None = option(None, "retry period", below="lease_ttl")


def test_an_option_below_another_is_checked_after_parsing() -> None:
    assert PollSettings.parse("poll://?poll_interval=1.5").poll_interval == 1.5
    assert PollSettings.parse("poll://", {"retry": None}).retry is None  # unset: not compared
    with pytest.raises(ConfigurationError) as caught:
        PollSettings.parse("poll://?lease_ttl=1", {"retry": 0.5, "poll_interval": "1s"})
    assert str(caught.value) == (
        "poll backend option poll_interval=1 must be shorter than lease_ttl=1"
    )
    with pytest.raises(ConfigurationError, match=r"retry=3 must be shorter than lease_ttl=2"):
        PollSettings.parse("poll://?retry=3")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RenamedSettings(BackendSettings):
    backend = "renamed"
    schemes = ("renamed",)

    lease_ttl: Seconds = option(2.0, "lease time", formerly=("member_lease",))
    fetch_count: int = option(10, "messages per read", formerly=("fetch_batch", "batch"))


def test_a_former_option_name_still_works_and_says_the_new_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="eventwire"):
        settings = RenamedSettings.parse("renamed://?member_lease=3s", {"batch": 4})
    assert (settings.lease_ttl, settings.fetch_count) == (3.0, 4)
    assert "renamed backend option member_lease is now called lease_ttl" in caplog.text
    assert "option batch is now called fetch_count" in caplog.text
    with pytest.raises(ConfigurationError) as caught:
        RenamedSettings.parse("renamed://?member_lease=3", {"lease_ttl": 1})
    assert str(caught.value) == (
        "renamed backend options member_lease and lease_ttl are one option (member_lease is "
        "its former name); give lease_ttl only"
    )
    with pytest.raises(ConfigurationError, match=r"knows: lease_ttl, fetch_count$"):
        RenamedSettings.parse("renamed://?lease=1")
    docs = {info.name: info.doc for info in RenamedSettings.options()}
    assert docs == {
        "lease_ttl": "lease time (formerly `member_lease`)",
        "fetch_count": "messages per read (formerly `fetch_batch`, `batch`)",
    }
