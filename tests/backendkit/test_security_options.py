"""The shared TLS and credential options: every backend reads them the same way, and each bad
value is one `ConfigurationError` naming the option (and never the secret)."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
from eventwire.errors import ConfigurationError
from eventwire_kafka import KafkaSettings
from eventwire_nats import NatsSettings
from eventwire_rabbit import RabbitSettings
from eventwire_redis import RedisSettings

SECRET = "Sh0uld-never-show-4f1e"
URLS: dict[str, tuple[Any, str]] = {
    "redis": (RedisSettings, "redis://app@cache:6379/0"),
    "rabbit": (RabbitSettings, "amqp://app@rabbit:5672/shop"),
    "nats": (NatsSettings, "nats://nats:4222?username=app"),
    "kafka": (KafkaSettings, "kafka://app@kafka:9092"),
}
BACKENDS = sorted(URLS)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_password_comes_from_a_file_or_a_variable(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_class, url = URLS[backend]
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET + "\n")
    from_file = settings_class.parse(url, {"password_file": str(secret_file)})
    assert from_file.password == SECRET
    monkeypatch.setenv("EW_TEST_PASSWORD", SECRET)
    from_env = settings_class.parse(url, {"password_env": "EW_TEST_PASSWORD"})
    assert from_env.password == SECRET
    for settings in (from_file, from_env):
        assert SECRET not in repr(settings) + settings.url
        assert settings.scrub(f"oops {SECRET}") == "oops ***"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"password_file": "/no/such/file"}, "password_file='/no/such/file' cannot be read"),
        ({"password_env": "EW_TEST_UNSET_VARIABLE"}, "password_env='EW_TEST_UNSET_VARIABLE'"),
        ({"password": SECRET, "password_env": "HOME"}, "give it one way"),
        ({"key_file": "/k.pem"}, "key_file is given without cert_file"),
        ({"ca_file": "/no/such/ca.pem"}, "ca_file='/no/such/ca.pem' cannot be loaded"),
        ({"tls_verify": "perhaps"}, "tls_verify='perhaps'"),
    ],
)
def test_bad_security_options_name_the_option(
    backend: str, options: dict[str, str], needle: str
) -> None:
    settings_class, url = URLS[backend]
    with pytest.raises(ConfigurationError) as info:
        settings_class.parse(url, options)
    assert needle in str(info.value)
    assert SECRET not in str(info.value)
    assert str(info.value).startswith(backend)


def test_an_empty_password_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "password"
    empty.write_text("\n")
    with pytest.raises(ConfigurationError, match="is empty; write the password into it"):
        RedisSettings.parse("redis://app@cache/0", {"password_file": str(empty)})


@pytest.mark.parametrize("backend", BACKENDS)
def test_any_tls_option_means_tls(backend: str) -> None:
    settings_class, url = URLS[backend]
    ca = ssl.get_default_verify_paths().cafile or ssl.get_default_verify_paths().openssl_cafile
    plain = settings_class.parse(url, {"password": "x"})
    assert plain.tls is False
    secured = settings_class.parse(url, {"password": "x", "ca_file": ca})
    assert secured.tls is True
    assert isinstance(secured.tls_context(), ssl.SSLContext)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tls_verify_false_warns_loudly(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    settings_class, url = URLS[backend]
    with caplog.at_level(logging.WARNING, logger="eventwire.backendkit"):
        settings = settings_class.parse(url, {"password": "x", "tls_verify": False})
    context = settings.tls_context()
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"{backend} backend: TLS certificate verification is OFF" in warnings[0].getMessage()


def test_the_shared_options_have_the_same_names_everywhere() -> None:
    shared = {
        "tls",
        "ca_file",
        "cert_file",
        "key_file",
        "key_password",
        "tls_verify",
        "ssl_context",
        "username",
        "password",
        "password_env",
        "password_file",
    }
    for settings_class, _ in URLS.values():
        assert shared <= set(settings_class.option_specs()), settings_class.__name__
