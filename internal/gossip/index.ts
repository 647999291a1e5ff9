export { Codec, type CodecOptions, type CodecStats, deriveKey, FRAME_VERSION } from "./codec.ts";
export { GossipError, type GossipErrorCode, type RejectReason, rejectError } from "./errors.ts";
export { computeDigests, rowHash, xorHash, ZERO_HASH } from "./digest.ts";
export { fnv1a64, hash64Hex, xorHex } from "./hash.ts";
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
export {
  AGENT_GOSSIP_CONFIG,
  DEFAULT_CONFIG,
  type GossipConfig,
  type GossipNodeOptions,
  type Reach,
} from "./config.ts";
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
export { type RangeDigest, rangeDigests, splitRange, type VersionIndex, versionIndex } from "./ranges.ts";
export type { RangeReplicaPort } from "./replica.ts";
export {
  CONTROLLER_OWNER,
  type OwnerDigest,
  type ReplicaPort,
  type ReplicatedRow,
  wins,
} from "./replicated.ts";
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
