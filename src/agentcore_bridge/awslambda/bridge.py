"""The Lambda handler for API Gateway WebSocket APIs.

:class:`LambdaBridge` turns API Gateway's WebSocket events into AgentCore
calls and ``@connections`` posts. It keeps no state between events beyond
pooled connections and cached credentials: any execution environment can
handle any event of any connection, as Lambda requires.

How each event is handled:

- ``$connect``: the origin allowlist (403), the authorization hook (401 or
  403), the resume token in ``?session=`` (ignored when invalid), an
  optional warm-up of the agent session in another environment; the
  answer is 200 within a few milliseconds.
- a message (``$default`` or any custom route): the frame is parsed;
  ``invoke`` streams the agent's answer as numbered chunks and exactly one
  ``end`` or ``error``, coalesced into few posts (see ``_outbox``);
  ``cancel`` stops the invocation's agent session (the environment that
  streams, which is busy, then sends the terminal frame); ``ping`` is
  answered with ``pong``.
- ``$disconnect``: optionally stops the connection's agent session.
- warmer pings, session warm-ups and authorizer calls, see ``_events``.

Sessions: a connection's agent session id is derived from its
``connectionId`` with the session secret, so every environment computes
the same one. A ``session`` frame gives the client a token that resumes
the session on a later connection (docs/lambda.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from logging import ERROR, INFO, WARNING

from .. import protocol
from ..agentcore import Timeouts
from ..config import Settings, origin_allowed
from ..connections import MAX_POST_BYTES, endpoint_from_event
from ..credentials import Credentials, as_source
from ..exceptions import (
    AgentCoreError,
    AuthenticationError,
    BridgeError,
    FrameError,
    GoneError,
    SessionTokenError,
    ValidationError,
)
from ..invocation import InvocationFrames, error_for
from ..sessions import SESSION_ID_PATTERN, SessionTokens, derive_session_id
from ..sync.agentcore import AgentCoreClient
from ..sync.connections import ConnectionsClient
from ..sync.http import HTTPTransport, default_tls_context
from ..sync.lambda_api import LambdaClient
from . import _events
from ._log import LifecycleLog, logger, session_hash
from ._outbox import Outbox
from ._snapstart import register

# typing.TYPE_CHECKING without importing typing (docs/cold-start.md).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..credentials import CredentialSource
    from ._interfaces import Authorize, LambdaContext

__all__ = ["LambdaBridge"]

# Without BRIDGE_SESSION_SECRET every environment must still derive the
# same session id for a connection, so the key is a fixed, public one. Ids
# are then predictable from the connectionId, which only the client and
# API Gateway know; resume tokens, which need a real secret, are off.
_UNKEYED = b"agentcore-bridge: session ids without BRIDGE_SESSION_SECRET"

# Time kept back from the Lambda function's timeout to post the terminal
# frame once an invocation has to stop.
_DEADLINE_MARGIN = 2.0
# The last part of that margin is the terminal frame's alone: no other
# frame is posted in it (``_outbox``). It is no longer than the margin less
# the longest wait between two tries of a post (1 s), so a post that gives
# up for want of time only does so after the invocation was stopped.
_TERMINAL_TIME = 1.0
# A warmed environment stays busy at most this long, whatever a ping says.
_MAX_WARMER_HOLD = 10.0
# Longest a handshake waits for the warm-up request to be written.
_WARMUP_SEND_WAIT = 1.0
# The agent's answer to a warm-up is read and thrown away, up to this much.
_WARMUP_READ_LIMIT = 16 * 1024 * 1024


class _Stopper:
    """The first reason to stop an invocation early, set from any thread."""

    def __init__(self, cut: Callable[[], None]) -> None:
        self._cut = cut
        self._lock = threading.Lock()
        self.reason: str | None = None
        self.error: BaseException | None = None

    def stop(self, reason: str, error: BaseException | None = None) -> None:
        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
            self.error = error
        self._cut()


class LambdaBridge:
    """The Lambda adapter: call it as ``bridge(event, context)``.

    ``settings`` configure everything (``Settings.from_env()`` reads the
    environment; ``AGENTCORE_RUNTIME_ARN`` is required). Keyword arguments:

    - ``authorize``: an :data:`~agentcore_bridge.awslambda.Authorize` hook
      run at ``$connect`` (and when the function serves as the API's
      REQUEST authorizer);
    - ``credentials``: static credentials or a source for every AWS call
      (default: the environment, then the container endpoint SnapStart
      uses);
    - ``client_factory``: builds the AgentCore client on a transport (to set
      timeouts, retries or a FIPS endpoint); called again after a stream was
      cut, since cutting a stream closes its transport;
    - ``connections``: a :class:`ConnectionsClient` for every event,
      instead of one per API stage built from the events;
    - ``lambda_client``: the :class:`LambdaClient` for self-invocations;
    - ``snapstart``: register :meth:`before_snapshot` and
      :meth:`after_restore` as SnapStart hooks when Lambda's runtime offers
      them (build the bridge at import time for them to run).

    Raises :class:`~agentcore_bridge.exceptions.ValidationError` for a bad
    or missing setting.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        authorize: Authorize | None = None,
        credentials: Credentials | CredentialSource | None = None,
        client_factory: Callable[[HTTPTransport], AgentCoreClient] | None = None,
        connections: ConnectionsClient | None = None,
        lambda_client: LambdaClient | None = None,
        snapstart: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._runtime_arn = settings.require_runtime_arn()
        if settings.message_limit_bytes > MAX_POST_BYTES:
            # Every post above API Gateway's quota would fail with 413.
            raise ValidationError(
                "BRIDGE_MESSAGE_LIMIT_BYTES",
                f"must be at most {MAX_POST_BYTES} on API Gateway, its message quota",
            )
        self._authorize = authorize
        self._credentials = as_source(credentials)
        self._client_factory = client_factory or self._default_client
        self._clock = clock
        self._log = LifecycleLog(settings.log_format)

        # One transport for @connections and Lambda calls, another for
        # AgentCore: cutting an AgentCore stream closes its transport.
        self._transport = HTTPTransport()
        self._agent_transport = HTTPTransport()
        self._agent = self._client_factory(self._agent_transport)
        self._fixed_connections = connections
        self._connections: dict[str, ConnectionsClient] = {}
        self._lambda = lambda_client
        self._lock = threading.Lock()

        if settings.session_secret is not None:
            self._secret = settings.session_secret
            self._tokens: SessionTokens | None = SessionTokens(
                settings.session_secret, settings.session_ttl
            )
        else:
            self._secret = _UNKEYED
            self._tokens = None
            logger.warning(
                "BRIDGE_SESSION_SECRET is not set: agent session ids are derived "
                "without a secret and session resume tokens are disabled"
            )
        if snapstart:
            register(self.before_snapshot, self.after_restore)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **options: Any
    ) -> LambdaBridge:
        """A bridge configured by environment variables (see docs/lambda.md)."""
        return cls(Settings.from_env(environ), **options)

    def __call__(self, event: Mapping[str, Any], context: LambdaContext) -> Any:
        """Handle one Lambda event; return what API Gateway (or Lambda) expects."""
        kind = _events.classify(event, self.settings.warmer_key)
        if kind == _events.MESSAGE:
            return self._message(event, context)
        if kind == _events.CONNECT:
            return self._connect(event, context)
        if kind == _events.DISCONNECT:
            return self._disconnect(event, context)
        if kind == _events.WARMER:
            spec = _events.warmer_spec(event, self.settings.warmer_key) or {}
            return self._warmer(spec, context)
        if kind == _events.WARMUP:
            return self._warm_up(event[_events.WARMUP_KEY], context)
        if kind == _events.AUTHORIZER:
            return self._authorizer(event, context)
        self._log.write(WARNING, "unknown_event", requestId=context.aws_request_id)
        return {"statusCode": 400}

    # SnapStart.

    def before_snapshot(self) -> None:
        """Do the expensive set-up once, before Lambda takes the snapshot.

        The bridge itself (settings checked, clients made) is built by
        then. This loads the TLS context with its CA bundle, warms the
        protocol's encoder, and imports ``random``, which the first retry
        would otherwise import on a restored environment (it is reseeded
        after each restore).
        """
        import random  # noqa: F401, PLC0415 - into the snapshot, not the import

        default_tls_context()
        protocol.encode_end("warm", 0)

    def after_restore(self) -> None:
        """Make a restored snapshot this environment's own.

        Pooled sockets belong to the environment the snapshot was taken in;
        cached credentials too (SnapStart hands out new ones through the
        container endpoint); and ``random``'s state is the same in every
        environment restored from one snapshot, so retry jitter would fire
        in step. Nothing secret comes from ``random``: ids and tokens are
        read from ``os.urandom`` at every call, which keeps no state in the
        process. Clients passed to the constructor keep their
        own transports: reset those in a hook of your own.
        """
        self._transport.reset()
        self._agent_transport.reset()
        self._credentials.invalidate()
        import random  # noqa: PLC0415 - off the cold start

        random.seed()

    # $connect.

    def _connect(self, event: Mapping[str, Any], context: LambdaContext) -> Any:
        request = _events.request_context(event)
        fields = self._fields(event, context)
        denied = self._origin_denied(event)
        if denied:
            self._log.write(INFO, "connect_rejected", status=403, why=denied, **fields)
            return {"statusCode": 403}
        # Tokens are issued and checked by message events for the principal
        # they carry, an API Gateway authorizer's; the hook's own answer
        # reaches no later event, so it cannot be what a token is bound to.
        principal = _principal(_events.authorizer_context(event).get("principalId"))
        if self._authorize is not None:
            try:
                self._authorize(event)
            except AuthenticationError as exc:
                self._log.write(
                    INFO,
                    "connect_rejected",
                    status=exc.status,
                    why=exc.message,
                    **fields,
                )
                return {"statusCode": exc.status}
            except Exception:  # noqa: BLE001 - a bug in the hook: refuse, log it
                logger.exception("the authorization hook failed")
                return {"statusCode": 500}

        session_id = self._connection_session(event)
        token = _events.query_parameter(event, "session")
        resumed = False
        if token is not None:
            try:
                session_id = self._verify(token, principal)
                resumed = True
            except SessionTokenError as exc:
                # A browser cannot see why a handshake failed, so a stale
                # token must not lock the client out: it is ignored.
                self._log.write(INFO, "session_refused", why=exc.message, **fields)
        self._log.write(
            INFO,
            "connect",
            session=session_hash(session_id),
            resumed=resumed,
            sourceIp=(request.get("identity") or {}).get("sourceIp"),
            **fields,
        )
        if self.settings.warmup_payload is not None:
            self._start_warm_up(fields["connectionId"], session_id, context)
        return {"statusCode": 200}

    def _origin_denied(self, event: Mapping[str, Any]) -> str | None:
        origin = _events.header(event, "Origin")
        if origin_allowed(origin, self.settings.allowed_origins):
            return None
        return "origin not allowed"

    def _start_warm_up(
        self, connection_id: str, session_id: str, context: LambdaContext
    ) -> None:
        # The agent's cold start must run in another environment: a thread
        # left running here is frozen with this environment as soon as the
        # handler returns. So the function invokes itself (an Event
        # invocation, which Lambda queues), and the handshake waits only
        # until that request is written, not for Lambda's 202: the request
        # is then on its way whatever happens to this environment, and the
        # answer is read by the thread whenever the environment runs again.
        payload = {
            _events.WARMUP_KEY: {"connectionId": connection_id, "sessionId": session_id}
        }
        sent = threading.Event()
        function = context.invoked_function_arn

        def invoke() -> None:
            try:
                self._lambda_client().invoke(
                    function, payload, invocation_type="Event", on_sent=sent.set
                )
            except BridgeError as exc:
                self._log.write(
                    WARNING,
                    "warmup_failed",
                    connectionId=connection_id,
                    session=session_hash(session_id),
                    error=getattr(exc, "error_type", None) or type(exc).__name__,
                    sent=sent.is_set(),
                )
            finally:
                sent.set()

        thread = threading.Thread(
            target=invoke, name="agentcore-bridge-warmup", daemon=True
        )
        thread.start()
        # Writing takes microseconds on a kept-alive connection; a new one
        # needs its TCP and TLS set-up first. Never longer than this.
        sent.wait(_WARMUP_SEND_WAIT)

    # $disconnect.

    def _disconnect(self, event: Mapping[str, Any], context: LambdaContext) -> Any:
        request = _events.request_context(event)
        fields = self._fields(event, context)
        session_id = self._connection_session(event)
        self._log.write(
            INFO,
            "disconnect",
            session=session_hash(session_id),
            code=request.get("disconnectStatusCode"),
            reason=request.get("disconnectReason"),
            **fields,
        )
        if self.settings.stop_session_on_disconnect:
            self._stop_session(session_id, "disconnect", fields)
        return {"statusCode": 200}

    def _stop_session(self, session_id: str, why: str, fields: dict[str, Any]) -> None:
        try:
            self._agent.stop_session(session_id)
        except AgentCoreError as exc:
            # 404: the session had ended already (idle, stopped, never run).
            level = INFO if exc.status == 404 else WARNING
            self._log.write(
                level,
                "stop_session_failed",
                why=why,
                session=session_hash(session_id),
                error=exc.error_type,
                **fields,
            )
        except BridgeError as exc:
            self._log.write(
                WARNING,
                "stop_session_failed",
                why=why,
                session=session_hash(session_id),
                error=type(exc).__name__,
                **fields,
            )

    # Messages.

    def _message(self, event: Mapping[str, Any], context: LambdaContext) -> Any:
        fields = self._fields(event, context)
        connections = self._connections_for(event)
        connection_id = fields["connectionId"]
        body = event.get("body")
        if event.get("isBase64Encoded") or not isinstance(body, str):
            # API Gateway refuses binary frames itself; this is for events
            # that did not come from it.
            body = body if isinstance(body, str) else ""
            binary = True
        else:
            binary = False
        try:
            frame = protocol.parse_client_frame(
                body, binary=binary, max_frame_bytes=self.settings.max_frame_bytes
            )
        except FrameError as exc:
            self._log.write(INFO, "bad_frame", code=exc.code, id=exc.id, **fields)
            self._post_quietly(
                connections, connection_id, protocol.encode_frame_error(exc)
            )
            return {"statusCode": 200}

        if isinstance(frame, protocol.Ping):
            logger.debug("ping on %s", connection_id)
            self._post_quietly(
                connections, connection_id, protocol.encode_pong(frame.id)
            )
        elif isinstance(frame, protocol.Cancel):
            self._cancel(event, frame, fields, connections)
        else:
            self._invoke(event, context, frame, fields, connections)
        return {"statusCode": 200}

    def _cancel(
        self,
        event: Mapping[str, Any],
        frame: protocol.Cancel,
        fields: dict[str, Any],
        connections: ConnectionsClient,
    ) -> None:
        # The environment streaming this invocation is busy with it and
        # cannot be reached; stopping the agent session ends its stream,
        # and that environment then sends the terminal frame.
        principal = _principal(_events.authorizer_context(event).get("principalId"))
        session_id = self._connection_session(event)
        if frame.session is not None:
            try:
                session_id = self._verify(frame.session, principal)
            except SessionTokenError as exc:
                self._log.write(INFO, "session_refused", why=exc.message, **fields)
                return
        self._log.write(
            INFO, "cancel", id=frame.id, session=session_hash(session_id), **fields
        )
        self._stop_session(session_id, "cancel", fields)

    def _invoke(
        self,
        event: Mapping[str, Any],
        context: LambdaContext,
        frame: protocol.Invoke,
        fields: dict[str, Any],
        connections: ConnectionsClient,
    ) -> None:
        connection_id = fields["connectionId"]
        principal = _principal(_events.authorizer_context(event).get("principalId"))
        session_id = self._connection_session(event)
        if frame.session is not None:
            try:
                session_id = self._verify(frame.session, principal)
            except SessionTokenError as exc:
                self._log.write(
                    INFO, "session_refused", id=frame.id, why=exc.message, **fields
                )
                text = protocol.encode_error(frame.id, exc.code, exc.message)
                self._post_quietly(connections, connection_id, text)
                return

        started = time.monotonic()
        fields = {**fields, "id": frame.id, "session": session_hash(session_id)}
        self._log.write(INFO, "invoke_start", **fields)
        agent = self._agent
        transport = self._agent_transport
        stopper = _Stopper(transport.abort)
        remaining = context.get_remaining_time_in_millis() / 1000.0
        outbox = Outbox(
            lambda text, by: connections.post(connection_id, text, deadline=by),
            limit=self.settings.message_limit_bytes,
            window=self.settings.coalesce_window,
            batch_bytes=self.settings.coalesce_bytes,
            check=lambda: _check(connections, connection_id),
            check_interval=self.settings.connection_check_interval,
            on_stop=lambda exc: stopper.stop(
                "gone" if isinstance(exc, GoneError) else "failed", exc
            ),
            deadline=started + remaining - _TERMINAL_TIME,
        )
        frames = InvocationFrames(frame.id)
        if self._tokens is not None:
            token, expires = self._tokens.issue(session_id, principal, self._clock())
            outbox.put(protocol.encode_session(token, expires), lazy=True)

        def out_of_time() -> None:
            outbox.expire()
            stopper.stop("deadline")

        limit = self._time_limit(context)
        timer = threading.Timer(limit, out_of_time)
        timer.daemon = True
        outbox.start()
        timer.start()
        try:
            failure = self._stream(agent, frame, session_id, frames, outbox, stopper)
        finally:
            timer.cancel()
            outbox.close()

        if stopper.reason is not None:
            # The stream was cut, which closed its transport: the next
            # invocation needs a new one.
            self._renew_agent(transport)
        if stopper.reason == "failed":
            # Posting failed for another reason than a gone client, so no
            # terminal frame reached the client (even one already queued):
            # one last try to send one.
            code = (
                protocol.RATE_LIMITED
                if _throttled(stopper.error)
                else protocol.INTERNAL
            )
            failure = (code, WARNING)
            text = protocol.encode_error(
                frame.id, code, "the bridge could not deliver the answer"
            )
            self._post_quietly(connections, connection_id, text)

        ms = round((time.monotonic() - started) * 1000)
        done = {
            **fields,
            "chunks": frames.seq,
            "messages": outbox.messages,
            "dropped": outbox.dropped or None,
            "ms": ms,
        }
        if stopper.reason == "gone":
            self._log.write(INFO, "gone", **done)
        elif failure is not None or frames.terminal == "error":
            code, level = failure or (protocol.TIMEOUT, INFO)
            self._log.write(
                level, "invoke_error", code=code, stop=stopper.reason, **done
            )
        else:
            self._log.write(INFO, "invoke_end", **done)

    def _stream(
        self,
        agent: AgentCoreClient,
        frame: protocol.Invoke,
        session_id: str,
        frames: InvocationFrames,
        outbox: Outbox,
        stopper: _Stopper,
    ) -> tuple[str, int] | None:
        """Read the agent's answer into ``outbox``; the failure's code and log level."""
        try:
            body = frame.payload_json().encode("utf-8")
            with agent.invoke(body, session_id=session_id) as stream:
                for agent_event in stream:
                    if stopper.reason is not None:
                        break
                    chunk = frames.chunk(agent_event.data)
                    if chunk is not None:
                        outbox.put(chunk)
        except BridgeError as exc:
            if stopper.reason is None:
                text = frames.fail(exc)
                if text is not None:
                    outbox.put(text, flush=True)
                code = error_for(exc)[0]
                return code, WARNING if code in _SERVICE_CODES else INFO
        except Exception:  # noqa: BLE001 - still owes the client a terminal frame
            logger.exception("invocation failed inside the bridge")
            text = frames.error(protocol.INTERNAL, "the bridge failed")
            if text is not None:
                outbox.put(text, flush=True)
            return protocol.INTERNAL, ERROR
        else:
            if stopper.reason is None:
                text = frames.end()
                if text is not None:
                    outbox.put(text, flush=True)
                return None

        if stopper.reason == "deadline":
            text = frames.error(
                protocol.TIMEOUT, "the invocation ran out of time on the bridge"
            )
            if text is not None:
                outbox.put(text, flush=True)
            return protocol.TIMEOUT, WARNING
        return None

    def _time_limit(self, context: LambdaContext) -> float:
        remaining = context.get_remaining_time_in_millis() / 1000.0
        limit = remaining - _DEADLINE_MARGIN
        if self.settings.invoke_timeout:
            # BRIDGE_INVOKE_TIMEOUT=0 means no limit of the bridge's own, as
            # on the server; the function's own timeout still applies.
            limit = min(self.settings.invoke_timeout, limit)
        return max(0.0, limit)

    # Warmers and warm-ups.

    def _warmer(self, spec: Mapping[str, Any], context: LambdaContext) -> Any:
        hold = _number(spec.get("hold"), self.settings.warmer_hold)
        hold = min(max(hold, 0.0), _MAX_WARMER_HOLD)
        if spec.get("fanout"):
            # One of the overlapping invocations: stay busy so that the
            # others land in other environments.
            time.sleep(hold)
            return {"warmed": 1}

        wanted = int(_number(spec.get("concurrency"), 1))
        concurrency = min(max(wanted, 1), self.settings.warmer_max_concurrency)
        if concurrency == 1:
            # This environment is the one kept warm, and it is warm now.
            self._log.write(
                INFO, "warmer", requestId=context.aws_request_id, concurrency=1
            )
            return {"warmed": 1, "failed": 0}
        payload = {self.settings.warmer_key: {"fanout": True, "hold": hold}}
        function = context.invoked_function_arn
        results: list[str | None] = [None] * (concurrency - 1)

        def fan_out(index: int) -> None:
            # RequestResponse keeps this environment busy until every other
            # one has answered, so none of them is free to take another's
            # invocation: each lands in an environment of its own.
            try:
                answer = self._lambda_client().invoke(function, payload)
                results[index] = answer.function_error
            except BridgeError as exc:
                results[index] = type(exc).__name__

        threads = [
            threading.Thread(target=fan_out, args=(i,), daemon=True)
            for i in range(concurrency - 1)
        ]
        for thread in threads:
            thread.start()
        time.sleep(hold)
        for thread in threads:
            thread.join()
        failed = [r for r in results if r is not None]
        self._log.write(
            INFO if not failed else WARNING,
            "warmer",
            requestId=context.aws_request_id,
            concurrency=concurrency,
            failed=len(failed) or None,
        )
        return {"warmed": concurrency - len(failed), "failed": len(failed)}

    def _warm_up(self, spec: Mapping[str, Any], context: LambdaContext) -> Any:
        session_id = spec.get("sessionId")
        connection_id = spec.get("connectionId")
        fields = {"connectionId": connection_id, "requestId": context.aws_request_id}
        if not isinstance(session_id, str) or not SESSION_ID_PATTERN.fullmatch(
            session_id
        ):
            self._log.write(WARNING, "warmup_failed", error="bad session id", **fields)
            return {"warmedUp": False}
        started = time.monotonic()
        try:
            with self._agent.invoke(
                self.settings.warmup_payload, session_id=session_id
            ) as stream:
                read = 0
                for agent_event in stream:
                    read += len(str(agent_event.data))
                    if read > _WARMUP_READ_LIMIT:
                        break
        except BridgeError as exc:
            self._log.write(
                WARNING,
                "warmup_failed",
                session=session_hash(session_id),
                error=getattr(exc, "error_type", type(exc).__name__),
                **fields,
            )
            return {"warmedUp": False}
        ms = round((time.monotonic() - started) * 1000)
        self._log.write(
            INFO, "warmup", session=session_hash(session_id), ms=ms, **fields
        )
        return {"warmedUp": True}

    # The function as the API's REQUEST authorizer.

    def _authorizer(self, event: Mapping[str, Any], context: LambdaContext) -> Any:
        fields = self._fields(event, context)
        denied = self._origin_denied(event)
        principal: str | None = None
        if denied is None and self._authorize is not None:
            try:
                principal = self._authorize(event)
            except AuthenticationError as exc:
                self._log.write(
                    INFO,
                    "authorizer_denied",
                    status=exc.status,
                    why=exc.message,
                    **fields,
                )
                if exc.status == 401:
                    # What API Gateway turns into 401 Unauthorized.
                    raise RuntimeError("Unauthorized") from None
                denied = exc.message
        principal_id = principal or "anonymous"
        allow = denied is None
        document: dict[str, Any] = {
            "principalId": principal_id,
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Action": "execute-api:Invoke",
                        "Effect": "Allow" if allow else "Deny",
                        "Resource": event.get("methodArn"),
                    }
                ],
            },
        }
        token = _events.query_parameter(event, "session")
        if allow and token is not None:
            try:
                # Every later event of the connection carries this context:
                # the resumed session follows the connection without a store.
                session_id = self._verify(token, principal_id)
                document["context"] = {"agentcoreSessionId": session_id}
            except SessionTokenError as exc:
                self._log.write(INFO, "session_refused", why=exc.message, **fields)
        self._log.write(INFO, "authorizer", allowed=allow, why=denied, **fields)
        return document

    # Helpers.

    def _fields(
        self, event: Mapping[str, Any], context: LambdaContext
    ) -> dict[str, Any]:
        request = _events.request_context(event)
        return {
            "connectionId": request.get("connectionId"),
            "requestId": context.aws_request_id,
            "apiRequestId": request.get("requestId"),
        }

    def _connection_session(self, event: Mapping[str, Any]) -> str:
        resumed = _events.authorizer_context(event).get("agentcoreSessionId")
        if isinstance(resumed, str) and SESSION_ID_PATTERN.fullmatch(resumed):
            return resumed
        connection_id = _events.request_context(event).get("connectionId")
        if not isinstance(connection_id, str) or not connection_id:
            raise ValidationError("connectionId", "the event has no connectionId")
        return derive_session_id(self._secret, connection_id)

    def _verify(self, token: str, principal: str | None) -> str:
        if self._tokens is None:
            raise SessionTokenError(
                "invalid", "session tokens are not enabled on this bridge"
            )
        return self._tokens.verify(token, principal, self._clock())

    def _connections_for(self, event: Mapping[str, Any]) -> ConnectionsClient:
        if self._fixed_connections is not None:
            return self._fixed_connections
        region = self._region()
        endpoint = endpoint_from_event(
            event, region, self.settings.connections_endpoint_url
        )
        with self._lock:
            client = self._connections.get(endpoint)
            if client is None:
                client = ConnectionsClient(
                    endpoint,
                    region=region,
                    credentials=self._credentials,
                    transport=self._transport,
                )
                self._connections[endpoint] = client
            return client

    def _lambda_client(self) -> LambdaClient:
        with self._lock:
            if self._lambda is None:
                self._lambda = LambdaClient(
                    region=self._region(),
                    endpoint_url=self.settings.lambda_endpoint_url,
                    credentials=self._credentials,
                    transport=self._transport,
                )
            return self._lambda

    def _region(self) -> str:
        if self.settings.region is not None:
            return self.settings.region
        # Lambda always sets AWS_REGION; elsewhere the agent's region is
        # the best guess for the API's.
        return self._runtime_arn.split(":")[3]

    def _default_client(self, transport: HTTPTransport) -> AgentCoreClient:
        return AgentCoreClient(
            self._runtime_arn,
            qualifier=self.settings.qualifier,
            endpoint_url=self.settings.endpoint_url,
            credentials=self._credentials,
            transport=transport,
            timeouts=Timeouts(total=None),
        )

    def _renew_agent(self, cut: HTTPTransport) -> None:
        with self._lock:
            if self._agent_transport is cut:
                self._agent_transport = HTTPTransport()
                self._agent = self._client_factory(self._agent_transport)

    def _post_quietly(
        self, connections: ConnectionsClient, connection_id: str, text: str
    ) -> None:
        """Post one frame (split if needed); a gone client is not an error here."""
        try:
            for part in protocol.split_frame(text, self.settings.message_limit_bytes):
                connections.post(connection_id, part)
        except GoneError:
            self._log.write(INFO, "gone", connectionId=connection_id)
        except BridgeError as exc:
            self._log.write(
                WARNING,
                "post_failed",
                connectionId=connection_id,
                error=type(exc).__name__,
            )


_SERVICE_CODES = frozenset(
    {protocol.AGENT_UNAVAILABLE, protocol.RATE_LIMITED, protocol.TIMEOUT}
)


def _check(connections: ConnectionsClient, connection_id: str) -> None:
    connections.get(connection_id)


def _principal(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: object, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    # JSON's 1e999 parses as infinity (and Python's parser takes NaN):
    # neither is a count or a duration, and int() or sleep() would raise.
    number = float(value)
    return number if math.isfinite(number) else default


def _throttled(error: BaseException | None) -> bool:
    return isinstance(error, BridgeError) and getattr(error, "status", 0) == 429
