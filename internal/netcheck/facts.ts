/**
 * Facts about a node for the diagnosis: its agent's plan and state (HTTP) and its live kernel
 * (one exec: Kosmos routing table, neighbours, FDB, link MTUs, `ip route get` for the targets).
 */
import type { HostState } from "../dataplane/index.ts";
import type { AgentExecutor, AgentStateLike } from "./agents.ts";

export interface KernelRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  table?: string;
  prefsrc?: string;
}

export interface KernelFacts {
  routes: KernelRoute[];
  neighbors: Array<{ dst: string; dev?: string; lladdr?: string; state?: string[] }>;
  fdb: Array<{ mac: string; ifname?: string; dst?: string }>;
  links: Array<{ ifname: string; mtu: number }>;
  /** `ip route get <ip>` for each target asked. */
  routeGet: Record<string, KernelRoute | undefined>;
}

export interface NodeFacts {
  node: string;
  /** Why the agent could not be asked (then everything else is missing). */
  agentError?: string;
  plan?: HostState;
  planMissing?: string;
  state?: AgentStateLike;
  kernel?: KernelFacts;
  kernelError?: string;
}

const FACTS_SCRIPT = `ip -j -4 route show table 200; echo '@@'; ip -j -6 route show table 200; echo '@@'; ip -j neigh show; echo '@@';
bridge -j fdb show; echo '@@'; ip -j link show; echo '@@'; for ip in "$@"; do printf '%s ' "$ip"; ip -j route get "$ip" 2>/dev/null || echo '[]'; done`;

function parseJsonArray<T>(s: string): T[] {
  const t = s.trim();
  if (!t) return [];
  try {
    const v = JSON.parse(t) as unknown;
    return Array.isArray(v) ? (v as T[]) : [];
  } catch {
    return [];
  }
}

/** Parse the facts script's output (pure). */
export function parseKernelFacts(stdout: string): KernelFacts {
  const [r4 = "", r6 = "", neigh = "", fdb = "", links = "", gets = ""] = stdout.split("@@");
  const routeGet: Record<string, KernelRoute | undefined> = {};
  for (const line of gets.split("\n")) {
    const i = line.indexOf(" ");
    if (i <= 0) continue;
    routeGet[line.slice(0, i)] = parseJsonArray<KernelRoute>(line.slice(i + 1))[0];
  }
  return {
    routes: [...parseJsonArray<KernelRoute>(r4), ...parseJsonArray<KernelRoute>(r6)],
    neighbors: parseJsonArray(neigh),
    fdb: parseJsonArray(fdb),
    links: parseJsonArray<{ ifname: string; mtu: number }>(links).map((l) => ({
      ifname: l.ifname,
      mtu: l.mtu,
    })),
    routeGet,
  };
}

export async function gatherFacts(
  exec: AgentExecutor,
  node: string,
  targets: string[],
  agentError?: string,
): Promise<NodeFacts> {
  if (agentError) return { node, agentError };
  const health = await exec.health(node);
  if (health) return { node, agentError: health };
  const [plan, state, kernel] = await Promise.all([
    exec.plan(node),
    exec.state(node),
    exec
      .capture(node, ["bash", "-c", FACTS_SCRIPT, "kosmos-facts", ...targets])
      .then((r) => ({
        facts: parseKernelFacts(r.stdout),
        error: r.exitCode === 0 ? undefined : r.stderr.trim(),
      }))
      .catch((e: Error) => ({ facts: undefined, error: e.message })),
  ]);
  return {
    node,
    plan,
    planMissing: plan
      ? undefined
      : `agent on ${node} has no plan${state?.lastError ? ` (${state.lastError})` : ""}`,
    state,
    kernel: kernel.facts,
    kernelError: kernel.error,
  };
}
