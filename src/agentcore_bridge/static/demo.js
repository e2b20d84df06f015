/*
 * The demo chat page: talks to the demo agent through the bridge with the
 * bundled client (bridge-client.js), which joins split frames, keeps the
 * session token in localStorage and reconnects by itself.
 *
 * The bridge starts a session for every new connection and announces it
 * in a "session" frame, unless the connection URL names a session to
 * resume. The client does that by itself (its "resume" option is "url" by
 * default): it puts the saved token in the URL of every (re)connect, so
 * the conversation carries over a reload or a reconnect.
 */
(function () {
  "use strict";

  const transcript = document.getElementById("transcript");
  const form = document.getElementById("composer");
  const prompt = document.getElementById("prompt");
  const stopButton = document.getElementById("stop");
  const status = document.getElementById("status");
  const sessionLabel = document.getElementById("session");
  const newSession = document.getElementById("new-session");

  let client = null;
  let current = null;  // the invocation streaming now

  function bridgeUrl() {
    const url = new URL("/ws", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.toString();
  }

  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function scrollDown() {
    transcript.scrollTop = transcript.scrollHeight;
  }

  function addMessage(role, text) {
    const element = document.createElement("div");
    element.className = `message ${role}`;
    element.textContent = text;
    transcript.appendChild(element);
    scrollDown();
    return element;
  }

  function addNotice(text) {
    const element = document.createElement("p");
    element.className = "notice";
    element.textContent = text;
    transcript.appendChild(element);
    scrollDown();
  }

  function connect() {
    client = new AgentCoreBridge.BridgeClient(bridgeUrl(), {
      onOpen() {
        setStatus("connected", "connected");
      },
      onClose(event) {
        setStatus(event.willReconnect ? "reconnecting" : "closed",
          event.willReconnect ? `reconnecting (closed with ${event.code})` : "disconnected");
      },
      onSession(session) {
        const until = new Date(session.expires * 1000).toLocaleTimeString();
        sessionLabel.dataset.state = "active";
        sessionLabel.textContent = `session token valid until ${until}`;
      },
      onError(error) {
        if (error.code === "unauthorized") {
          addNotice("The saved session could not be resumed; a new one was started.");
        } else {
          console.warn(error);
        }
      },
    });
    client.connect();
  }

  function textOf(data) {
    return typeof data === "string" ? data : JSON.stringify(data);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text || current !== null) return;
    prompt.value = "";
    addMessage("user", text);
    const answer = addMessage("agent", "");
    answer.dataset.state = "streaming";
    stopButton.disabled = false;

    current = client.invoke({ prompt: text }, {
      onChunk(data) {
        answer.textContent += textOf(data);
        scrollDown();
      },
    });
    current.done.then(() => {
      answer.dataset.state = "done";
    }, (error) => {
      answer.dataset.state = "error";
      const detail = document.createElement("span");
      detail.className = "error";
      detail.textContent = `${error.code}: ${error.message}`;
      answer.appendChild(detail);
    }).finally(() => {
      current = null;
      stopButton.disabled = true;
      prompt.focus();
    });
  });

  stopButton.addEventListener("click", () => {
    if (current !== null) current.cancel();
  });

  newSession.addEventListener("click", () => {
    client.forgetSession();
    client.close();
    sessionLabel.dataset.state = "none";
    sessionLabel.textContent = "no session yet";
    addNotice("New session: the agent starts counting turns again.");
    connect();
  });

  connect();
  // Nothing has arrived yet: a session now is the one saved by this browser.
  if (client.session) addNotice("Resuming the session saved by this browser.");
})();
