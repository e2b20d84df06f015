"""Credentials, providers, the chain and the refreshing cache.

The container endpoint has its own file (test_credentials_container.py);
here the providers that need no server, the refreshing logic driven by an
injected clock, and the botocore fallback against real config files.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from agentcore_bridge import credentials as credentials_module
from agentcore_bridge.credentials import (
    BotocoreProvider,
    ChainProvider,
    ContainerProvider,
    Credentials,
    CredentialSource,
    EnvironmentProvider,
    RefreshingCredentials,
    StaticProvider,
    as_source,
    default_credentials,
    default_provider,
)
from agentcore_bridge.exceptions import (
    ConfigurationError,
    CredentialsFetchError,
    NoCredentialsError,
    ValidationError,
)


@pytest.fixture(autouse=True)
def isolated_aws_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep the developer's ~/.aws, AWS_* variables and IMDS out of every test."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


# The value type.

secret_text = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/",
    min_size=12,
    max_size=60,
)


@given(access_key_id=secret_text, secret=secret_text, token=secret_text)
def test_repr_and_str_never_show_the_secret_or_the_token(
    access_key_id: str, secret: str, token: str
) -> None:
    assume(secret not in access_key_id and token not in access_key_id)
    credentials = Credentials(access_key_id, secret, token, 1.5e9)
    for text in (repr(credentials), str(credentials), f"{credentials}"):
        assert access_key_id in text
        assert secret not in text
        assert token not in text
        assert "[hidden]" in text


def test_expires_within_compares_against_the_given_time() -> None:
    credentials = Credentials("AKID", "secret", expiration=1000.0)
    assert credentials.expires_within(60, now=950.0)
    assert not credentials.expires_within(60, now=900.0)
    assert not Credentials("AKID", "secret").expires_within(1e12, now=0.0)


# The environment provider.


def test_environment_provider_does_not_apply_without_keys() -> None:
    assert EnvironmentProvider({}).load() is None
    empty = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    assert EnvironmentProvider(empty).load() is None


def test_environment_provider_reads_keys_token_and_expiration() -> None:
    environ = {
        "AWS_ACCESS_KEY_ID": "AKIDENV",
        "AWS_SECRET_ACCESS_KEY": "env-secret",
        "AWS_SESSION_TOKEN": "env-token",
        "AWS_CREDENTIAL_EXPIRATION": "2030-01-02T03:04:05Z",
    }
    credentials = EnvironmentProvider(environ).load()
    expected = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp()
    assert credentials == Credentials("AKIDENV", "env-secret", "env-token", expected)


def test_environment_provider_accepts_the_older_security_token_name() -> None:
    environ = {
        "AWS_ACCESS_KEY_ID": "AKIDENV",
        "AWS_SECRET_ACCESS_KEY": "env-secret",
        "AWS_SECURITY_TOKEN": "old-token",
    }
    credentials = EnvironmentProvider(environ).load()
    assert credentials is not None
    assert credentials.session_token == "old-token"
    assert credentials.expiration is None


def test_environment_provider_prefers_session_token_over_security_token() -> None:
    environ = {
        "AWS_ACCESS_KEY_ID": "AKIDENV",
        "AWS_SECRET_ACCESS_KEY": "env-secret",
        "AWS_SESSION_TOKEN": "new-token",
        "AWS_SECURITY_TOKEN": "old-token",
    }
    credentials = EnvironmentProvider(environ).load()
    assert credentials is not None
    assert credentials.session_token == "new-token"


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
    ],
)
def test_environment_provider_rejects_half_a_key_pair(
    present: str, missing: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        EnvironmentProvider({present: "value-that-is-secret"}).load()
    assert caught.value.field == missing
    assert "value-that-is-secret" not in str(caught.value)


def test_environment_provider_rejects_an_unreadable_expiration() -> None:
    environ = {
        "AWS_ACCESS_KEY_ID": "AKIDENV",
        "AWS_SECRET_ACCESS_KEY": "env-secret",
        "AWS_CREDENTIAL_EXPIRATION": "tomorrow",
    }
    with pytest.raises(ValidationError) as caught:
        EnvironmentProvider(environ).load()
    assert caught.value.field == "AWS_CREDENTIAL_EXPIRATION"


def test_environment_provider_reads_os_environ_at_each_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = EnvironmentProvider()
    assert provider.load() is None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDLATER")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "later-secret")
    credentials = provider.load()
    assert credentials is not None
    assert credentials.access_key_id == "AKIDLATER"


@given(
    moment=st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9998, 12, 31),
        timezones=st.sampled_from(
            [
                timezone.utc,
                timezone(timedelta(hours=5, minutes=30)),
                timezone(timedelta(hours=-8)),
            ]
        ),
    ),
    spelling=st.sampled_from(["isoformat", "z", "compact-offset", "milliseconds"]),
)
def test_expiration_parses_every_iso_8601_spelling(
    moment: datetime, spelling: str
) -> None:
    """Offsets, a trailing Z, ``+hhmm`` and fractions all give the same instant."""
    if spelling == "z":
        moment = moment.astimezone(timezone.utc)
        text = moment.replace(tzinfo=None).isoformat() + "Z"
    elif spelling == "compact-offset":
        text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f%z")
    elif spelling == "milliseconds":
        text = moment.isoformat(timespec="milliseconds")
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    else:
        text = moment.isoformat()
    environ = {
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_CREDENTIAL_EXPIRATION": text,
    }
    credentials = EnvironmentProvider(environ).load()
    assert credentials is not None
    assert credentials.expiration == pytest.approx(moment.timestamp(), abs=1e-6)


def test_expiration_with_a_fraction_of_thousands_of_digits_is_read() -> None:
    """Not the ValueError int() raises for strings of over 4300 digits."""
    environ = {
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_CREDENTIAL_EXPIRATION": "2030-01-01T00:00:00." + "25" * 3000 + "Z",
    }
    credentials = EnvironmentProvider(environ).load()
    assert credentials is not None
    expected = datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp() + 0.2525
    assert credentials.expiration == pytest.approx(expected, abs=1e-3)


# The static provider, the chain and the default chain.


def test_static_provider_returns_what_it_was_given() -> None:
    credentials = Credentials("AKIDSTATIC", "static-secret")
    assert StaticProvider(credentials).load() is credentials


class CountingProvider:
    """A provider of numbered credentials that counts its loads."""

    missing_reason = "the test said so"

    def __init__(
        self,
        name: str = "counting",
        *,
        clock: FakeClock | None = None,
        lifetime: float | None = 3600.0,
        applies: bool = True,
    ) -> None:
        self.name = name
        self.clock = clock or FakeClock()
        self.lifetime = lifetime
        self.applies = applies
        self.fail = False
        self.expired = False
        self.loads = 0
        self.started = threading.Event()
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()

    def load(self) -> Credentials | None:
        with self._lock:
            self.loads += 1
            number = self.loads
        self.started.set()
        if self.gate is not None:
            self.gate.wait(10)
        if not self.applies:
            return None
        if self.fail:
            raise CredentialsFetchError(self.name, "endpoint down", retryable=True)
        now = self.clock()
        if self.expired:
            expiration: float | None = now - 1
        elif self.lifetime is None:
            expiration = None
        else:
            expiration = now + self.lifetime
        return Credentials(
            f"AKID{number}", f"secret{number}", f"token{number}", expiration
        )


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_chain_returns_the_first_provider_with_credentials() -> None:
    skipped = CountingProvider("skipped", applies=False)
    winner = CountingProvider("winner")
    never = CountingProvider("never")
    credentials = ChainProvider([skipped, winner, never]).load()
    assert credentials.access_key_id == "AKID1"
    assert (skipped.loads, winner.loads, never.loads) == (1, 1, 0)


def test_chain_without_credentials_lists_every_provider_and_why() -> None:
    class Bare:
        name = "bare"

        def load(self) -> Credentials | None:
            return None

    chain = ChainProvider(
        [
            EnvironmentProvider({}),
            ContainerProvider({}),
            CountingProvider(applies=False),
            Bare(),
        ]
    )
    with pytest.raises(NoCredentialsError) as caught:
        chain.load()
    assert caught.value.tried == (
        "environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set",
        "container: neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor "
        "AWS_CONTAINER_CREDENTIALS_FULL_URI is set",
        "counting: the test said so",
        "bare: found no credentials",
    )
    assert all(reason in str(caught.value) for reason in caught.value.tried)


def test_chain_stops_at_a_provider_that_fails() -> None:
    failing = CountingProvider("failing")
    failing.fail = True
    later = CountingProvider("later")
    with pytest.raises(CredentialsFetchError):
        ChainProvider([failing, later]).load()
    assert later.loads == 0


def test_default_chain_is_environment_container_botocore() -> None:
    chain = default_provider({})
    assert [provider.name for provider in chain.providers] == [
        "environment",
        "container",
        "botocore",
    ]


def test_default_chain_prefers_environment_over_container() -> None:
    environ = {
        "AWS_ACCESS_KEY_ID": "AKIDENV",
        "AWS_SECRET_ACCESS_KEY": "env-secret",
        # Never contacted: the environment provider answers first.
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/credentials",
    }
    assert default_provider(environ).load().access_key_id == "AKIDENV"


def test_static_credentials_come_third_in_the_default_chain() -> None:
    static = Credentials("AKIDSTATIC", "static-secret")
    chain = default_provider({}, static=static)
    assert [provider.name for provider in chain.providers] == [
        "environment",
        "container",
        "static",
        "botocore",
    ]
    assert chain.load() is static
    assert default_credentials({}, static=static).get() is static


def test_the_environment_wins_over_static_credentials() -> None:
    environ = {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret"}
    static = Credentials("AKIDSTATIC", "static-secret")
    assert default_provider(environ, static=static).load().access_key_id == "AKIDENV"


def test_static_credentials_must_be_credentials() -> None:
    with pytest.raises(ConfigurationError):
        default_provider({}, static=("AKID", "secret"))  # type: ignore[arg-type]


def test_default_chain_with_nothing_configured_names_all_three() -> None:
    with pytest.raises(NoCredentialsError) as caught:
        default_provider({}).load()
    names = [reason.split(":")[0] for reason in caught.value.tried]
    assert names == ["environment", "container", "botocore"]


# The refreshing cache, driven by an injected clock.


def refreshing(provider: CountingProvider) -> RefreshingCredentials:
    return RefreshingCredentials(provider, clock=provider.clock)


def test_first_get_fetches_and_later_gets_use_the_cache() -> None:
    provider = CountingProvider()
    source = refreshing(provider)
    first = source.get()
    assert source.get() is first
    assert source.get() is first
    assert provider.loads == 1


def test_no_refresh_before_the_refresh_margin() -> None:
    provider = CountingProvider(lifetime=3600)
    source = refreshing(provider)
    source.get()
    provider.clock.advance(3600 - 301)
    assert source.get().access_key_id == "AKID1"
    assert provider.loads == 1


def test_advisory_window_refreshes_once() -> None:
    provider = CountingProvider(lifetime=3600)
    source = refreshing(provider)
    source.get()
    provider.clock.advance(3600 - 200)
    assert source.get().access_key_id == "AKID2"
    assert source.get().access_key_id == "AKID2"
    assert provider.loads == 2


def test_failed_advisory_refresh_keeps_the_current_credentials() -> None:
    provider = CountingProvider(lifetime=3600)
    source = refreshing(provider)
    source.get()
    provider.clock.advance(3600 - 200)
    provider.fail = True
    assert source.get().access_key_id == "AKID1"
    assert provider.loads == 2


def test_failed_advisory_refresh_is_retried_after_the_retry_interval() -> None:
    provider = CountingProvider(lifetime=3600)
    source = refreshing(provider)
    source.get()
    provider.clock.advance(3600 - 200)
    provider.fail = True
    source.get()
    source.get()
    assert provider.loads == 2
    provider.clock.advance(source.advisory_retry_interval)
    provider.fail = False
    assert source.get().access_key_id == "AKID3"


def test_failed_refresh_in_the_mandatory_window_raises() -> None:
    provider = CountingProvider(lifetime=3600)
    source = refreshing(provider)
    source.get()
    provider.clock.advance(3600 - 30)
    provider.fail = True
    with pytest.raises(CredentialsFetchError):
        source.get()


def test_mandatory_window_refreshes_even_right_after_an_advisory_failure() -> None:
    provider = CountingProvider(lifetime=3600)
    source = refreshing(provider)
    source.get()
    provider.clock.advance(3600 - 200)
    provider.fail = True
    source.get()
    provider.fail = False
    provider.clock.advance(200 - 30)
    assert source.get().access_key_id == "AKID3"


def test_expired_credentials_are_refreshed_before_use() -> None:
    provider = CountingProvider(lifetime=3600)
    source = refreshing(provider)
    source.get()
    provider.clock.advance(7200)
    assert source.get().access_key_id == "AKID2"


def test_credentials_without_expiration_are_kept_until_invalidated() -> None:
    provider = CountingProvider(lifetime=None)
    source = refreshing(provider)
    source.get()
    provider.clock.advance(10 * 365 * 86400)
    assert source.get().access_key_id == "AKID1"
    source.invalidate()
    assert source.get().access_key_id == "AKID2"
    assert provider.loads == 2


def test_invalidate_makes_the_next_get_fetch() -> None:
    provider = CountingProvider()
    source = refreshing(provider)
    source.get()
    source.invalidate()
    assert source.get().access_key_id == "AKID2"


def test_a_fetch_started_before_invalidate_does_not_refill_the_cache() -> None:
    provider = CountingProvider()
    provider.gate = threading.Event()
    source = refreshing(provider)
    results: list[Credentials] = []
    worker = threading.Thread(target=lambda: results.append(source.get()))
    worker.start()
    assert provider.started.wait(10)
    source.invalidate()
    provider.gate.set()
    worker.join()
    assert results[0].access_key_id == "AKID1"
    assert source.get().access_key_id == "AKID2"


def test_provider_without_credentials_raises_no_credentials() -> None:
    source = refreshing(CountingProvider(applies=False))
    with pytest.raises(NoCredentialsError) as caught:
        source.get()
    assert caught.value.tried == ("counting: the test said so",)


def test_provider_returning_expired_credentials_is_an_error() -> None:
    provider = CountingProvider()
    provider.expired = True
    with pytest.raises(CredentialsFetchError) as caught:
        refreshing(provider).get()
    assert "already expired" in str(caught.value)


def test_short_lived_credentials_do_not_start_a_fetch_at_every_call() -> None:
    """Credentials shorter-lived than refresh_margin refresh once per interval."""
    provider = CountingProvider(lifetime=200)
    source = refreshing(provider)
    source.get()
    source.get()
    source.get()
    assert provider.loads == 1
    provider.clock.advance(source.advisory_retry_interval)
    assert source.get().access_key_id == "AKID2"


def test_mandatory_margin_must_not_exceed_refresh_margin() -> None:
    with pytest.raises(ValidationError):
        RefreshingCredentials(
            CountingProvider(), refresh_margin=60, mandatory_margin=300
        )


def test_advisory_caller_does_not_wait_for_a_refresh_in_progress() -> None:
    provider = CountingProvider(lifetime=3600)
    source = refreshing(provider)
    source.get()
    provider.clock.advance(3600 - 200)
    provider.started.clear()
    provider.gate = threading.Event()
    refresher = threading.Thread(target=source.get)
    refresher.start()
    try:
        assert provider.started.wait(10)
        assert source.get().access_key_id == "AKID1"
        assert provider.loads == 2
    finally:
        provider.gate.set()
        refresher.join()
    assert source.get().access_key_id == "AKID2"


def test_a_crowd_in_the_advisory_window_starts_one_refresh_and_waits_for_none() -> None:
    """Twenty threads and twenty tasks while the refresh is held up."""
    provider = CountingProvider(lifetime=3600)
    source = refreshing(provider)
    source.get()
    provider.clock.advance(3600 - 200)
    provider.started.clear()
    provider.gate = threading.Event()
    barrier = threading.Barrier(20)
    during: list[Credentials] = []

    def worker() -> None:
        barrier.wait()
        during.append(source.get())

    async def main() -> None:
        assert provider.gate is not None
        try:
            # Every task returns while the refresh is still held at the gate...
            during.extend(
                await asyncio.gather(*(source.get_async() for _ in range(20)))
            )
            # ... and so does every thread but the one fetching.
            for _ in range(1000):
                if len(during) >= 39:
                    break
                await asyncio.sleep(0.01)
        finally:
            # The loop's own refresh task waits for the fetch lock; the loop
            # cannot end before it does.
            provider.gate.set()

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    try:
        assert provider.started.wait(10)
        asyncio.run(main())
    finally:
        provider.gate.set()
        for thread in threads:
            thread.join()

    assert len(during) == 40
    assert [c.access_key_id for c in during[:39]] == ["AKID1"] * 39
    assert provider.loads == 2
    assert source.get().access_key_id == "AKID2"


def test_twenty_threads_share_one_fetch() -> None:
    provider = CountingProvider()
    provider.gate = threading.Event()
    source = refreshing(provider)
    barrier = threading.Barrier(21)
    results: list[Credentials] = []

    def worker() -> None:
        barrier.wait()
        results.append(source.get())

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    barrier.wait()
    assert provider.started.wait(10)
    time.sleep(0.05)  # lets the other threads reach the lock
    provider.gate.set()
    for thread in threads:
        thread.join()
    assert provider.loads == 1
    assert {credentials.access_key_id for credentials in results} == {"AKID1"}


# The refreshing cache under asyncio.


def test_twenty_tasks_share_one_fetch() -> None:
    provider = CountingProvider()
    source = refreshing(provider)

    async def main() -> list[Credentials]:
        return await asyncio.gather(*(source.get_async() for _ in range(20)))

    results = asyncio.run(main())
    assert provider.loads == 1
    assert {credentials.access_key_id for credentials in results} == {"AKID1"}


def test_get_async_keeps_the_event_loop_running_during_a_fetch() -> None:
    provider = CountingProvider()
    provider.gate = threading.Event()
    source = refreshing(provider)

    async def main() -> tuple[int, Credentials]:
        fetch = asyncio.create_task(source.get_async())
        ticks = 0
        # Ticks only advance if the fetch is not blocking the loop.
        while not provider.started.is_set() or ticks < 3:
            await asyncio.sleep(0.001)
            ticks += 1
        assert provider.gate is not None
        provider.gate.set()
        return ticks, await fetch

    ticks, credentials = asyncio.run(main())
    assert ticks >= 3
    assert credentials.access_key_id == "AKID1"


def test_get_async_in_the_advisory_window_returns_at_once_and_refreshes() -> None:
    provider = CountingProvider(lifetime=3600)
    source = refreshing(provider)

    async def main() -> tuple[Credentials, Credentials]:
        await source.get_async()
        provider.clock.advance(3600 - 200)
        provider.started.clear()
        provider.gate = threading.Event()
        during = await source.get_async()
        while not provider.started.is_set():
            await asyncio.sleep(0.001)
        provider.gate.set()
        for _ in range(1000):
            if source.get().access_key_id != "AKID1":
                break
            await asyncio.sleep(0.01)
        return during, await source.get_async()

    during, after = asyncio.run(main())
    assert during.access_key_id == "AKID1"
    assert after.access_key_id == "AKID2"
    assert provider.loads == 2


def test_cancelling_one_waiter_does_not_cancel_the_fetch_for_others() -> None:
    provider = CountingProvider()
    provider.gate = threading.Event()
    source = refreshing(provider)

    async def main() -> Credentials:
        first = asyncio.create_task(source.get_async())
        second = asyncio.create_task(source.get_async())
        while not provider.started.is_set():
            await asyncio.sleep(0.001)
        first.cancel()
        assert provider.gate is not None
        provider.gate.set()
        with pytest.raises(asyncio.CancelledError):
            await first
        return await second

    assert asyncio.run(main()).access_key_id == "AKID1"
    assert provider.loads == 1


def test_failed_fetch_reaches_every_async_waiter_and_is_retried_later() -> None:
    provider = CountingProvider()
    provider.fail = True
    source = refreshing(provider)

    async def main() -> list[object]:
        return await asyncio.gather(
            *(source.get_async() for _ in range(5)), return_exceptions=True
        )

    results = asyncio.run(main())
    assert all(isinstance(result, CredentialsFetchError) for result in results)
    assert provider.loads == 1
    provider.fail = False
    assert asyncio.run(source.get_async()).access_key_id == "AKID2"


def test_threads_and_tasks_together_share_one_fetch() -> None:
    provider = CountingProvider()
    provider.gate = threading.Event()
    source = refreshing(provider)
    results: list[Credentials] = []
    thread = threading.Thread(target=lambda: results.append(source.get()))
    thread.start()
    assert provider.started.wait(10)

    async def main() -> list[Credentials]:
        tasks = [asyncio.create_task(source.get_async()) for _ in range(5)]
        await asyncio.sleep(0.05)
        assert provider.gate is not None
        provider.gate.set()
        return await asyncio.gather(*tasks)

    results.extend(asyncio.run(main()))
    thread.join()
    assert provider.loads == 1
    assert {credentials.access_key_id for credentials in results} == {"AKID1"}


# as_source.


def test_as_source_wraps_credentials_in_a_static_source() -> None:
    credentials = Credentials("AKIDSTATIC", "static-secret")
    source = as_source(credentials)
    assert isinstance(source, CredentialSource)
    assert source.get() is credentials
    assert asyncio.run(source.get_async()) is credentials
    source.invalidate()
    assert source.get() is credentials
    assert "static-secret" not in repr(source)


def test_as_source_returns_a_source_unchanged() -> None:
    source = refreshing(CountingProvider())
    assert as_source(source) is source


def test_as_source_of_none_is_the_default_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDDEFAULT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "default-secret")
    source = as_source(None)
    assert isinstance(source, RefreshingCredentials)
    assert source.get().access_key_id == "AKIDDEFAULT"


def test_as_source_rejects_anything_else() -> None:
    with pytest.raises(ConfigurationError):
        as_source(("AKID", "secret"))  # type: ignore[arg-type]


class HandMadeSource:
    """A source of its own that does not inherit from CredentialSource."""

    def __init__(self) -> None:
        self.credentials = Credentials("AKIDHANDMADE", "hand-made-secret")

    def get(self) -> Credentials:
        return self.credentials

    async def get_async(self) -> Credentials:
        return self.credentials

    def invalidate(self) -> None:
        pass


def test_as_source_takes_any_object_with_the_protocols_methods() -> None:
    source = HandMadeSource()
    assert isinstance(source, CredentialSource)
    assert as_source(source) is source


@pytest.mark.parametrize("missing", ["get", "get_async", "invalidate"])
def test_as_source_rejects_an_object_missing_one_method(missing: str) -> None:
    methods = {
        name: getattr(HandMadeSource, name)
        for name in ("get", "get_async", "invalidate")
        if name != missing
    }
    incomplete = type("Incomplete", (), methods)()
    with pytest.raises(ConfigurationError, match="CredentialSource"):
        as_source(incomplete)


def test_as_source_looks_for_exactly_the_protocols_methods() -> None:
    """The check as_source makes by hand stays in step with the Protocol."""
    declared = {name for name in vars(CredentialSource) if not name.startswith("_")}
    assert set(credentials_module._SOURCE_METHODS) == declared


def test_default_credentials_fetch_nothing_until_used() -> None:
    environ: dict[str, str] = {}
    source = default_credentials(environ)
    environ["AWS_ACCESS_KEY_ID"] = "AKIDLATE"
    environ["AWS_SECRET_ACCESS_KEY"] = "late-secret"
    assert source.get().access_key_id == "AKIDLATE"


# Import weight.


def test_importing_credentials_loads_no_botocore_aiohttp_or_asyncio() -> None:
    """A fresh interpreter; botocore appears only once the fallback loads."""
    script = (
        "import sys\n"
        "import agentcore_bridge.credentials as c\n"
        "heavy = ('botocore', 'boto3', 'aiohttp', 'yarl', 'multidict', 'asyncio')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
        "c.BotocoreProvider().load()\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    # The environment is the isolated one this file's fixture set up, so
    # the botocore fallback finds nothing and contacts nothing.
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    before, after = result.stdout.splitlines()
    assert before == ""
    assert "botocore" in after.split(",")


@pytest.mark.parametrize(
    ("setup", "expected_key"),
    [
        (
            "os.environ.update(AWS_ACCESS_KEY_ID='AKIDENV', "
            "AWS_SECRET_ACCESS_KEY='env-secret')\n"
            "source = c.default_credentials()",
            "AKIDENV",
        ),
        (
            "source = c.default_credentials(static=c.Credentials('AKIDST', 's'))",
            "AKIDST",
        ),
    ],
    ids=["environment", "static"],
)
def test_the_default_chain_never_imports_botocore_before_it_is_reached(
    setup: str, expected_key: str
) -> None:
    """A fresh interpreter: credentials found early leave botocore unloaded."""
    script = (
        "import os, sys\n"
        "import agentcore_bridge.credentials as c\n"
        f"{setup}\n"
        "print(source.get().access_key_id)\n"
        "print('botocore' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [expected_key, "False"]


# The botocore fallback, against real config files.


@pytest.fixture
def aws_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point botocore at a shared-credentials file and a config file in tmp."""
    credentials_file = tmp_path / "credentials"
    credentials_file.write_text(
        "[default]\n"
        "aws_access_key_id = AKIDDEFAULTPROFILE\n"
        "aws_secret_access_key = default-profile-secret\n"
        "\n"
        "[dev]\n"
        "aws_access_key_id = AKIDDEV\n"
        "aws_secret_access_key = dev-secret\n"
        "aws_session_token = dev-token\n"
    )
    config_file = tmp_path / "config"
    config_file.write_text(
        "[profile staging]\n"
        "aws_access_key_id = AKIDSTAGING\n"
        "aws_secret_access_key = staging-secret\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials_file))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_file))
    return tmp_path


@pytest.mark.usefixtures("aws_files")
def test_botocore_reads_a_named_profile_from_the_credentials_file() -> None:
    credentials = BotocoreProvider("dev").load()
    assert credentials == Credentials("AKIDDEV", "dev-secret", "dev-token", None)


@pytest.mark.usefixtures("aws_files")
def test_botocore_reads_the_default_profile() -> None:
    credentials = BotocoreProvider().load()
    assert credentials is not None
    assert credentials.access_key_id == "AKIDDEFAULTPROFILE"


@pytest.mark.usefixtures("aws_files")
def test_botocore_follows_aws_profile_into_the_config_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "staging")
    credentials = BotocoreProvider().load()
    assert credentials is not None
    assert credentials.access_key_id == "AKIDSTAGING"
    assert credentials.session_token is None


@pytest.mark.usefixtures("aws_files")
def test_botocore_unknown_profile_is_a_configuration_error() -> None:
    with pytest.raises(ValidationError) as caught:
        BotocoreProvider("no-such-profile").load()
    assert caught.value.field == "profile"


def test_botocore_without_any_credentials_does_not_apply() -> None:
    provider = BotocoreProvider()
    assert provider.load() is None
    assert provider.missing_reason == "botocore found no credentials"


@pytest.mark.usefixtures("aws_files")
def test_default_chain_falls_back_to_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "dev")
    assert default_credentials({}).get().access_key_id == "AKIDDEV"


def write_credential_process(tmp_path: Path, answer: dict[str, object] | None) -> Path:
    """A credential_process script that logs each run and prints ``answer``.

    With ``answer`` None it fails, printing a secret on stderr.
    """
    runs = tmp_path / "runs"
    script = tmp_path / "credential_process.py"
    if answer is None:
        body = "import sys\nsys.stderr.write('leaked-process-secret\\n')\nsys.exit(1)\n"
    else:
        body = f"print({json.dumps(json.dumps(answer))})\n"
    script.write_text(
        f"with open({str(runs)!r}, 'a') as log:\n    log.write('run\\n')\n" + body
    )
    return runs


def add_process_profile(tmp_path: Path, name: str) -> None:
    config = tmp_path / "config"
    script = tmp_path / "credential_process.py"
    with config.open("a") as file:
        file.write(
            f'\n[profile {name}]\ncredential_process = "{sys.executable}" "{script}"\n'
        )


def test_botocore_passes_on_the_expiry_of_refreshable_credentials(
    aws_files: Path,
) -> None:
    expiration = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    runs = write_credential_process(
        aws_files,
        {
            "Version": 1,
            "AccessKeyId": "AKIDPROCESS",
            "SecretAccessKey": "process-secret",
            "SessionToken": "process-token",
            "Expiration": expiration.isoformat(),
        },
    )
    add_process_profile(aws_files, "process")
    provider = BotocoreProvider("process")
    credentials = provider.load()
    assert credentials == Credentials(
        "AKIDPROCESS", "process-secret", "process-token", expiration.timestamp()
    )

    # botocore keeps what it resolved: a second load runs no new process.
    assert provider.load() == credentials
    assert runs.read_text().count("run") == 1


def test_botocore_failure_is_a_fetch_error_without_botocore_message(
    aws_files: Path,
) -> None:
    write_credential_process(aws_files, None)
    add_process_profile(aws_files, "broken")
    with pytest.raises(CredentialsFetchError) as caught:
        BotocoreProvider("broken").load()
    assert caught.value.provider == "botocore"
    assert "CredentialRetrievalError" in str(caught.value)
    assert "leaked-process-secret" not in str(caught.value)
    assert caught.value.__cause__ is not None
