"""Declarative backend settings: one dataclass per backend, parsed from URL and options.

A backend declares its options as fields of a frozen dataclass that subclasses
`BackendSettings`; each option field is made with `option`, which records its documentation,
default, bounds and whether it is a secret. `BackendSettings.parse` reads the URL's location
(through the class's `from_location` hook), then its query, then the keyword options (each
later source wins), coerces every value by the field's annotation (see `eventwire.backendkit.
coerce`), and raises one `ConfigurationError` naming the option, the value and what to give.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from eventwire.backendkit._coerce import coerce, describe, show_default
from eventwire.backendkit._net import HostPort, address
from eventwire.errors import ConfigurationError, InvalidURLError
from eventwire.urls import redact_url

__all__ = ["BackendSettings", "Location", "OptionInfo", "OptionSpec", "option"]

T = TypeVar("T")
_SPEC = "eventwire.option"

log = logging.getLogger("eventwire")


@dataclasses.dataclass(frozen=True, slots=True)
class OptionSpec:
    """What `option` records about a field (kept in the field's metadata)."""

    doc: str
    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None
    #: How the docs show the default when the value alone would mislead ("from the URL").
    default_doc: str | None = None
    #: Another option this one must stay below (a poll interval below a lease time).
    below: str | None = None
    #: Names the option had before (still accepted, with a warning).
    formerly: tuple[str, ...] = ()


def option(
    default: T,
    doc: str,
    *,
    secret: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    default_doc: str | None = None,
    below: str | None = None,
    formerly: tuple[str, ...] = (),
) -> T:
    """Declare a settings field as an option a user may set in the URL query or as a keyword.

    `doc` is the sentence shown in the docs' options table; a `secret` option never shows in
    ``repr``, in the redacted URL or in an error message; `minimum` / `maximum` bound numbers
    (inclusive); `below` names another option this one must be smaller than (checked after
    parsing: ``poll_interval=2 must be shorter than lease_ttl=1``); `formerly` lists names
    the option had before: still accepted (a warning says the new name), never together with
    it. The default must be immutable (a number, a string, ``None``, an enum member, a tuple).
    """
    spec = OptionSpec(doc, secret, minimum, maximum, default_doc, below, formerly)
    field = dataclasses.field(default=default, repr=not secret, metadata={_SPEC: spec})
    return field


@dataclasses.dataclass(frozen=True, slots=True)
class Location:
    """The parts of a backend URL before its query, as given (credentials unquoted)."""

    #: The URL exactly as the user gave it (it may hold credentials: never show it).
    raw: str
    scheme: str
    username: str | None
    password: str | None
    #: ``host[:port]`` items of the network location (several for ``a:1,b:2``), no credentials.
    hosts: tuple[str, ...]
    path: str

    @property
    def redacted(self) -> str:
        """The URL without credentials and query: what an error about it shows."""
        return redact_url(self.raw)

    def nodes(
        self, default_port: int, *, example: str, noun: str = "host", required: bool = True
    ) -> tuple[HostPort, ...]:
        """Every ``host[:port]`` of the network location as ``(host, port)``, in order.

        A host without a port gets `default_port` (``0`` leaves it to `with_port` once the
        options are known, for a default that follows TLS). An empty item (``a,,b``,
        ``a,``) and, when `required`, a location without any host raise `InvalidURLError`
        ("'kafka://' names no broker; write kafka://host:9092"): `example` is what to
        write, `noun` what one item is ("broker", "server address").
        """
        items = urlsplit(self.raw).netloc.rsplit("@", 1)[-1].split(",")
        if items == [""]:
            if required:
                raise InvalidURLError(f"{self.redacted!r} names no {noun}; write {example}")
            return ()
        if not all(item.strip() for item in items):
            raise InvalidURLError(f"{self.redacted!r} names an empty {noun}; write {example}")
        return tuple(address(item, default_port, repr(self.redacted)) for item in items)

    def credentials(self) -> dict[str, str]:
        """The URL's ``username`` and ``password``, those it gives, as settings values."""
        given = {"username": self.username, "password": self.password}
        return {name: value for name, value in given.items() if value is not None}


@dataclasses.dataclass(frozen=True, slots=True)
class OptionInfo:
    """One option as the docs and error messages present it."""

    name: str
    kind: str
    default: str
    doc: str
    secret: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class BackendSettings:
    """Base class of a backend's settings. Subclass it as a frozen, keyword-only dataclass.

    Fields made with `option` are options; other fields (the host, a path, a broker name...)
    are set only by `from_location`. ``url`` is the redacted URL: no credentials, no query.
    """

    #: The backend's name as error messages say it ("redis" → "redis backend option ...").
    backend: ClassVar[str] = "backend"
    #: The URL schemes the settings accept, lower-case; the first is the one examples use.
    schemes: ClassVar[tuple[str, ...]] = ()

    url: str = ""

    def __post_init__(self) -> None:
        """Checks and derived values after parsing. An override calls the base's first (the
        shared option groups of `eventwire.backendkit` resolve their values here; the base
        checks the `option` ``below`` bounds)."""
        for name, spec in _specs(type(self)).items():
            if spec.below is None:
                continue
            value, bound = getattr(self, name), getattr(self, spec.below)
            if value is not None and bound is not None and value >= bound:
                raise ConfigurationError(
                    f"{self.backend} backend option {name}={value:g} must be shorter than "
                    f"{spec.below}={bound:g}"
                )

    @classmethod
    def from_location(cls, location: Location) -> dict[str, Any]:
        """Field values taken from the URL's location (host, port, path, credentials).

        Override it; the base reads nothing. Values for option fields are defaults that the
        query and keyword options override. Raise `InvalidURLError` for a location that
        cannot work, saying what to write instead. Set ``"url"`` to choose the redacted form
        (default: `eventwire.urls.redact_url` of the URL).
        """
        if location.path not in ("", "/") or location.hosts:
            example = f"{cls.schemes[0]}://" if cls.schemes else "scheme://"
            raise InvalidURLError(
                f"{redact_url(location.raw)!r} has a host or path the {cls.backend} backend "
                f"does not use; write {example}"
            )
        return {}

    @classmethod
    def parse(cls, url: str, options: Mapping[str, object] | None = None) -> Self:
        """The settings of `url` and keyword `options` (which win over the URL's query)."""
        location, query = _split(url, cls.schemes, cls.backend)
        values = cls.from_location(location)
        values.setdefault("url", redact_url(url))
        known = cls.option_specs()
        supplied = _renamed(cls.backend, {**query, **(options or {})}, known)
        unknown = sorted(set(supplied) - set(known))
        if unknown:
            raise ConfigurationError(_unknown_message(cls.backend, unknown, list(known)))
        hints = _hints(cls)
        for name, value in values.items():
            if name in known and name not in supplied:
                supplied[name] = value
        # A secret given where a plain value belongs is never echoed either.
        secrets = [str(v) for n, v in supplied.items() if known[n].secret and v]
        for name, raw in supplied.items():
            values[name] = _convert(cls.backend, name, raw, hints[name], known[name], secrets)
        try:
            return cls(**values)
        except TypeError as exc:  # a from_location that returned a name that is no field
            raise TypeError(f"{cls.__name__}.from_location: {exc}") from exc

    @classmethod
    def option_specs(cls) -> dict[str, OptionSpec]:
        """Every option of the class by name, in declaration order."""
        return _specs(cls)

    @classmethod
    def options(cls) -> list[OptionInfo]:
        """Every option as documented: name, kind, default, meaning, secret flag."""
        hints = _hints(cls)
        infos: list[OptionInfo] = []
        for field in dataclasses.fields(cls):
            spec = field.metadata.get(_SPEC)
            if spec is None:
                continue
            default = (
                spec.default_doc
                if spec.default_doc is not None
                else show_default(field.default, hints[field.name])
            )
            doc = spec.doc
            if spec.formerly:
                doc += " (formerly " + ", ".join(f"`{name}`" for name in spec.formerly) + ")"
            infos.append(
                OptionInfo(field.name, describe(hints[field.name]), default, doc, spec.secret)
            )
        return infos

    def secrets(self) -> tuple[str, ...]:
        """The values of the secret options that are set: texts no message may contain."""
        return tuple(
            str(value)
            for name, spec in self.option_specs().items()
            if spec.secret and (value := getattr(self, name))
        )

    def scrub(self, text: str) -> str:
        """`text` with every secret value replaced by ``***``."""
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text


def _specs(cls: type[BackendSettings]) -> dict[str, OptionSpec]:
    return {
        field.name: field.metadata[_SPEC]
        for field in dataclasses.fields(cls)
        if _SPEC in field.metadata
    }


def _renamed(
    backend: str, supplied: dict[str, object], known: Mapping[str, OptionSpec]
) -> dict[str, object]:
    """`supplied` with every option given by a former name (`OptionSpec.formerly`) under its
    name now; `ConfigurationError` when both names are given."""
    for name, spec in known.items():
        for old in spec.formerly:
            if old not in supplied:
                continue
            if name in supplied:
                raise ConfigurationError(
                    f"{backend} backend options {old} and {name} are one option ({old} is its "
                    f"former name); give {name} only"
                )
            supplied[name] = supplied.pop(old)
            log.warning(
                "eventwire: the %s backend option %s is now called %s; give %s instead",
                backend,
                old,
                name,
                name,
            )
    return supplied


def _hints(cls: type[BackendSettings]) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _split(url: str, schemes: tuple[str, ...], backend: str) -> tuple[Location, dict[str, str]]:
    safe = redact_url(url)
    example = f"{schemes[0]}://..." if schemes else "scheme://..."
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidURLError(
            f"{safe!r} is not a valid {backend} URL ({exc}); write {example}"
        ) from None
    scheme = parts.scheme.lower()
    if schemes and scheme not in schemes:
        listed = " or ".join(f"{s}://" for s in schemes)
        raise InvalidURLError(f"{safe!r} is not a {backend} URL; write {listed}...")
    if parts.fragment:
        raise InvalidURLError(
            f"{safe!r} has a #fragment the {backend} backend does not use; remove it"
        )
    query: dict[str, str] = {}
    if parts.query:
        try:
            pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise InvalidURLError(
                f"{safe!r} has a malformed query; write {example}?option=value&option=value"
            ) from None
        for name, value in pairs:
            if name in query:
                raise InvalidURLError(f"{safe!r} gives the option {name!r} twice; give it once")
            query[name] = value
    netloc = parts.netloc.rsplit("@", 1)[-1]
    hosts = tuple(h for h in netloc.split(",") if h)
    for host in hosts:
        try:
            _ = urlsplit(f"//{host}").port
        except ValueError as exc:
            raise InvalidURLError(
                f"{safe!r} is not a valid {backend} URL ({exc}); write {example}"
            ) from None
    location = Location(
        raw=url,
        scheme=scheme,
        username=unquote(username) if username else None,
        password=unquote(password) if password else None,
        hosts=hosts,
        path=unquote(parts.path),
    )
    return location, query


def _unknown_message(backend: str, unknown: list[str], known: list[str]) -> str:
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            hints.append(f"{name!r} (did you mean {close[0]!r}?)")
        else:
            hints.append(repr(name))
    return (
        f"unknown {backend} backend option(s) {', '.join(hints)}; the {backend} backend "
        f"knows: {', '.join(known) or 'no options'}"
    )


def _convert(
    backend: str, name: str, raw: object, hint: Any, spec: OptionSpec, secrets: list[str]
) -> object:
    try:
        return coerce(raw, hint, minimum=spec.minimum, maximum=spec.maximum)
    except ValueError as exc:
        shown = "<hidden>" if spec.secret else repr(raw)
        for secret in secrets:
            shown = shown.replace(secret, "***")
        raise ConfigurationError(
            f"{backend} backend option {name}={shown} is invalid; give {exc}"
        ) from None
