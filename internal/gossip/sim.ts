/**
 * Deterministic discrete-event network simulator driving real GossipNodes: seeded PRNG, virtual
 * time, per-link latency, loss, partitions, crashes/restarts, a starved receive path (an
 * overloaded process) and byte counters. Same seed and same calls => same run. Addresses are node names.
 */
import { MemoryReplica } from "./memory-replica.ts";
import type { GossipConfig } from "./config.ts";
import { GossipNode } from "./node.ts";
import { type Cancel, type Clock, type Random, seededRandom, type Transport } from "./ports.ts";
import type { RangeReplicaPort } from "./replica.ts";

interface Ev {
  at: number;
  seq: number;
  fn: () => void;
  dead: boolean;
}

/** Binary min-heap on (at, seq). */
class EventQueue {
  private h: Ev[] = [];
  get size(): number {
    return this.h.length;
  }
  push(e: Ev): void {
    const h = this.h;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  peek(): Ev | undefined {
    return this.h[0];
  }
  pop(): Ev | undefined {
    const h = this.h;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
const less = (a: Ev, b: Ev): boolean => (a.at !== b.at ? a.at < b.at : a.seq < b.seq);

export type LatencyFn = (from: string, to: string, r: Random) => number;

/** LAN jitter: uniform 0.2–2 ms per hop. */
export const lanLatency: LatencyFn = (_f, _t, r) => 0.2 + r.next() * 1.8;

export interface SimOptions {
  seed: number;
  latency?: LatencyFn;
  /** Probability that a frame is lost (each direction independently). */
  loss?: number;
  secret?: string;
  config?: Partial<GossipConfig>;
  /** Replica factory (default MemoryReplica). */
  replica?: (name: string) => RangeReplicaPort;
}

export interface SimNode {
  name: string;
  node: GossipNode;
  replica: RangeReplicaPort;
  up: boolean;
  gen: number;
  handler: ((b: Uint8Array) => void) | null;
  /** Inbound processing lag (see Sim.lag): max extra delay, and when the last lagged frame is read. */
  lagMs: number;
  lagTail: number;
}

export interface AddNodeOptions {
  /** Seed addresses to join through (default: none). */
  seeds?: string[];
  /** Members known beforehand (as the controller seeds them). */
  members?: string[];
  /** The members are known to be running (a settled fleet): they start confirmed alive. */
  settled?: boolean;
  incarnation?: number;
  config?: Partial<GossipConfig>;
}

export class Sim {
  time = 0;
  readonly nodes = new Map<string, SimNode>();
  readonly bytes = new Map<string, { sent: number; received: number }>();
  framesSent = 0;
  framesDropped = 0;
  loss: number;
  private readonly q = new EventQueue();
  private seq = 0;
  private readonly net: Random;
  private readonly latency: LatencyFn;
  private group = new Map<string, number>();
  private links: ((from: string, to: string) => boolean) | undefined;
  private nodeSeed = 0;

  constructor(private readonly opts: SimOptions) {
    this.net = seededRandom(opts.seed);
    this.latency = opts.latency ?? lanLatency;
    this.loss = opts.loss ?? 0;
  }

  schedule(delay: number, fn: () => void): Cancel {
    const ev: Ev = { at: this.time + Math.max(0, delay), seq: this.seq++, fn, dead: false };
    this.q.push(ev);
    return () => {
      ev.dead = true;
    };
  }

  node(name: string): GossipNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no such sim node ${name}`);
    return n.node;
  }

  replica(name: string): RangeReplicaPort {
    return this.nodes.get(name)!.replica;
  }

  /** Names of nodes currently up. */
  upNodes(): string[] {
    return [...this.nodes.values()].filter((n) => n.up).map((n) => n.name);
  }

  /** Create n nodes named prefix0..prefix{n-1}, all knowing each other (controller-seeded), started. */
  addNodes(n: number, prefix = "n", opts: Omit<AddNodeOptions, "members"> = {}): string[] {
    const names = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    const all = [...new Set([...this.nodes.keys(), ...names])];
    for (const name of names) this.addNode(name, { ...opts, members: all });
    return names;
  }

  addNode(name: string, o: AddNodeOptions = {}, replica?: RangeReplicaPort): GossipNode {
    const prev = this.nodes.get(name);
    const gen = (prev?.gen ?? 0) + 1;
    const rep = replica ?? this.opts.replica?.(name) ?? new MemoryReplica();
    const sn: SimNode = {
      name,
      node: null as unknown as GossipNode,
      replica: rep,
      up: true,
      gen,
      handler: null,
      lagMs: prev?.lagMs ?? 0,
      lagTail: 0,
    };
    this.nodes.set(name, sn);
    if (!this.bytes.has(name)) this.bytes.set(name, { sent: 0, received: 0 });
    const clock: Clock = {
      now: () => this.time,
      setTimer: (ms, cb) =>
        this.schedule(ms, () => {
          if (sn.up && sn.gen === gen) cb();
        }),
    };
    const transport: Transport = {
      send: (to, bytes) => {
        if (sn.up && sn.gen === gen) this.transmit(name, to, bytes);
      },
      onMessage: (cb) => {
        sn.handler = cb;
      },
    };
    this.nodeSeed += 1;
    sn.node = new GossipNode({
      name,
      addr: name,
      secret: this.opts.secret ?? "sim-secret",
      transport,
      clock,
      random: seededRandom((this.opts.seed * 7919 + this.nodeSeed * 104729) | 0),
      replica: rep,
      config: { ...this.opts.config, ...o.config },
      incarnation: o.incarnation,
      epoch: Math.floor(this.time * 1000) + gen,
      members: (o.members ?? []).map((m) => ({ name: m, addr: m, confirmed: o.settled })),
    });
    sn.node.start(o.seeds ?? []);
    return sn.node;
  }

  /** Kill a node abruptly: no more sends, receives or timers. */
  crash(name: string): void {
    const sn = this.nodes.get(name);
    if (!sn) return;
    sn.up = false;
    sn.node.stop();
  }

  /** Restart a crashed node as a new process (new epoch); the replica survives unless told. */
  restart(name: string, o: AddNodeOptions & { keepReplica?: boolean } = {}): GossipNode {
    const sn = this.nodes.get(name);
    const keep = o.keepReplica ?? true;
    return this.addNode(name, o, keep && sn ? sn.replica : undefined);
  }

  /**
   * A node whose receive path is starved (busy process, frames wait in socket buffers): every frame
   * it receives is read after an extra uniform [0, maxMs] delay, in arrival order, while its timers
   * still fire on time. 0: back to normal.
   */
  lag(name: string, maxMs: number): void {
    const sn = this.nodes.get(name);
    if (!sn) throw new Error(`no such sim node ${name}`);
    sn.lagMs = maxMs;
  }

  /** Split the network: frames only flow inside a group. Nodes in no group form their own group. */
  partition(groups: string[][]): void {
    this.group = new Map();
    groups.forEach((g, i) => {
      for (const n of g) this.group.set(n, i + 1);
    });
  }

  heal(): void {
    this.group = new Map();
  }

  /**
   * Static reachability on top of partitions: a frame from `from` to `to` is dropped unless
   * reach(from, to) (e.g. nodes that see only their own LAN). undefined: every link works.
   */
  setLinks(reach: ((from: string, to: string) => boolean) | undefined): void {
    this.links = reach;
  }

  /** Deliver an arbitrary frame (tests of forged/replayed input). */
  inject(to: string, bytes: Uint8Array, delay = 0): void {
    this.schedule(delay, () => {
      const d = this.nodes.get(to);
      if (d?.up) d.handler?.(bytes);
    });
  }

  private transmit(from: string, to: string, bytes: Uint8Array): void {
    this.framesSent += 1;
    this.bytes.get(from)!.sent += bytes.length;
    if (
      (this.group.get(from) ?? 0) !== (this.group.get(to) ?? 0) ||
      (this.links !== undefined && !this.links(from, to)) ||
      (this.loss > 0 && this.net.next() < this.loss)
    ) {
      this.framesDropped += 1;
      return;
    }
    let delay = this.latency(from, to, this.net);
    const dst = this.nodes.get(to);
    if (dst && dst.lagMs > 0) {
      // FIFO: a frame is not read before the one that arrived earlier
      const at = Math.max(this.time + delay + this.net.next() * dst.lagMs, dst.lagTail);
      dst.lagTail = at;
      delay = at - this.time;
    }
    this.schedule(delay, () => {
      const d = this.nodes.get(to);
      if (!d?.up) {
        this.framesDropped += 1;
        return;
      }
      this.bytes.get(to)!.received += bytes.length;
      d.handler?.(bytes);
    });
  }

  /** Advance virtual time by ms, running every event due. */
  run(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const e = this.q.peek();
      if (!e || e.at > end) break;
      this.q.pop();
      if (e.dead) continue;
      this.time = e.at;
      e.fn();
    }
    this.time = end;
  }

  /** Run until pred() holds (checked every stepMs) or maxMs passes. Returns whether it held. */
  runUntil(pred: () => boolean, maxMs: number, stepMs = 50): boolean {
    const end = this.time + maxMs;
    while (this.time < end) {
      if (pred()) return true;
      this.run(Math.min(stepMs, end - this.time));
    }
    return pred();
  }

  /** Bytes sent + received over all nodes. */
  totalBytes(): number {
    let t = 0;
    for (const b of this.bytes.values()) t += b.sent + b.received;
    return t;
  }

  resetCounters(): void {
    for (const b of this.bytes.values()) {
      b.sent = 0;
      b.received = 0;
    }
    this.framesSent = 0;
    this.framesDropped = 0;
  }
}

/** True when every up node's replica digest equals every other's. */
export function converged(sim: Sim): boolean {
  let ref: string | null = null;
  for (const n of sim.upNodes()) {
    const d = JSON.stringify(sim.replica(n).digest());
    if (ref === null) ref = d;
    else if (d !== ref) return false;
  }
  return true;
}
