export { Codec, type CodecOptions, type CodecStats, deriveKey, FRAME_VERSION } from "./codec.ts";
export { GossipError, type GossipErrorCode, type RejectReason, rejectError } from "./errors.ts";
export { fnv1a64, hash64Hex, rowHash, xorHex, ZERO_HASH } from "./hash.ts";
export { MemoryReplica, type MemoryReplicaOptions } from "./memory-replica.ts";
export {
  type Envelope,
  EnvelopeSchema,
  LIMITS,
  type MemberUpdate,
  type Message,
  MessageSchema,
  type MessageType,
} from "./messages.ts";
export { AGENT_GOSSIP_CONFIG, DEFAULT_CONFIG, type GossipConfig, type GossipNodeOptions } from "./config.ts";
export type { MemberInfo } from "./members.ts";
export { GossipNode } from "./node.ts";
export {
  type Cancel,
  type Clock,
  type Random,
  realClock,
  realRandom,
  sample,
  seededRandom,
  type Transport,
} from "./ports.ts";
export { BroadcastQueue } from "./queue.ts";
export { type RangeDigest, type RangeReplicaPort, splitRange } from "./replica.ts";
export type { GossipStats } from "./stats.ts";
export {
  type AddNodeOptions,
  converged,
  lanLatency,
  type LatencyFn,
  Sim,
  type SimNode,
  type SimOptions,
} from "./sim.ts";
export { gossipRoute, WsTransport, type WsTransportOptions, type WsTransportStats } from "./ws-transport.ts";
