/**
 * Talking to the node agents: exec (probe batches, kernel facts) and their /v1/plan and /v1/state.
 */
import { KosmosError } from "../errors/index.ts";
import { AgentClient, type AgentTarget } from "../exec/index.ts";
import type { HostState } from "../dataplane/index.ts";
import type { ExecOutcome, ProbeExecutor } from "./runner.ts";

export class NetcheckError extends KosmosError<
  "BAD_FLAG" | "NO_AGENTS" | "NO_PAIRS" | "RESULTS" | "INVENTORY"
> {}

export class AgentExecutor implements ProbeExecutor {
  private readonly clients = new Map<string, AgentClient>();

  constructor(private readonly agents: Record<string, AgentTarget>) {}

  client(node: string): AgentClient {
    let c = this.clients.get(node);
    if (!c) {
      const t = this.agents[node];
      if (!t) throw new NetcheckError("INVENTORY", `no agent known for node ${node}`, "check the inventory");
      c = new AgentClient(t);
      this.clients.set(node, c);
    }
    return c;
  }

  url(node: string): string {
    return this.agents[node]?.url ?? "?";
  }

  async run(
    node: string,
    argv: string[],
    stdin: string,
    timeoutSec: number,
    onLine: (l: string) => void,
  ): Promise<ExecOutcome> {
    const dec = new TextDecoder();
    let buf = "";
    let stderr = "";
    const errDec = new TextDecoder();
    const r = await this.client(node).exec(argv, {
      stdin,
      timeout: timeoutSec,
      onStdout: (chunk) => {
        buf += dec.decode(chunk, { stream: true });
        let i = buf.indexOf("\n");
        while (i >= 0) {
          onLine(buf.slice(0, i));
          buf = buf.slice(i + 1);
          i = buf.indexOf("\n");
        }
      },
      onStderr: (chunk) => {
        stderr += errDec.decode(chunk, { stream: true });
      },
    });
    if (buf) onLine(buf);
    return { exitCode: r.exitCode, stderr };
  }

  /** Run a command and collect its output (diagnosis facts; `stdin`: the clusterset probe's queries). */
  async capture(
    node: string,
    argv: string[],
    timeoutSec = 10,
    stdin?: string,
  ): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const r = await this.client(node).exec(argv, {
      timeout: timeoutSec,
      ...(stdin !== undefined ? { stdin } : {}),
    });
    return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  }

  async health(node: string): Promise<string | undefined> {
    try {
      const r = await this.client(node).request("/healthz", { signal: AbortSignal.timeout(3000) });
      if (!r.ok) return `agent on ${node} answered HTTP ${r.status} at ${this.url(node)}`;
      return undefined;
    } catch (e) {
      return `agent on ${node} is not reachable at ${this.url(node)} (${(e as Error).message.replace(/^cannot reach [^:]+:[^:]*: /, "")}); is kosmos-agent running there?`;
    }
  }

  async json<T>(node: string, path: string): Promise<T | undefined> {
    try {
      const r = await this.client(node).request(path, { signal: AbortSignal.timeout(5000) });
      if (!r.ok) return undefined;
      return (await r.json()) as T;
    } catch {
      return undefined;
    }
  }

  plan(node: string): Promise<HostState | undefined> {
    return this.json<HostState>(node, "/v1/plan");
  }

  state(node: string): Promise<AgentStateLike | undefined> {
    return this.json<AgentStateLike>(node, "/v1/state");
  }
}

/** The parts of the agent's /v1/state the diagnosis reads. */
export interface AgentStateLike {
  node: string;
  ready: boolean;
  lastError?: string;
  gateways?: Record<string, string>;
  /** Gossip membership as this agent sees it: node → alive | suspect | dead. */
  members?: Record<string, string>;
}

/** Check every agent in parallel; returns node → error for those that do not answer. */
export async function checkAgents(exec: ProbeExecutor, nodes: string[]): Promise<Map<string, string>> {
  const res = await Promise.all(nodes.map(async (n) => [n, await exec.health(n)] as const));
  return new Map(res.filter((r): r is readonly [string, string] => r[1] !== undefined));
}
