/**
 * The Seeder pushes the latest Topology to a few agents, only when it changed (content hash), with
 * exponential backoff per agent. Agents gossip it on; the controller never talks to every node.
 *
 * Agents come in groups (one per cluster when discovered from ClusterNodes, one group for an explicit
 * list). Per group only the first `perGroup` candidates are active, ordered by failure count, then by the
 * group's preference order: when a push fails, the next candidate takes over (rotation); a failed agent
 * is retried with backoff while it remains among the active ones.
 */
import type { Logger } from "../observability/index.ts";
import { silentLogger } from "../observability/index.ts";
import type { Topology } from "../topology/index.ts";
import { topologyHash } from "./mapping.ts";
import { type AgentEndpoint, fetchPusher, type Pusher } from "./push.ts";

export interface SeederOptions {
  /** An explicit list: one group, every agent active. */
  agents?: AgentEndpoint[];
  /** Active agents per group for groups set with setGroups (default 3). */
  perGroup?: number;
  pusher?: Pusher;
  logger?: Logger;
  /** Backoff bounds in ms (default 200 .. 30000). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Timer injection (tests). */
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

interface AgentState {
  endpoint: AgentEndpoint;
  /** Position in its group's preference order. */
  order: number;
  group: string;
  pushedHash?: string;
  inFlight: boolean;
  failures: number;
  timer?: unknown;
  lastError?: string;
}

export interface SeederStatus {
  hash: string | undefined;
  agents: {
    url: string;
    group: string;
    active: boolean;
    pushedHash: string | undefined;
    failures: number;
    lastError: string | undefined;
  }[];
}

export class Seeder {
  private latest: Topology | undefined;
  private latestHash: string | undefined;
  private readonly state = new Map<string, AgentState>();
  private readonly pusher: Pusher;
  private readonly log: Logger;
  private stopped = false;
  private readonly waiters: (() => void)[] = [];

  private groups: Record<string, AgentEndpoint[]> = {};
  private limit = Number.POSITIVE_INFINITY;

  constructor(private readonly opts: SeederOptions) {
    this.pusher = opts.pusher ?? fetchPusher;
    this.log = opts.logger ?? silentLogger();
    if (opts.agents && opts.agents.length > 0) this.setGroups({ "": opts.agents }, Number.POSITIVE_INFINITY);
  }

  /**
   * Replace the candidate agents (per group, in preference order). Known agents keep their state
   * (pushed hash, failures); vanished ones are forgotten. Newly active agents are pushed at once.
   */
  setGroups(groups: Record<string, AgentEndpoint[]>, perGroup = this.opts.perGroup ?? 3): void {
    this.groups = groups;
    this.limit = perGroup;
    const keep = new Set<string>();
    for (const [group, eps] of Object.entries(groups)) {
      eps.forEach((ep, order) => {
        keep.add(ep.url);
        const cur = this.state.get(ep.url);
        if (cur) Object.assign(cur, { endpoint: ep, order, group });
        else this.state.set(ep.url, { endpoint: ep, order, group, inFlight: false, failures: 0 });
      });
    }
    const clear = this.opts.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    for (const [url, st] of this.state) {
      if (keep.has(url)) continue;
      if (st.timer !== undefined) clear(st.timer);
      this.state.delete(url);
    }
    this.kickActive();
    this.notify();
  }

  /** The active agents: per group the `limit` best (fewest failures, then preference order). */
  private active(): AgentState[] {
    const out: AgentState[] = [];
    for (const group of Object.keys(this.groups)) {
      const members = [...this.state.values()]
        .filter((s) => s.group === group)
        .sort((a, b) => a.failures - b.failures || a.order - b.order);
      out.push(...members.slice(0, this.limit));
    }
    return out;
  }

  private kickActive(): void {
    if (this.latestHash === undefined) return;
    for (const st of this.active()) this.kick(st);
  }

  /** Offer a new topology; pushes to every active agent that does not have this exact content yet. */
  update(topology: Topology): void {
    const hash = topologyHash(topology);
    if (hash === this.latestHash) return;
    this.latest = topology;
    this.latestHash = hash;
    this.kickActive();
  }

  private kick(st: AgentState): void {
    if (this.stopped || st.inFlight || st.timer !== undefined || st.pushedHash === this.latestHash) return;
    if (this.state.get(st.endpoint.url) !== st) return; // forgotten
    const agent = st.endpoint;
    const topology = this.latest!;
    const hash = this.latestHash!;
    st.inFlight = true;
    this.pusher(agent, topology).then(
      () => {
        st.inFlight = false;
        st.failures = 0;
        st.pushedHash = hash;
        st.lastError = undefined;
        this.log.info({ agent: agent.url, hash: hash.slice(0, 12) }, "topology pushed");
        this.kick(st); // a newer topology may have arrived meanwhile
        this.notify();
      },
      (e: unknown) => {
        st.inFlight = false;
        st.failures++;
        st.lastError = (e as Error).message;
        const min = this.opts.minBackoffMs ?? 200;
        const delay = Math.min(this.opts.maxBackoffMs ?? 30_000, min * 2 ** (st.failures - 1));
        this.log.warn({ agent: agent.url, err: st.lastError, retryInMs: delay }, "topology push failed");
        const set = this.opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
        st.timer = set(() => {
          st.timer = undefined;
          if (this.active().includes(st)) this.kick(st);
        }, delay);
        this.kickActive(); // rotation: the next candidate of the group may be active now
        this.notify();
      },
    );
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolve when every active agent holds the latest topology (or, with `any`, at least one does). */
  async settled(opts: { any?: boolean } = {}): Promise<void> {
    for (;;) {
      const active = this.active();
      const pushed = active.filter((s) => s.pushedHash === this.latestHash);
      if (this.latestHash !== undefined && (opts.any ? pushed.length > 0 : pushed.length === active.length))
        return;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  status(): SeederStatus {
    const active = new Set(this.active());
    return {
      hash: this.latestHash,
      agents: [...this.state.values()].map((s) => ({
        url: s.endpoint.url,
        group: s.group,
        active: active.has(s),
        pushedHash: s.pushedHash,
        failures: s.failures,
        lastError: s.lastError,
      })),
    };
  }

  stop(): void {
    this.stopped = true;
    const clear = this.opts.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    for (const s of this.state.values()) if (s.timer !== undefined) clear(s.timer);
    this.notify();
  }
}
