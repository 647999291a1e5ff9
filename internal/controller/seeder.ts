/**
 * The Seeder pushes the latest Topology to a few agents, only when it changed (content hash), with
 * exponential backoff per agent. Agents gossip it on; the controller never talks to every node.
 */
import type { Logger } from "../observability/index.ts";
import { silentLogger } from "../observability/index.ts";
import type { Topology } from "../topology/index.ts";
import { topologyHash } from "./mapping.ts";
import { type AgentEndpoint, fetchPusher, type Pusher } from "./push.ts";

export interface SeederOptions {
  agents: AgentEndpoint[];
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
  pushedHash?: string;
  inFlight: boolean;
  failures: number;
  timer?: unknown;
  lastError?: string;
}

export interface SeederStatus {
  hash: string | undefined;
  agents: { url: string; pushedHash: string | undefined; failures: number; lastError: string | undefined }[];
}

export class Seeder {
  private latest: Topology | undefined;
  private latestHash: string | undefined;
  private readonly state = new Map<string, AgentState>();
  private readonly pusher: Pusher;
  private readonly log: Logger;
  private stopped = false;
  private readonly waiters: (() => void)[] = [];

  constructor(private readonly opts: SeederOptions) {
    this.pusher = opts.pusher ?? fetchPusher;
    this.log = opts.logger ?? silentLogger();
    for (const a of opts.agents) this.state.set(a.url, { inFlight: false, failures: 0 });
  }

  /** Offer a new topology; pushes to every agent that does not have this exact content yet. */
  update(topology: Topology): void {
    const hash = topologyHash(topology);
    if (hash === this.latestHash) return;
    this.latest = topology;
    this.latestHash = hash;
    for (const a of this.opts.agents) this.kick(a);
  }

  private kick(agent: AgentEndpoint): void {
    const st = this.state.get(agent.url)!;
    if (this.stopped || st.inFlight || st.timer !== undefined || st.pushedHash === this.latestHash) return;
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
        this.kick(agent); // a newer topology may have arrived meanwhile
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
          this.kick(agent);
        }, delay);
        this.notify();
      },
    );
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolve when every agent holds the latest topology (or, with `any`, at least one does). */
  async settled(opts: { any?: boolean } = {}): Promise<void> {
    for (;;) {
      const pushed = [...this.state.values()].filter((s) => s.pushedHash === this.latestHash);
      if (this.latestHash !== undefined && (opts.any ? pushed.length > 0 : pushed.length === this.state.size))
        return;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  status(): SeederStatus {
    return {
      hash: this.latestHash,
      agents: this.opts.agents.map((a) => {
        const s = this.state.get(a.url)!;
        return { url: a.url, pushedHash: s.pushedHash, failures: s.failures, lastError: s.lastError };
      }),
    };
  }

  stop(): void {
    this.stopped = true;
    const clear = this.opts.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    for (const s of this.state.values()) if (s.timer !== undefined) clear(s.timer);
    this.notify();
  }
}
