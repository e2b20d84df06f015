"""Settings are read from the environment and checked at start-up."""

from __future__ import annotations

import pytest

from agentcore_bridge.config import Settings, origin_allowed
from agentcore_bridge.exceptions import ConfigurationError, ValidationError

ARN = "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/demo_agent-AbCdEf1234"


def test_defaults_apply_when_nothing_is_set() -> None:
    settings = Settings.from_env({})
    assert settings.runtime_arn is None
    assert settings.message_limit_bytes == 131072
    assert settings.coalesce_bytes == 32768
    assert settings.allowed_origins == ()
    assert settings.session_secret is None


def test_values_are_parsed_to_their_types() -> None:
    settings = Settings.from_env(
        {
            "AGENTCORE_RUNTIME_ARN": ARN,
            "AGENTCORE_ENDPOINT_URL": "http://127.0.0.1:9000/",
            "BRIDGE_COALESCE_WINDOW": "0.25",
            "BRIDGE_ALLOWED_ORIGINS": "https://a.example, https://b.example",
            "BRIDGE_STOP_SESSION_ON_DISCONNECT": "yes",
            "BRIDGE_WARMUP_PAYLOAD": '{"prompt": "warm up"}',
            "BRIDGE_SESSION_SECRET": "s" * 32,
        }
    )
    assert settings.runtime_arn == ARN
    assert settings.endpoint_url == "http://127.0.0.1:9000"
    assert settings.coalesce_window == 0.25
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.stop_session_on_disconnect is True
    assert settings.warmup_payload == {"prompt": "warm up"}
    assert settings.session_secret == b"s" * 32


def test_region_falls_back_to_aws_default_region() -> None:
    assert Settings.from_env({"AWS_DEFAULT_REGION": "eu-west-1"}).region == "eu-west-1"
    both = {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert Settings.from_env(both).region == "us-east-1"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AGENTCORE_RUNTIME_ARN", "arn:aws:lambda:us-east-1:123456789012:function:x"),
        ("AGENTCORE_QUALIFIER", "bad qualifier"),
        ("AGENTCORE_ENDPOINT_URL", "ftp://example.com"),
        ("BRIDGE_MAX_FRAME_BYTES", "0"),
        ("BRIDGE_MESSAGE_LIMIT_BYTES", "100"),
        ("BRIDGE_COALESCE_WINDOW", "-1"),
        ("BRIDGE_COALESCE_WINDOW", "nan"),
        ("BRIDGE_STOP_SESSION_ON_DISCONNECT", "maybe"),
        ("BRIDGE_WARMUP_PAYLOAD", "{not json"),
        ("BRIDGE_SESSION_SECRET", "short"),
        ("BRIDGE_LOG_FORMAT", "xml"),
        ("BRIDGE_SESSION_TTL", "0"),
        ("AWS_REGION", "us east 1"),
        ("AWS_REGION", "\u00fcs-east-1"),
        ("AWS_REGION", "-"),
        ("AWS_DEFAULT_REGION", "us-east-1-"),
        ("BRIDGE_WARMUP_PAYLOAD", "[" * 100000),
        ("BRIDGE_WARMUP_PAYLOAD", "NaN"),
        ("BRIDGE_WARMUP_PAYLOAD", '{"x": -Infinity}'),
        ("BRIDGE_CONNECTIONS_ENDPOINT_URL", "https://example.com:99999/prod"),
        ("BRIDGE_CONNECTIONS_ENDPOINT_URL", "https://:443/prod"),
        ("BRIDGE_CONNECTIONS_ENDPOINT_URL", "https://example.com/prod?stage=x"),
        ("BRIDGE_LAMBDA_ENDPOINT_URL", "http://127.0.0.1:port"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.from_env({variable: value})
    assert caught.value.field == variable
    assert isinstance(caught.value, ConfigurationError)
    if variable == "BRIDGE_SESSION_SECRET":
        assert value not in str(caught.value)


def test_missing_runtime_arn_is_reported_by_name() -> None:
    with pytest.raises(ValidationError, match="AGENTCORE_RUNTIME_ARN"):
        Settings.from_env({}).require_runtime_arn()


def test_every_variable_has_a_description() -> None:
    variables = Settings.variables()
    assert "AGENTCORE_RUNTIME_ARN" in variables
    assert all(text.strip() for text in variables.values())


def test_repr_hides_the_session_secret() -> None:
    secret = "s" * 40
    settings = Settings.from_env({"BRIDGE_SESSION_SECRET": secret})
    assert secret not in repr(settings)
    assert "session_secret=[hidden]" in repr(settings)
    assert "session_secret=None" in repr(Settings())


def test_specs_list_every_field_with_its_default() -> None:
    specs = Settings.specs()
    assert [name for name, _, _, _ in specs] == list(Settings._fields)
    defaults = {variable: default for _, variable, default, _ in specs}
    assert defaults["BRIDGE_MESSAGE_LIMIT_BYTES"] == 131072
    assert list(Settings.variables()) == [variable for _, variable, _, _ in specs]


def test_settings_are_read_only() -> None:
    settings = Settings()
    with pytest.raises(AttributeError, match="read-only"):
        settings.port = 1  # type: ignore[misc]
    with pytest.raises(AttributeError, match="read-only"):
        del settings.port
    assert settings.port == 8000


def test_settings_take_known_keywords_only() -> None:
    with pytest.raises(TypeError, match="no_such_setting"):
        Settings(no_such_setting=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Settings(ARN)  # type: ignore[call-arg]


def test_replace_changes_only_what_it_is_given() -> None:
    settings = Settings.from_env({"AGENTCORE_RUNTIME_ARN": ARN})
    changed = settings.replace(port=0)
    assert (changed.port, changed.runtime_arn) == (0, ARN)
    assert settings.port == 8000
    assert changed == settings._replace(port=0) != settings
    assert settings == Settings(runtime_arn=ARN)
    with pytest.raises(ValueError, match="no_such_setting"):
        settings.replace(no_such_setting=1)


def test_fields_and_defaults_read_as_on_a_named_tuple() -> None:
    assert Settings._fields[:2] == ("runtime_arn", "qualifier")
    assert Settings._field_defaults["port"] == 8000
    assert Settings()._asdict() == Settings._field_defaults
    values = Settings(port=1)._asdict()
    assert list(values) == list(Settings._fields)
    assert values["port"] == 1


def test_a_subclass_keeps_every_setting() -> None:
    """A subclass that adds a method reads, repeats and compares as Settings."""

    class Mine(Settings):
        def describe(self) -> str:
            return f"{self.runtime_arn} on {self.port}"

    mine = Mine.from_env({"AGENTCORE_RUNTIME_ARN": ARN, "BRIDGE_PORT": "9001"})
    assert isinstance(mine, Mine)
    assert mine._fields == Settings._fields
    assert mine._field_defaults == Settings._field_defaults
    assert mine.describe() == f"{ARN} on 9001"
    assert mine.replace(port=1).port == 1
    assert mine._asdict() == Settings(runtime_arn=ARN, port=9001)._asdict()


@pytest.mark.parametrize(
    ("origin", "allowed", "expected"),
    [
        ("https://app.example", (), True),
        ("https://evil.example", ("*",), True),
        ("https://APP.example/", ("https://app.example",), True),
        ("https://evil.example", ("https://app.example",), False),
        (None, ("https://app.example",), True),
    ],
)
def test_origin_rule(
    origin: str | None, allowed: tuple[str, ...], expected: bool
) -> None:
    assert origin_allowed(origin, allowed) is expected
