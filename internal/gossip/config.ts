/**
 * Gossip configuration: a GossipNode's options, every tunable with its default, and the agent's
 * profile. Pure data; docs/gossip.md ("Tuning") explains the choices and their measurements.
 */
import type { Clock, Random, Transport } from "./ports.ts";
import type { RangeReplicaPort } from "./replica.ts";

export interface GossipConfig {
  /** SWIM: one probe per interval, round-robin over a shuffled member list. */
  probeIntervalMs: number;
  /** Wait this long for a direct ack before asking `indirectChecks` others. */
  probeTimeoutMs: number;
  indirectChecks: number;
  /** Minimum suspicion timeout = suspicionMult * max(1, log10(n)) * probeIntervalMs. */
  suspicionMult: number;
  /** Maximum suspicion timeout = suspicionMaxMult * minimum; shrinks with independent confirmations. */
  suspicionMaxMult: number;
  /** Independent confirmations that bring the suspicion timeout down to its minimum (capped at n - 2). */
  suspicionK: number;
  /**
   * Lifeguard: local health multiplier (probe interval and timeout scale by score + 1), nacks from
   * indirect-probe helpers, buddy system (a suspect is told in the probe), confirmation-shrinking
   * suspicion. false: classic SWIM with a fixed suspicion timeout (the minimum) — bench baseline.
   */
  lifeguard: boolean;
  /** Health score bound: the score stays in [0, awarenessMaxMultiplier - 1] (memberlist: 8). */
  awarenessMaxMultiplier: number;
  /** Replica-derived members never heard from are declared dead (locally) after this long. */
  unconfirmedTimeoutMs: number;
  /** ... and only after this many direct pings went unanswered. */
  unconfirmedPings: number;
  /**
   * Pings to unconfirmed members per second, sent with the probe ticks (bounds the start-up cost of
   * a large replica, and the connection attempts a transport opens to addresses nobody answers at).
   */
  unconfirmedPingsPerSec: number;
  /** Dissemination round: pending updates go to `fanout` random members. */
  gossipIntervalMs: number;
  fanout: number;
  /** Each update is sent retransmitMult * ceil(log10(n + 1)) times. */
  retransmitMult: number;
  /** Forward new rows to `fanout` peers as soon as they arrive, not only on the next round. */
  eagerPush: boolean;
  /** Anti-entropy with one random member per interval. */
  antiEntropyIntervalMs: number;
  /** Owner digests are XOR-folded into this many buckets in the anti-entropy summary. */
  aeBuckets: number;
  /** Send the summary only (false: naive, send every owner digest each round). */
  aeSummary: boolean;
  /**
   * Reconnect tick (partition heal, re-admission): each tick contacts up to `reconnectPerTick` dead
   * members that were heard from before and one never heard from, each only when its own backoff
   * (reconnectIntervalMs doubling up to reconnectMaxMs) is due.
   */
  reconnectIntervalMs: number;
  reconnectMaxMs: number;
  reconnectPerTick: number;
  /**
   * How long forget() remembers a forgotten member's incarnation (alive news at or below it is
   * stale: a peer that has not yet learned the death). Bounded to maxQueuedMembers entries.
   */
  forgetMemoryMs: number;
  /** Join retries to seeds while no member is alive: joinRetryMs doubling up to reconnectMaxMs. */
  joinRetryMs: number;
  /** Grace period after leave() before stopping (the "left" update still propagates). */
  leaveGraceMs: number;
  maxQueuedRows: number;
  maxQueuedMembers: number;
  maxPiggyback: number;
  maxRowsPerPush: number;
  /** Target payload per chunk for rows / member lists (well under the 1 MiB frame limit). */
  chunkBytes: number;
  /** Range reconciliation: split factor, and size under which rows are exchanged directly. */
  rangeParts: number;
  rangeLeafRows: number;
  /** Rows learned by anti-entropy are re-gossiped when at most this many arrive at once. */
  rebroadcastRepairedMax: number;
  /**
   * Change sets larger than this are not pushed row by row: the node starts anti-entropy with
   * `fanout` peers instead (push digest, pull data), so bulk seeds travel once per peer.
   */
  bulkThreshold: number;
}

export const DEFAULT_CONFIG: GossipConfig = {
  probeIntervalMs: 500,
  probeTimeoutMs: 200,
  indirectChecks: 3,
  suspicionMult: 3,
  suspicionMaxMult: 2,
  suspicionK: 3,
  lifeguard: true,
  awarenessMaxMultiplier: 8,
  unconfirmedTimeoutMs: 10_000,
  unconfirmedPings: 2,
  unconfirmedPingsPerSec: 32,
  gossipIntervalMs: 200,
  fanout: 3,
  retransmitMult: 3,
  eagerPush: true,
  antiEntropyIntervalMs: 2000,
  aeBuckets: 16,
  aeSummary: true,
  reconnectIntervalMs: 5000,
  reconnectMaxMs: 60_000,
  reconnectPerTick: 2,
  forgetMemoryMs: 300_000,
  joinRetryMs: 1000,
  leaveGraceMs: 1000,
  maxQueuedRows: 4096,
  maxQueuedMembers: 4096,
  maxPiggyback: 8,
  maxRowsPerPush: 256,
  chunkBytes: 256 * 1024,
  rangeParts: 16,
  rangeLeafRows: 128,
  rebroadcastRepairedMax: 64,
  bulkThreshold: 64,
};

/**
 * The agent's timings (internal/agent/gossip.ts runs GossipNode with these): probes every 300 ms
 * (ack within 150 ms, else 3 indirect probes); suspicion lasts 2.5·max(1, log10 n)·300 ms = 0.75 s
 * in small fleets, up to 2× that while no other member confirms it (memberlist: 4·log10(n)·1 s,
 * max 6×). Faster than memberlist's LAN profile on purpose: a gateway fails over within 3 s. The
 * lab and simulator figures behind the choice are in docs/gossip.md ("Tuning").
 */
export const AGENT_GOSSIP_CONFIG = {
  probeIntervalMs: 300,
  probeTimeoutMs: 150,
  suspicionMult: 2.5,
  suspicionMaxMult: 2,
} as const satisfies Partial<GossipConfig>;

export interface GossipNodeOptions {
  name: string;
  /** Our address as peers reach us (ws URL in the agent, the node name in the simulator). */
  addr: string;
  secret: Uint8Array | string;
  transport: Transport;
  clock: Clock;
  random: Random;
  replica: RangeReplicaPort;
  config?: Partial<GossipConfig>;
  /** Starting incarnation (persist and pass the last one + 1 to avoid a refutation round). */
  incarnation?: number;
  /** Process epoch for replay protection; default clock.now(). Must grow across restarts. */
  epoch?: number;
  /**
   * Members known beforehand (the replica's topology, seeded by the controller): *unconfirmed*
   * until heard from, reported as `suspect` (`confirmed: false`), declared dead locally if they
   * never answer (sweep.ts). `confirmed: true`: the caller knows it is running (a settled fleet in
   * a benchmark); it starts alive like a member heard from.
   */
  members?: Array<{ name: string; addr: string; confirmed?: boolean }>;
  maxFrameBytes?: number;
  /** Which members reach which directly (GossipNode.setReach); default: all. */
  reach?: Reach;
}

/**
 * Which members can send to which directly (symmetric). `reachers`, when given, says how many members
 * reach a member: gossip targets are then drawn with weight 1/reachers, so a member few others reach
 * (a gateway cluster's LAN-only node) is picked more often by those few, and receives about as many
 * rumors as any other member instead of waiting for anti-entropy (docs/gossip.md, "Reach").
 */
export type Reach = ((a: string, b: string) => boolean) & { reachers?: (name: string) => number };
