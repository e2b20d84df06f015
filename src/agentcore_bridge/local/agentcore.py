"""A local emulator of the AgentCore Runtime data plane.

It serves the three data-plane calls the bridge makes, on the same paths
and with the same rules as ``bedrock-agentcore.{region}.amazonaws.com``:

- ``POST /runtimes/{arn}/invocations?qualifier=``: InvokeAgentRuntime;
- ``POST /runtimes/{arn}/stopruntimesession?qualifier=``: StopRuntimeSession;
- ``GET /runtimes/{arn}/ws?qualifier=``: the WebSocket stream.

Each request is authenticated with SigV4 (header or presigned query), then
validated (ARN, qualifier, session id, user id), then forwarded to an agent
that follows the container contract (``POST /invocations``, ``/ws``): the
agent's bytes stream back as they arrive, with its ``Content-Type``. Errors
come back the way botocore expects them: the status from the service's
error table, the name in ``x-amzn-ErrorType`` and ``{"message": ...}``.

On top of that it simulates what makes the real service hard to build
against: a cold start on the first call of a session (and after the
session idled out or was stopped), idle expiry and maximum lifetime of
sessions, the invocation rate quota (429), the active-session quota (402),
the initialisation time limit (424), and faults injected on the Nth call:
an error status, a connection dropped before the answer or reset in the
middle of a stream, a slow first byte, a WebSocket closed with a chosen
code. Every simulation is set at start and changed at run time through a
small control API under ``/_emulator/`` (see ``docs/local.md``).

Run it with ``agentcore-bridge local-agentcore``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from ..agentcore import (
    SERVICE,
    SESSION_ID_HEADER,
    USER_ID_HEADER,
    parse_runtime_arn,
    validate_qualifier,
    validate_session_id,
    validate_user_id,
)
from ..credentials import Credentials
from ..exceptions import ValidationError
from ._passthrough import abort_connection, forward_invocation, forward_websocket
from ._serve import serve
from .emulation import (
    DEFAULT_RUNTIME_ARN,
    ERROR_TYPE_HEADER,
    LOCAL_ACCESS_KEY_ID,
    LOCAL_CREDENTIALS,
    LOCAL_SECRET_ACCESS_KEY,
    REQUEST_ID_HEADER,
    AgentCoreEmulator,
    Call,
    EmulatedError,
    EmulatorConfig,
    Fault,
)

__all__ = [
    "DEFAULT_RUNTIME_ARN",
    "LOCAL_ACCESS_KEY_ID",
    "LOCAL_CREDENTIALS",
    "LOCAL_SECRET_ACCESS_KEY",
    "AgentCoreEmulator",
    "EmulatorConfig",
    "Fault",
    "create_emulator_app",
    "get_emulator",
    "main",
]

logger = logging.getLogger("agentcore_bridge.local")

_CLIENT_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
)


def _validation_error(error: ValidationError) -> EmulatedError:
    return EmulatedError(
        400,
        "ValidationException",
        f"1 validation error detected: Value at '{error.field}' failed to "
        f"satisfy constraint: {error.rule}",
    )


def _error_response(error: EmulatedError, request_id: str) -> web.Response:
    return web.Response(
        status=error.status,
        body=json.dumps({"message": error.message}).encode(),
        headers={
            "Content-Type": "application/json",
            ERROR_TYPE_HEADER: error.error_type,
            REQUEST_ID_HEADER: request_id,
        },
    )


class _DropConnectionError(Exception):
    """The connection was aborted on purpose; there is no answer to send."""


_EMULATOR_KEY = web.AppKey("agentcore_emulator", AgentCoreEmulator)


def get_emulator(app: web.Application) -> AgentCoreEmulator:
    """The :class:`AgentCoreEmulator` behind an app from :func:`create_emulator_app`."""
    return app[_EMULATOR_KEY]


def create_emulator_app(config: EmulatorConfig | None = None) -> web.Application:
    """Build the emulator as an aiohttp application."""
    emulator = AgentCoreEmulator(config or EmulatorConfig())
    app = web.Application()
    app[_EMULATOR_KEY] = emulator

    async def close_emulator(app: web.Application) -> None:
        await emulator.close()

    app.on_shutdown.append(close_emulator)
    app.router.add_route("*", "/runtimes/{tail:.+}", _runtimes)
    app.router.add_get("/_emulator/stats", _control_stats)
    app.router.add_get("/_emulator/faults", _control_faults)
    app.router.add_post("/_emulator/faults", _control_faults)
    app.router.add_delete("/_emulator/faults", _control_faults)
    app.router.add_get("/_emulator/config", _control_config)
    app.router.add_post("/_emulator/config", _control_config)
    app.router.add_post("/_emulator/clock", _control_clock)
    app.router.add_post("/_emulator/reset", _control_reset)
    app.router.add_route("*", "/{tail:.*}", _unknown_operation)
    return app


# The data plane.

_ACTIONS = {
    ("POST", "invocations"): "invoke",
    ("POST", "stopruntimesession"): "stop",
    ("GET", "ws"): "ws",
}


async def _unknown_operation(request: web.Request) -> web.Response:
    error = EmulatedError(404, "UnknownOperationException", "Unknown operation")
    return _error_response(error, str(uuid.uuid4()))


async def _runtimes(request: web.Request) -> web.StreamResponse:
    emulator = request.app[_EMULATOR_KEY]
    # The ARN travels percent-encoded as one segment: split the raw path,
    # never the decoded one, or the ARN's own "/" would split it.
    segments = request.rel_url.raw_path.split("/")
    operation = None
    if len(segments) == 4:
        operation = _ACTIONS.get((request.method, segments[3]))
    if operation is None:
        return await _unknown_operation(request)

    call = Call(operation, str(uuid.uuid4()))
    emulator.count_request(operation)
    try:
        body = await _read_body(request, emulator.config.max_payload)
        call.verified = emulator.authenticate(
            request.method,
            request.rel_url.raw_path,
            request.rel_url.raw_query_string,
            list(request.headers.items()),
            body,
        )
        _validate(emulator, request, call, unquote(segments[2]))
        if operation == "stop":
            return await _stop_session(emulator, call, body)
        return await _invoke(emulator, request, call, body)
    except EmulatedError as error:
        call.outcome, call.status, call.error_type = (
            "error",
            error.status,
            error.error_type,
        )
        logger.info(
            "%s %s: %s (%d)", operation, call.request_id, error.error_type, error.status
        )
        response = _error_response(error, call.request_id)
        if call.session_id and operation != "stop":
            response.headers[SESSION_ID_HEADER] = call.session_id
        return response
    except _DropConnectionError:
        call.outcome, call.status = "dropped", 0
        emulator.record(call)
        abort_connection(request)
        return web.Response()
    finally:
        emulator.record(call)


async def _read_body(request: web.Request, limit: int) -> bytes:
    too_large = EmulatedError(
        400,
        "ValidationException",
        "1 validation error detected: Value at 'payload' failed to satisfy "
        f"constraint: Member must have length less than or equal to {limit}",
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > limit:
            raise too_large
    return bytes(data)


def _validate(
    emulator: AgentCoreEmulator, request: web.Request, call: Call, target: str
) -> None:
    """Fill ``call`` from the request, or raise the service's 400 or 404."""
    query = request.rel_url.query
    try:
        if target.startswith("arn:"):
            call.runtime_arn = parse_runtime_arn(target).arn
        else:
            # The model also accepts a bare runtime id with an accountId.
            account = query.get("accountId")
            if not account:
                raise ValidationError(
                    "accountId", "is required when agentRuntimeArn is a runtime id"
                )
            arn = (
                f"arn:aws:{SERVICE}:{emulator.config.region}:{account}:runtime/{target}"
            )
            call.runtime_arn = parse_runtime_arn(arn).arn
        if "qualifier" in query:
            call.qualifier = validate_qualifier(query["qualifier"])

        session_id = request.headers.get(SESSION_ID_HEADER)
        if session_id is None and call.operation == "ws":
            # A presigned WebSocket URL carries the session id as a parameter.
            session_id = query.get(SESSION_ID_HEADER)
        if session_id is None:
            if call.operation == "stop":
                raise ValidationError("runtimeSessionId", "is required")
            # The service starts a new session and returns its id.
            session_id = str(uuid.uuid4())
        call.session_id = validate_session_id(session_id)

        user_id = request.headers.get(USER_ID_HEADER)
        if user_id is not None:
            call.user_id = validate_user_id(user_id)
    except ValidationError as error:
        raise _validation_error(error) from None

    known = emulator.config.runtime_arns
    if known is not None and call.runtime_arn not in known:
        raise EmulatedError(
            404,
            "ResourceNotFoundException",
            f"No endpoint or agent found with qualifier '{call.qualifier}' for "
            f"agent '{call.runtime_arn}'",
        )


async def _stop_session(
    emulator: AgentCoreEmulator, call: Call, body: bytes
) -> web.Response:
    assert call.session_id is not None
    token = _client_token(body)
    counters = emulator.session_counters(call.session_id)
    counters["calls"] += 1
    counters["stops"] += 1

    faults = emulator.matching_faults("stop", call.session_id)
    await _apply_before_answer(faults)
    # A retried stop with the same token gets the first answer again.
    if token is not None and emulator.stop_token_used(token, call.session_id):
        return _stopped_response(call)

    session = emulator.live_session(call.session_id)
    if session is None or session.runtime_arn != call.runtime_arn:
        raise EmulatedError(
            404,
            "ResourceNotFoundException",
            f"Session '{call.session_id}' not found for agent '{call.runtime_arn}'",
        )
    emulator.end_session(session, "stopped")
    if token is not None:
        emulator.remember_stop_token(token, call.session_id)
    return _stopped_response(call)


def _stopped_response(call: Call) -> web.Response:
    assert call.session_id is not None
    return web.Response(
        body=b"{}",
        headers={
            "Content-Type": "application/json",
            SESSION_ID_HEADER: call.session_id,
            REQUEST_ID_HEADER: call.request_id,
        },
    )


def _client_token(body: bytes) -> str | None:
    if not body.strip():
        return None
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise EmulatedError(
            400, "ValidationException", "The request body is not a JSON object."
        )
    token = document.get("clientToken")
    if token is None:
        return None
    if (
        not isinstance(token, str)
        or not 33 <= len(token) <= 256
        or not set(token) <= _CLIENT_TOKEN_CHARS
        or token.startswith("-")
        or token.endswith("-")
    ):
        raise _validation_error(
            ValidationError(
                "clientToken",
                "Member must have length between 33 and 256 and satisfy regular "
                "expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,256}",
            )
        )
    return token


async def _apply_before_answer(faults: Sequence[Fault]) -> None:
    """Play the faults that act before any answer byte: delay, drop, error."""
    delay = sum(f.seconds for f in faults if f.kind == "slow_first_byte")
    if delay:
        await asyncio.sleep(delay)
    for fault in faults:
        if fault.kind == "drop":
            raise _DropConnectionError
        if fault.kind == "error":
            raise EmulatedError(fault.status, fault.error_type, fault.message)


async def _invoke(
    emulator: AgentCoreEmulator, request: web.Request, call: Call, body: bytes
) -> web.StreamResponse:
    assert call.session_id is not None
    counters = emulator.session_counters(call.session_id)
    counters["calls"] += 1
    counters["runtime_arn"], counters["qualifier"] = call.runtime_arn, call.qualifier
    if call.operation == "ws":
        counters["ws_connections"] += 1
    else:
        counters["invocations"] += 1

    if not emulator.take_token((call.runtime_arn, call.qualifier)):
        raise EmulatedError(429, "ThrottlingException", "Rate exceeded")
    faults = emulator.matching_faults(call.operation, call.session_id)
    await _apply_before_answer(faults)
    session = await emulator.warm_session(call)
    cut = next((f for f in faults if f.kind in ("reset", "close")), None)
    if call.operation == "ws":
        return await forward_websocket(
            emulator, request, call, session=session, cut=cut
        )
    return await forward_invocation(
        emulator, request, call, session=session, body=body, cut=cut
    )


# The control API.


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"message": "the body must be JSON"}),
            content_type="application/json",
        ) from None


def _bad_control_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=json.dumps({"message": message}), content_type="application/json"
    )


async def _control_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[_EMULATOR_KEY].stats())


async def _control_faults(request: web.Request) -> web.Response:
    emulator = request.app[_EMULATOR_KEY]
    if request.method == "POST":
        document = await _json_body(request)
        items = document.get("faults") if isinstance(document, dict) else None
        if items is None:
            items = [document]
        if not isinstance(items, list):
            raise _bad_control_request("faults must be a list")
        try:
            faults = [Fault.from_json(item) for item in items]
        except ValueError as exc:
            raise _bad_control_request(str(exc)) from None
        added = [emulator.add_fault(fault).to_json() for fault in faults]
        return web.json_response({"faults": added})
    if request.method == "DELETE":
        emulator.clear_faults()
    return web.json_response({"faults": [f.to_json() for f in emulator.faults()]})


async def _control_config(request: web.Request) -> web.Response:
    emulator = request.app[_EMULATOR_KEY]
    if request.method == "POST":
        document = await _json_body(request)
        if not isinstance(document, dict):
            raise _bad_control_request("the settings must be a JSON object")
        try:
            emulator.configure(document)
        except ValueError as exc:
            raise _bad_control_request(str(exc)) from None
    return web.json_response(emulator.settings())


async def _control_clock(request: web.Request) -> web.Response:
    emulator = request.app[_EMULATOR_KEY]
    document = await _json_body(request)
    seconds = document.get("advance") if isinstance(document, dict) else None
    if (
        not isinstance(seconds, (int, float))
        or isinstance(seconds, bool)
        or seconds < 0
    ):
        raise _bad_control_request('send {"advance": <seconds, not negative>}')
    emulator.advance_clock(float(seconds))
    return web.json_response({"advanced": seconds})


async def _control_reset(request: web.Request) -> web.Response:
    request.app[_EMULATOR_KEY].reset()
    return web.json_response({"reset": True})


# The command line.


def main(argv: Sequence[str]) -> int:
    """``agentcore-bridge local-agentcore``: run the emulator until interrupted."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = _config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = create_emulator_app(config)
    runtime_arn = args.runtime_arn[0] if args.runtime_arn else DEFAULT_RUNTIME_ARN
    custom_keys = bool(args.credentials)

    def ready(url: str) -> None:
        lines = [
            f"AgentCore emulator listening on {url}",
            f"forwarding to the agent at {config.agent_url}",
            "",
            "Point the bridge (or any AWS SDK) at it with:",
            f"  export AGENTCORE_ENDPOINT_URL={url}",
            f"  export AGENTCORE_RUNTIME_ARN={runtime_arn}",
            f"  export AWS_REGION={config.region}",
            f"  export AWS_DEFAULT_REGION={config.region}  # what boto3 reads",
        ]
        if custom_keys:
            key = config.credentials[0].access_key_id
            lines += [
                f"  export AWS_ACCESS_KEY_ID={key}",
                "  export AWS_SECRET_ACCESS_KEY=<the secret given to --credentials>",
            ]
        else:
            lines += [
                f"  export AWS_ACCESS_KEY_ID={LOCAL_ACCESS_KEY_ID}",
                f"  export AWS_SECRET_ACCESS_KEY={LOCAL_SECRET_ACCESS_KEY}",
            ]
        lines += [
            "  unset AWS_SESSION_TOKEN",
            "",
            f"Control API: {url}/_emulator/stats, /_emulator/faults, "
            "/_emulator/config (see docs/local.md)",
        ]
        print("\n".join(lines), flush=True)  # noqa: T201

    return serve(
        app, args.host, args.port, ready, program="agentcore-bridge local-agentcore"
    )


def _parser() -> argparse.ArgumentParser:
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(
        prog="agentcore-bridge local-agentcore",
        description="Run a local emulator of the AgentCore Runtime data plane.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, default=9000, help="port to listen on (default 9000)")
    add(
        "--agent-url",
        default=defaults.agent_url,
        help=f"base URL of the agent container (default {defaults.agent_url})",
    )
    add("--region", default=defaults.region, help=f"default {defaults.region}")
    add(
        "--runtime-arn",
        action="append",
        default=[],
        metavar="ARN",
        help="a runtime that exists (repeatable); others get 404. "
        "Default: every well-formed ARN",
    )
    add(
        "--credentials",
        action="append",
        default=[],
        metavar="KEY:SECRET[:TOKEN]",
        help="a key pair to accept (repeatable), replacing the built-in local pair",
    )
    add(
        "--accept-any-credentials",
        action="store_true",
        help="let unknown access keys through without checking their signature",
    )
    add(
        "--cold-start",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="delay of the first call of each session (default 0)",
    )
    add(
        "--init-timeout",
        type=float,
        default=defaults.init_timeout,
        metavar="SECONDS",
        help="a cold start longer than this fails with 424 (default 30)",
    )
    add(
        "--idle-timeout",
        type=float,
        default=defaults.idle_timeout,
        metavar="SECONDS",
        help="sessions idle this long end (default 900)",
    )
    add(
        "--max-lifetime",
        type=float,
        default=defaults.max_lifetime,
        metavar="SECONDS",
        help="sessions end this long after they started (default 28800)",
    )
    add(
        "--rate-limit",
        type=float,
        default=0.0,
        metavar="PER_SECOND",
        help="invocations per second per endpoint before 429 (default 0: off; "
        "AWS's default quota is 25)",
    )
    add(
        "--max-sessions",
        type=int,
        default=0,
        metavar="N",
        help="active sessions before 402 (default 0: off)",
    )
    add(
        "--max-clock-skew",
        type=float,
        default=defaults.max_clock_skew,
        metavar="SECONDS",
        help="tolerated X-Amz-Date skew (default 300)",
    )
    add(
        "--max-presign-expires",
        type=int,
        default=defaults.max_presign_expires,
        metavar="SECONDS",
        help="largest X-Amz-Expires accepted (default 300)",
    )
    add(
        "--max-payload",
        type=int,
        default=defaults.max_payload,
        metavar="BYTES",
        help="largest request body (default 100,000,000 bytes, as AgentCore)",
    )
    add(
        "--ws-max-message-size",
        type=int,
        default=0,
        metavar="BYTES",
        help="largest WebSocket message in either direction; larger ones close "
        "the socket with 1009 (default 0: no limit)",
    )
    add(
        "--fault",
        action="append",
        default=[],
        metavar="JSON",
        help='a fault to inject, e.g. \'{"kind": "error", "nth": 2, "status": 500}\' '
        "(repeatable)",
    )
    add("-v", "--verbose", action="store_true", help="log every call")
    return parser


def _config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    credentials: list[Credentials] = []
    for text in args.credentials:
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError("--credentials takes KEY:SECRET or KEY:SECRET:TOKEN")
        credentials.append(Credentials(*parts))
    try:
        runtime_arns = (
            frozenset(parse_runtime_arn(a).arn for a in args.runtime_arn)
            if args.runtime_arn
            else None
        )
    except ValidationError as exc:
        raise ValueError(f"--runtime-arn: {exc.rule}") from None
    try:
        faults = [Fault.from_json(json.loads(text)) for text in args.fault]
    except ValueError as exc:
        raise ValueError(f"--fault: {exc}") from None
    return EmulatorConfig(
        agent_url=args.agent_url,
        region=args.region,
        credentials=tuple(credentials) or (LOCAL_CREDENTIALS,),
        accept_any_credentials=args.accept_any_credentials,
        runtime_arns=runtime_arns,
        cold_start=args.cold_start,
        init_timeout=args.init_timeout,
        idle_timeout=args.idle_timeout,
        max_lifetime=args.max_lifetime,
        rate_limit=args.rate_limit,
        max_sessions=args.max_sessions,
        max_clock_skew=args.max_clock_skew,
        max_presign_expires=args.max_presign_expires,
        max_payload=args.max_payload,
        ws_max_message_size=args.ws_max_message_size,
        faults=faults,
    )
