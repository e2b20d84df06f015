"""Who may connect: the authentication hook, bearer tokens, the Origin
allowlist, and session tokens bound to the principal."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import websockets
from aiohttp import web

from agentcore_bridge.config import Settings
from agentcore_bridge.exceptions import AuthenticationError, ConfigurationError
from agentcore_bridge.server import create_app
from server_helpers import AiohttpProtocolClient, ProtocolClient, bridge_stack

TOKEN = "t0k3n-for-tests-0123456789abcdef"
OTHER_TOKEN = "another-token-0123456789abcdef"


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def refused_status(url: str, **options: Any) -> tuple[int, Any]:
    """The HTTP status (and headers) of a refused upgrade."""
    try:
        async with websockets.connect(url, **options):
            pass
    except websockets.InvalidStatus as exc:
        return exc.response.status_code, exc.response.headers
    raise AssertionError("the upgrade was accepted")


async def turn_of(
    url: str, library: type[ProtocolClient] = ProtocolClient, **options: Any
) -> str:
    """Connect, chat once; return "Turn N" (the turn of the session)."""
    client = await library.connect(url, **options)
    await client.run("t", {"prompt": "x"})
    await client.close()
    return client.text_of("t").split(" of")[0]


@pytest.fixture(scope="module")
def bearer() -> Any:
    with bridge_stack(auth_tokens=(TOKEN, OTHER_TOKEN)) as running:
        yield running


def test_a_connection_without_a_token_is_refused_with_401(bearer: Any) -> None:
    status, headers = run(refused_status(bearer.ws_url()))
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_token_is_refused_with_401(bearer: Any) -> None:
    status, headers = run(
        refused_status(
            bearer.ws_url(),
            additional_headers={"Authorization": "Bearer wrong-token-000000000000"},
        )
    )
    assert status == 401
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]


def test_aiohttp_clients_are_refused_and_admitted_the_same_way(bearer: Any) -> None:
    async def scenario() -> tuple[list[int], str]:
        statuses = []
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"Authorization": "Bearer wrong-token-000000000000"}):
                try:
                    async with http.ws_connect(bearer.ws_url(), headers=headers):
                        statuses.append(101)
                except aiohttp.WSServerHandshakeError as exc:
                    statuses.append(exc.status)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return statuses, await turn_of(
            bearer.ws_url(), library=AiohttpProtocolClient, additional_headers=headers
        )

    statuses, turn = run(scenario())
    assert statuses == [401, 401]
    assert turn == "Turn 1"


def test_the_token_is_accepted_in_the_authorization_header(bearer: Any) -> None:
    url = bearer.ws_url()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert run(turn_of(url, additional_headers=headers)) == "Turn 1"


def test_the_token_is_accepted_as_a_subprotocol_which_is_never_echoed(
    bearer: Any,
) -> None:
    async def scenario() -> str | None:
        async with websockets.connect(
            bearer.ws_url(), subprotocols=["agentcore-bridge", f"bearer.{TOKEN}"]
        ) as ws:
            await ws.recv()
            return ws.subprotocol

    assert run(scenario()) == "agentcore-bridge"


def test_a_bearer_subprotocol_without_the_bridge_subprotocol_is_refused(
    bearer: Any,
) -> None:
    status, _ = run(refused_status(bearer.ws_url(), subprotocols=[f"bearer.{TOKEN}"]))
    assert status == 400


def test_the_token_is_accepted_as_the_access_token_query_parameter(
    bearer: Any,
) -> None:
    assert run(turn_of(bearer.ws_url(access_token=TOKEN))) == "Turn 1"


def test_the_query_parameter_can_be_turned_off() -> None:
    with bridge_stack(auth_tokens=(TOKEN,), auth_query_parameter=False) as bridge:
        status, _ = run(refused_status(bridge.ws_url(access_token=TOKEN)))
    assert status == 401


def test_the_pass_through_requires_the_token_too(bearer: Any) -> None:
    status, _ = run(refused_status(bearer.ws_url("/agent/ws")))
    assert status == 401


def test_one_principal_cannot_resume_another_principals_session(bearer: Any) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any], str]:
        mine = await ProtocolClient.connect(bearer.ws_url(access_token=TOKEN))
        await mine.run("m", {"prompt": "mine"})
        token = mine.session["session"] if mine.session else ""
        await mine.close()

        # The other principal presents the token on connect...
        other = await ProtocolClient.connect(
            bearer.ws_url(access_token=OTHER_TOKEN, session=token)
        )
        refused_on_connect = other.frames[0]
        # ...and in an invoke.
        frames = await other.run("o", {"prompt": "theirs"}, session=token)
        await other.close()

        # The session was not touched: its owner's next turn is turn 2.
        owner_turn = await turn_of(bearer.ws_url(access_token=TOKEN, session=token))
        return refused_on_connect, frames[-1], owner_turn

    on_connect, on_invoke, owner_turn = run(scenario())
    assert on_connect["type"] == "error"
    assert on_connect["code"] == "unauthorized"
    assert on_connect["id"] is None
    assert on_invoke["code"] == "unauthorized"
    assert on_invoke["id"] == "o"
    assert owner_turn == "Turn 2"


def test_a_forged_session_token_is_refused() -> None:
    with bridge_stack() as bridge:

        async def scenario() -> dict[str, Any]:
            client = await ProtocolClient.connect(bridge.ws_url())
            token = client.session["session"] if client.session else ""
            forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
            frames = await client.run("f", {"prompt": "x"}, session=forged)
            await client.close()
            return frames[-1]

        frame = run(scenario())
    assert frame["code"] == "unauthorized"


def _header_principal(request: web.Request) -> str | None:
    user = request.headers.get("X-User")
    if user == "blocked":
        raise AuthenticationError("this user may not connect", status=403)
    if user == "crash":
        raise RuntimeError("a bug in the hook")
    return user


@pytest.fixture(scope="module")
def hooked() -> Any:
    with bridge_stack(authenticate=_header_principal) as running:
        yield running


def test_the_hook_accepts_a_principal(hooked: Any) -> None:
    url = hooked.ws_url()
    assert run(turn_of(url, additional_headers={"X-User": "alice"})) == "Turn 1"


def test_the_hook_refuses_by_returning_none(hooked: Any) -> None:
    status, _ = run(refused_status(hooked.ws_url()))
    assert status == 401


def test_the_hook_refuses_with_its_own_status(hooked: Any) -> None:
    url = hooked.ws_url()
    status, _ = run(refused_status(url, additional_headers={"X-User": "blocked"}))
    assert status == 403


def test_a_failing_hook_refuses_with_500(hooked: Any) -> None:
    url = hooked.ws_url()
    status, _ = run(refused_status(url, additional_headers={"X-User": "crash"}))
    assert status == 500


def test_an_async_hook_works_too() -> None:
    async def principal(request: web.Request) -> str | None:
        await asyncio.sleep(0)
        return request.query.get("user")

    with bridge_stack(authenticate=principal) as bridge:
        assert run(turn_of(bridge.ws_url(user="bob"))) == "Turn 1"
        status, _ = run(refused_status(bridge.ws_url()))
    assert status == 401


def test_session_tokens_are_bound_to_the_hooks_principal(hooked: Any) -> None:
    async def scenario() -> tuple[str, str]:
        alice = {"X-User": "alice"}
        first = await ProtocolClient.connect(hooked.ws_url(), additional_headers=alice)
        token = first.session["session"] if first.session else ""
        await first.close()
        mallory = {"X-User": "mallory"}
        stolen = await ProtocolClient.connect(
            hooked.ws_url(session=token), additional_headers=mallory
        )
        await stolen.close()
        resumed = await turn_of(hooked.ws_url(session=token), additional_headers=alice)
        return str(stolen.frames[0]["code"]), resumed

    code, resumed = run(scenario())
    assert code == "unauthorized"
    assert resumed == "Turn 1"


@pytest.fixture(scope="module")
def origins() -> Any:
    with bridge_stack(allowed_origins=("https://app.example",)) as running:
        yield running


def test_an_origin_outside_the_allowlist_is_refused_with_403(origins: Any) -> None:
    status, _ = run(refused_status(origins.ws_url(), origin="https://evil.example"))
    assert status == 403


def test_an_allowed_origin_connects(origins: Any) -> None:
    url = origins.ws_url()
    assert run(turn_of(url, origin="https://APP.example")) == "Turn 1"


def test_a_client_without_an_origin_connects(origins: Any) -> None:
    assert run(turn_of(origins.ws_url())) == "Turn 1"


def test_a_hook_and_bearer_tokens_together_are_a_configuration_error() -> None:
    settings = Settings(
        runtime_arn="arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/a-b1",
        auth_tokens=(TOKEN,),
    )
    with pytest.raises(ConfigurationError, match="BRIDGE_AUTH_TOKENS"):
        create_app(settings, authenticate=_header_principal)


def test_settings_never_show_tokens_or_secrets() -> None:
    settings = Settings(auth_tokens=(TOKEN,), session_secret=b"s" * 40)
    assert TOKEN not in repr(settings)
    assert "sss" not in repr(settings)
