import pytest
from eventwire import ConfigurationError, InvalidURLError, RetryPolicy, redact_url
from eventwire.urls import url_scheme


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=6, backoff=0.1, max_backoff=0.5, jitter=0)
    assert [policy.delay(n) for n in range(1, 6)] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    assert policy.should_retry(5) and not policy.should_retry(6)


def test_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(backoff=1.0, max_backoff=1.0, jitter=0.2)
    delays = {policy.delay(1) for _ in range(200)}
    assert all(0.8 <= d <= 1.2 for d in delays) and len(delays) > 1


def test_jitter_leaves_the_global_random_state_alone() -> None:
    """A test framework seeds and watches the `random` module's state (Hypothesis does):
    retries in the bus must neither move it nor repeat its seeded draws."""
    import random

    policy = RetryPolicy(backoff=1.0, max_backoff=1.0, jitter=0.2)
    state = random.getstate()
    try:
        policy.delay(1)
        assert random.getstate() == state
        random.seed(0)
        first = policy.delay(1)
        random.seed(0)
        assert policy.delay(1) != first
    finally:
        random.setstate(state)  # the rest of the session keeps its own random state


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be >= 1"),
        ({"max_attempts": 2.5}, "max_attempts must be an int"),
        ({"backoff": -1}, "backoff must be a finite number >= 0"),
        ({"backoff": float("nan")}, "backoff must be a finite"),
        ({"backoff": 5, "max_backoff": 1}, "max_backoff"),
        ({"jitter": 2}, "jitter"),
        ({"multiplier": 0.5}, "multiplier"),
    ],
)
def test_invalid_policy_is_a_clear_error(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("kafka://user:s3cret@h1:9092,h2:9092", "kafka://h1:9092,h2:9092"),
        ("amqp://guest:guest@127.0.0.1:5672/vh", "amqp://127.0.0.1:5672/vh"),
        ("redis://:pw@localhost:6379/0?ssl_cert_reqs=none", "redis://localhost:6379/0"),
        ("nats://tok@127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("memory://", "memory://"),
    ],
)
def test_redaction_removes_credentials(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize("url", ["localhost:9092", "://x", "kafka://host:notaport", "9x://a"])
def test_malformed_urls_are_rejected_without_leaking(url: str) -> None:
    with pytest.raises(InvalidURLError) as info:
        url_scheme(url)
    assert (
        "scheme://" in str(info.value)
        or "malformed" in str(info.value)
        or "invalid" in str(info.value)
    )


def test_malformed_url_error_hides_password() -> None:
    with pytest.raises(InvalidURLError) as info:
        url_scheme("kafka://bob:hunter2@host:port")
    assert "hunter2" not in str(info.value)
