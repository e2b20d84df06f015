/*
 * agentcore-bridge client as an ES module:
 *
 *   import { BridgeClient } from "./bridge-client.module.js";
 *
 * The code lives in bridge-client.js, which also works as a plain script;
 * importing it here runs it once and this module re-exports what it made.
 */
import "./bridge-client.js";

const api = globalThis.AgentCoreBridge;

export const {
  BridgeClient,
  BridgeError,
  FrameDecoder,
  PROTOCOL_VERSION,
  ProtocolError,
  Reassembler,
} = api;
export default api;
