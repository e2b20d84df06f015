/*
 * agentcore-bridge client, protocol v1. No dependencies.
 *
 * As a plain script:   <script src="bridge-client.js"></script>
 *                      const client = new AgentCoreBridge.BridgeClient(url);
 * As an ES module:     import { BridgeClient } from "./bridge-client.module.js";
 * In Node (CommonJS):  const { BridgeClient } = require("./bridge-client.js");
 *
 *   const client = new AgentCoreBridge.BridgeClient("wss://example/prod");
 *   const call = client.invoke({ prompt: "Hello" }, {
 *     onChunk(data, seq) { console.log(seq, data); },
 *   });
 *   await call.done;          // resolves on "end", rejects with a BridgeError
 *   call.cancel();            // asks the bridge to stop it
 *
 * The client reconnects with exponential backoff, joins split ("part")
 * frames, unpacks "batch" frames, delivers each invocation's chunks in
 * "seq" order, and keeps the bridge's session token (in localStorage when
 * it can). It sends the token in the URL of every (re)connect and with
 * every invoke, so an agent session survives a reconnect or a page reload.
 * The wire format is described in docs/protocol.md.
 */
(function (root) {
  "use strict";

  const PROTOCOL_VERSION = 1;

  // Ids: 1 to 64 printable ASCII characters other than space, '"' and '\'.
  const ID_PATTERN = /^[!#-[\]-~]{1,64}$/;

  const DEFAULT_STORAGE_KEY = "agentcore-bridge.session";

  // The query parameter that resumes a session on connect.
  const SESSION_PARAMETER = "session";
  const RESUME_MODES = ["url", "invoke"];

  // How many chunks that arrived ahead of a missing one are kept per
  // invocation before the invocation is failed.
  const MAX_EARLY_CHUNKS = 1024;

  /** The bridge reported an error, or the client lost the invocation. */
  class BridgeError extends Error {
    constructor(code, message, retryable, id) {
      super(message);
      this.name = "BridgeError";
      this.code = code;
      this.retryable = Boolean(retryable);
      this.id = id === undefined ? null : id;
    }
  }

  /** The bridge sent something that breaks the protocol. */
  class ProtocolError extends Error {
    constructor(message) {
      super(message);
      this.name = "ProtocolError";
    }
  }

  function isId(value) {
    return typeof value === "string" && ID_PATTERN.test(value);
  }

  function isCount(value) {
    return typeof value === "number" && Number.isInteger(value) && value >= 0;
  }

  /*
   * Joins "part" frames back into the frames they were cut from. Parts of
   * one message arrive in order; parts of different messages may
   * interleave. Bounded like the Python Reassembler: maxPending messages
   * in progress, maxParts parts each, maxChars characters (UTF-16 code
   * units) buffered in all; a message with no new part for maxAgeMs is
   * dropped, and so is a message that breaks a rule (later parts of a
   * dropped message are ignored).
   */
  class Reassembler {
    constructor(options) {
      const o = options || {};
      this.maxPending = o.maxPending || 16;
      this.maxParts = o.maxParts || 4096;
      this.maxChars = o.maxChars || 128 * 1024 * 1024;
      this.maxAgeMs = o.maxAgeMs || 120000;
      this.dropped = 0;
      this._pending = new Map();
      this._discarded = new Set();
      this._chars = 0;
    }

    get pending() {
      return this._pending.size;
    }

    /*
     * Takes one decoded part frame received at `now` (milliseconds).
     * Returns the original frame's text when the part completes it, else
     * null. Throws ProtocolError for a bad part; carry on with the next.
     */
    feed(part, now) {
      if (now === undefined) now = Date.now();
      this._expire(now);
      const { of, n, total, text } = part;
      if (!isId(of)) throw new ProtocolError("part: bad 'of' field");
      if (!isCount(n) || !isCount(total) || n >= total) {
        throw new ProtocolError(`message ${of}: n and total must be integers, 0 <= n < total`);
      }
      if (typeof text !== "string") {
        throw new ProtocolError(`message ${of}: text must be a string`);
      }
      if (this._discarded.has(of)) return null;

      let partial = this._pending.get(of);
      if (partial === undefined) {
        if (n !== 0) {
          this._discard(of);
          throw new ProtocolError(
            `message ${of}: part ${n} arrived without part 0 (parts lost or sent out of order)`);
        }
        if (total > this.maxParts) {
          this._discard(of);
          throw new ProtocolError(
            `message ${of}: ${total} parts is over the limit of ${this.maxParts}`);
        }
        if (total === 1) return text;
        if (this._pending.size >= this.maxPending) {
          this._discard(of);
          throw new ProtocolError(
            `message ${of}: more than ${this.maxPending} split messages in progress at once`);
        }
        partial = { total, texts: [], chars: 0, lastSeen: now };
        this._pending.set(of, partial);
      } else if (total !== partial.total) {
        this._drop(of);
        throw new ProtocolError(
          `message ${of}: part ${n} says ${total} parts, part 0 said ${partial.total}`);
      } else if (n !== partial.texts.length) {
        const expected = partial.texts.length;
        this._drop(of);
        const what = n < expected ? "repeated" : "arrived early (a part is missing)";
        throw new ProtocolError(`message ${of}: part ${n} ${what}; expected ${expected}`);
      }

      if (this._chars + text.length > this.maxChars) {
        this._drop(of);
        throw new ProtocolError(`message ${of}: more than ${this.maxChars} characters buffered`);
      }
      partial.texts.push(text);
      partial.chars += text.length;
      partial.lastSeen = now;
      this._chars += text.length;
      if (partial.texts.length < partial.total) return null;
      this._pending.delete(of);
      this._chars -= partial.chars;
      return partial.texts.join("");
    }

    _expire(now) {
      for (const [of, partial] of this._pending) {
        if (now - partial.lastSeen > this.maxAgeMs) this._drop(of);
      }
    }

    _drop(of) {
      const partial = this._pending.get(of);
      this._pending.delete(of);
      this._chars -= partial.chars;
      this._discard(of);
    }

    _discard(of) {
      this.dropped += 1;
      this._discarded.add(of);
      if (this._discarded.size > 64) {
        this._discarded.delete(this._discarded.values().next().value);
      }
    }
  }

  function loadFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (_) {
      throw new ProtocolError("bridge message is not valid JSON");
    }
    if (frame === null || typeof frame !== "object" || Array.isArray(frame) ||
        typeof frame.type !== "string") {
      throw new ProtocolError("bridge message is not a JSON object with a type");
    }
    return frame;
  }

  function unbatch(batch) {
    const inner = batch.frames;
    if (!Array.isArray(inner) || inner.length === 0) {
      throw new ProtocolError("batch: frames must be a non-empty list");
    }
    for (const frame of inner) {
      if (frame === null || typeof frame !== "object" || Array.isArray(frame) ||
          typeof frame.type !== "string") {
        throw new ProtocolError("batch: every frame must be a JSON object with a type");
      }
      if (frame.type === "batch" || frame.type === "part") {
        throw new ProtocolError("batch: a batch cannot carry batch or part frames");
      }
    }
    return inner;
  }

  /*
   * Turns the bridge's text messages into frame objects: feed() returns
   * the frames a message carries, in order (none for a part that does not
   * complete its message, the inner frames of a batch, else one). Throws
   * ProtocolError for a bad message, and then returns nothing of it.
   */
  class FrameDecoder {
    constructor(reassembler) {
      this.reassembler = reassembler instanceof Reassembler
        ? reassembler
        : new Reassembler(reassembler);
    }

    feed(message, now) {
      let frame = loadFrame(message);
      if (frame.type === "part") {
        const text = this.reassembler.feed(frame, now);
        if (text === null) return [];
        frame = loadFrame(text);
        if (frame.type === "part") {
          throw new ProtocolError("a reassembled frame is itself a part");
        }
      }
      if (frame.type === "batch") return unbatch(frame);
      return [frame];
    }
  }

  function defaultStorage() {
    // Reading localStorage throws in some sandboxed frames and privacy modes.
    try {
      return root.localStorage || null;
    } catch (_) {
      return null;
    }
  }

  function randomSuffix() {
    const cryptoApi = root.crypto;
    if (cryptoApi && typeof cryptoApi.getRandomValues === "function") {
      const bytes = cryptoApi.getRandomValues(new Uint8Array(6));
      return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    }
    return Math.random().toString(16).slice(2, 14);
  }

  // `url` with the query parameter `name` set to `value`.
  function withQuery(url, name, value) {
    if (typeof root.URL === "function") {
      try {
        const parsed = new root.URL(url);
        parsed.searchParams.set(name, value);
        return parsed.toString();
      } catch (_) { /* not an absolute URL: edit the text below */ }
    }
    const hash = url.indexOf("#");
    const base = hash < 0 ? url : url.slice(0, hash);
    const separator = base.includes("?") ? "&" : "?";
    return `${base}${separator}${encodeURIComponent(name)}=${encodeURIComponent(value)}`;
  }

  function report(error) {
    if (typeof root.reportError === "function") root.reportError(error);
    else if (root.console) root.console.error(error);
  }

  /*
   * A connection to the bridge that survives disconnects.
   *
   * options:
   *   WebSocket    constructor to use (default: the global WebSocket)
   *   storage      {getItem, setItem, removeItem} for the session token
   *                (default: localStorage when usable; null keeps it in memory)
   *   storageKey   key in storage (default "agentcore-bridge.session")
   *   resume       how the saved token resumes its session on connect:
   *                "url" (default) adds it as the `session` query parameter
   *                of every (re)connect, so that the session a bridge
   *                announces on connect (the server does) is the resumed
   *                one; "invoke" keeps it out of URLs and sends it with
   *                invokes only, which suits a bridge that announces
   *                sessions only with answers (the Lambda adapter)
   *   protocols    WebSocket subprotocols to offer: a string, an array, or
   *                a function returning one, called at every (re)connect
   *                (for example () => ["agentcore-bridge", "bearer." + token])
   *   backoff      {initialMs: 500, maxMs: 30000, factor: 2}: reconnect
   *                delays, with full jitter; reset once a frame arrives
   *   keepAliveMs  ping period while connected (default 50000, 0 = never):
   *                under the 60 s idle timeout of a default ALB and the
   *                10 min of API Gateway
   *   maxQueued    invocations that may wait for a connection (default 64)
   *   reassembler  Reassembler options (maxPending, maxParts, maxChars, maxAgeMs)
   *   onOpen()     connected
   *   onClose({code, reason, willReconnect})
   *   onSession({session, expires})  a new session token arrived
   *   onError(error)  an error frame with a null id (BridgeError), or a
   *                message that broke the protocol (ProtocolError)
   */
  class BridgeClient {
    constructor(url, options) {
      const o = options || {};
      this.url = url;
      this._WebSocket = o.WebSocket || root.WebSocket;
      this._storage = o.storage === undefined ? defaultStorage() : o.storage;
      this._storageKey = o.storageKey || DEFAULT_STORAGE_KEY;
      this._resume = o.resume === undefined ? "url" : o.resume;
      if (!RESUME_MODES.includes(this._resume)) {
        throw new TypeError(`resume must be one of ${RESUME_MODES.join(", ")}`);
      }
      this._protocols = o.protocols;
      const backoff = o.backoff || {};
      this._initialMs = backoff.initialMs === undefined ? 500 : backoff.initialMs;
      this._maxMs = backoff.maxMs === undefined ? 30000 : backoff.maxMs;
      this._factor = backoff.factor === undefined ? 2 : backoff.factor;
      this._keepAliveMs = o.keepAliveMs === undefined ? 50000 : o.keepAliveMs;
      this._maxQueued = o.maxQueued === undefined ? 64 : o.maxQueued;
      this._reassemblerOptions = o.reassembler || {};
      this._handlers = {
        onOpen: o.onOpen, onClose: o.onClose, onSession: o.onSession, onError: o.onError,
      };

      this._socket = null;
      this._decoder = null;
      this._started = false;
      this._closed = false;
      this._attempt = 0;
      this._retryTimer = null;
      this._keepAliveTimer = null;
      this._counter = 0;
      this._suffix = randomSuffix();
      this._invocations = new Map();  // id -> invocation state
      this._queue = [];               // invocations waiting for a connection
      this._pings = new Map();        // id -> {resolve, reject}
      this._session = this._loadSession();
    }

    /** The current session token and its expiry (Unix seconds), or null. */
    get session() {
      if (this._session && this._session.expires * 1000 <= Date.now()) {
        this.forgetSession();
      }
      return this._session;
    }

    /** Drops the session token: the next invoke starts a new agent session. */
    forgetSession() {
      this._session = null;
      if (this._storage) {
        try {
          this._storage.removeItem(this._storageKey);
        } catch (_) { /* storage full or disabled: memory is enough */ }
      }
    }

    get connected() {
      return this._socket !== null && this._socket.readyState === 1;
    }

    /** Opens the connection (invoke() does it too). Idempotent. */
    connect() {
      if (this._closed) throw new BridgeError("disconnected", "the client is closed", false);
      if (this._started) return;
      this._started = true;
      this._open();
    }

    /** Closes for good: pending invocations and pings fail. */
    close() {
      this._closed = true;
      clearTimeout(this._retryTimer);
      this._stopKeepAlive();
      const error = (id) => new BridgeError("disconnected", "the client was closed", false, id);
      const queued = this._queue;
      this._queue = [];
      for (const inv of queued) this._finish(inv, error(inv.id));
      this._failInFlight(error);
      if (this._socket) {
        const socket = this._socket;
        this._socket = null;
        socket.close(1000);
      }
    }

    /*
     * Runs the agent on `payload`. options: id (default: generated),
     * onChunk(data, seq). Returns {id, done, cancel()}: `done` resolves
     * with {id, chunks} on "end" and rejects with a BridgeError on
     * "error" or when the connection drops while the invocation runs.
     */
    invoke(payload, options) {
      const o = options || {};
      const id = o.id === undefined ? this._newId("i") : o.id;
      if (!isId(id)) {
        throw new TypeError("id must be 1 to 64 printable ASCII characters other than space, '\"' and '\\'");
      }
      if (this._invocations.has(id)) throw new Error(`invocation ${id} is still running`);
      if (this._closed) throw new BridgeError("disconnected", "the client is closed", false, id);

      let resolve, reject;
      const done = new Promise((res, rej) => { resolve = res; reject = rej; });
      const inv = {
        id, payload, onChunk: o.onChunk, resolve, reject,
        sent: false, sentSession: null, nextSeq: 0, early: new Map(), endSeq: null,
      };
      if (!this.connected && this._queue.length >= this._maxQueued) {
        reject(new BridgeError("too_many_invocations",
          "too many invocations are waiting for a connection", true, id));
      } else {
        this._invocations.set(id, inv);
        if (this.connected) this._sendInvoke(inv);
        else this._queue.push(inv);
        this.connect();
      }
      return { id, done, cancel: () => this.cancel(id) };
    }

    /*
     * Asks the bridge to stop invocation `id`; its `done` settles with the
     * bridge's answer. An invocation not sent yet fails at once.
     */
    cancel(id) {
      const inv = this._invocations.get(id);
      if (inv === undefined) return;
      if (!inv.sent) {
        this._queue = this._queue.filter((queued) => queued !== inv);
        this._finish(inv, new BridgeError("cancelled", "cancelled before it was sent", false, id));
        return;
      }
      // The token tells a bridge without state (Lambda) which agent
      // session to stop.
      const frame = { type: "cancel", id };
      if (inv.sentSession !== null) frame.session = inv.sentSession;
      this._send(frame);
    }

    /** Sends a ping; resolves on the matching pong. */
    ping() {
      if (!this.connected) {
        return Promise.reject(new BridgeError("disconnected", "not connected", true));
      }
      const id = this._newId("p");
      return new Promise((resolve, reject) => {
        this._pings.set(id, { resolve, reject });
        this._send({ type: "ping", id });
      });
    }

    // Connection lifecycle.

    _open() {
      let socket;
      try {
        socket = this._newSocket();
      } catch (error) {
        this._safe("onError", error);
        this._scheduleReconnect();
        return;
      }
      this._socket = socket;
      this._decoder = new FrameDecoder(this._reassemblerOptions);
      socket.onopen = () => {
        if (socket !== this._socket) return;
        this._startKeepAlive();
        const queued = this._queue;
        this._queue = [];
        for (const inv of queued) this._sendInvoke(inv);
        this._safe("onOpen");
      };
      socket.onmessage = (event) => {
        if (socket === this._socket) this._receive(event.data);
      };
      socket.onclose = (event) => {
        if (socket !== this._socket) return;
        this._socket = null;
        this._stopKeepAlive();
        // The bridge cannot carry an invocation over to a new connection:
        // its output would go to the old one.
        this._failInFlight((id) => new BridgeError(
          "disconnected", "the connection closed before the invocation ended", true, id));
        const willReconnect = !this._closed;
        this._safe("onClose", { code: event.code, reason: event.reason, willReconnect });
        if (willReconnect) this._scheduleReconnect();
      };
      // Errors are followed by a close event, which does the work.
      socket.onerror = () => {};
    }

    _newSocket() {
      // Both are worked out again at every (re)connect: the token may have
      // changed since the last one, and so may a bearer token.
      const current = this._resume === "url" ? this.session : null;
      const url = current ? withQuery(this.url, SESSION_PARAMETER, current.session) : this.url;
      const protocols = typeof this._protocols === "function"
        ? this._protocols()
        : this._protocols;
      if (protocols === undefined || protocols === null) return new this._WebSocket(url);
      return new this._WebSocket(url, protocols);
    }

    _scheduleReconnect() {
      if (this._closed) return;
      const ceiling = Math.min(this._maxMs, this._initialMs * Math.pow(this._factor, this._attempt));
      this._attempt += 1;
      this._retryTimer = setTimeout(() => {
        if (!this._closed) this._open();
      }, Math.random() * ceiling);
    }

    _startKeepAlive() {
      if (this._keepAliveMs > 0) {
        this._keepAliveTimer = setInterval(() => {
          this.ping().catch(() => {});
        }, this._keepAliveMs);
      }
    }

    _stopKeepAlive() {
      clearInterval(this._keepAliveTimer);
      this._keepAliveTimer = null;
    }

    _failInFlight(makeError) {
      for (const inv of Array.from(this._invocations.values())) {
        if (inv.sent) this._finish(inv, makeError(inv.id));
      }
      for (const [id, ping] of this._pings) ping.reject(makeError(id));
      this._pings.clear();
    }

    // Sending.

    _send(frame) {
      this._socket.send(JSON.stringify(frame));
    }

    _sendInvoke(inv) {
      // The token goes with every invoke: a stateless bridge (Lambda)
      // remembers nothing between frames.
      const current = this.session;
      const frame = { type: "invoke", id: inv.id, payload: inv.payload };
      if (current) frame.session = current.session;
      inv.sent = true;
      inv.sentSession = current ? current.session : null;
      this._send(frame);
    }

    _newId(prefix) {
      this._counter += 1;
      return `${prefix}${this._counter.toString(36)}-${this._suffix}`;
    }

    // Receiving.

    _receive(data) {
      let frames;
      try {
        if (typeof data !== "string") throw new ProtocolError("bridge sent a binary message");
        frames = this._decoder.feed(data, Date.now());
      } catch (error) {
        this._safe("onError", error);
        return;
      }
      for (const frame of frames) this._dispatch(frame);
    }

    _dispatch(frame) {
      this._attempt = 0;
      switch (frame.type) {
        case "chunk": this._onChunk(frame); break;
        case "end": this._onEnd(frame); break;
        case "error": this._onError(frame); break;
        case "session": this._onSession(frame); break;
        case "pong": this._onPong(frame); break;
        default: break;  // a frame type from a later protocol version
      }
    }

    _onChunk(frame) {
      const inv = this._invocations.get(frame.id);
      if (inv === undefined || !isCount(frame.seq) || frame.seq < inv.nextSeq) return;
      if (frame.seq > inv.nextSeq) {
        inv.early.set(frame.seq, frame.data);
        if (inv.early.size > MAX_EARLY_CHUNKS) {
          this._finish(inv, new BridgeError("protocol",
            `chunk ${inv.nextSeq} never arrived`, true, inv.id));
        }
        return;
      }
      this._deliver(inv, frame.data);
      while (inv.early.has(inv.nextSeq)) {
        const data = inv.early.get(inv.nextSeq);
        inv.early.delete(inv.nextSeq);
        this._deliver(inv, data);
      }
      this._maybeEnd(inv);
    }

    _deliver(inv, data) {
      const seq = inv.nextSeq;
      inv.nextSeq += 1;
      if (typeof inv.onChunk === "function") {
        try {
          inv.onChunk(data, seq);
        } catch (error) {
          report(error);
        }
      }
    }

    _onEnd(frame) {
      const inv = this._invocations.get(frame.id);
      if (inv === undefined || !isCount(frame.seq)) return;
      inv.endSeq = frame.seq;
      this._maybeEnd(inv);
    }

    _maybeEnd(inv) {
      // "end" carries the number of chunks sent: wait for any still on
      // their way before declaring the invocation done.
      if (inv.endSeq !== null && inv.nextSeq >= inv.endSeq) {
        this._finish(inv, null, { id: inv.id, chunks: inv.nextSeq });
      }
    }

    _onError(frame) {
      const error = new BridgeError(
        String(frame.code), String(frame.message), frame.retryable, frame.id);
      if (frame.id === null || frame.id === undefined) {
        this._safe("onError", error);
        return;
      }
      const inv = this._invocations.get(frame.id);
      if (inv === undefined) return;
      // A refused token will be refused again: start a new session.
      if (frame.code === "unauthorized" && inv.sentSession !== null &&
          this._session && this._session.session === inv.sentSession) {
        this.forgetSession();
      }
      this._finish(inv, error);
    }

    _onSession(frame) {
      if (typeof frame.session !== "string" || typeof frame.expires !== "number") return;
      this._session = { session: frame.session, expires: frame.expires };
      if (this._storage) {
        try {
          this._storage.setItem(this._storageKey, JSON.stringify(this._session));
        } catch (_) { /* storage full or disabled: memory is enough */ }
      }
      this._safe("onSession", { session: frame.session, expires: frame.expires });
    }

    _onPong(frame) {
      const ping = this._pings.get(frame.id);
      if (ping === undefined) return;
      this._pings.delete(frame.id);
      ping.resolve();
    }

    _finish(inv, error, result) {
      this._invocations.delete(inv.id);
      if (error) inv.reject(error);
      else inv.resolve(result);
    }

    _loadSession() {
      if (!this._storage) return null;
      try {
        const saved = JSON.parse(this._storage.getItem(this._storageKey));
        if (saved && typeof saved.session === "string" && typeof saved.expires === "number" &&
            saved.expires * 1000 > Date.now()) {
          return saved;
        }
      } catch (_) { /* unreadable: start without a session */ }
      return null;
    }

    _safe(name, arg) {
      const handler = this._handlers[name];
      if (typeof handler !== "function") return;
      try {
        handler(arg);
      } catch (error) {
        report(error);
      }
    }
  }

  const api = {
    BridgeClient,
    BridgeError,
    FrameDecoder,
    PROTOCOL_VERSION,
    ProtocolError,
    Reassembler,
  };
  if (typeof module === "object" && module && module.exports) module.exports = api;
  root.AgentCoreBridge = api;
})(typeof globalThis !== "undefined" ? globalThis : this);
