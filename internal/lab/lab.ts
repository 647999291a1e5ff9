/**
 * Lab lifecycle: up (network + one real kosmos-agent process per node + seeding), status, down.
 * State lives in /run/kosmos/labs/<name>/ (tmpfs: a lab does not survive a reboot, nor do netns).
 */

import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KosmosError } from "../errors/index.ts";
import { agentCommand } from "./bundle.ts";
import type { LabConfig } from "./config.ts";
import { buildNetwork, labNamespaces, teardownNetwork } from "./network.ts";
import { LAB_AGENT_PORT, type LabNodePlan, type LabPlan, planLab } from "./plan.ts";
import { spawnDetached } from "./sh.ts";

export const LAB_ROOT = process.env.KOSMOS_LAB_ROOT ?? "/run/kosmos/labs";

export interface LabFiles {
  dir: string;
  plan: string;
  token: string;
  secret: string;
}

export function labFiles(name: string): LabFiles {
  const dir = join(LAB_ROOT, name);
  return { dir, plan: join(dir, "plan.json"), token: join(dir, "token"), secret: join(dir, "secret") };
}

export function nodeDir(name: string, node: string): string {
  return join(labFiles(name).dir, node);
}

export function agentSocket(name: string, node: string): string {
  return join(nodeDir(name, node), "agent.sock");
}

/**
 * The admin socket of an agent run by the DaemonSet (`kosmosctl install` into a Kubernetes lab): its
 * default `<data-dir>/agent.sock` in the hostPath /var/lib/kosmos, which the lab kubelet keeps under
 * the node's own root (internal/kubelet/podfiles.ts hostPathSource).
 */
export function daemonSetAgentSocket(name: string, node: string): string {
  return join(labFiles(name).dir, "kubernetes", "nodes", node, "host", "var/lib/kosmos", "agent.sock");
}

export class LabError extends KosmosError<
  "LAB_EXISTS" | "LAB_NOT_FOUND" | "LAB_AGENT_FAILED" | "LAB_TIMEOUT" | "LAB_TARGET_UNKNOWN"
> {}

export interface LabHandle {
  plan: LabPlan;
  token: string;
  files: LabFiles;
}

export async function loadLab(name: string): Promise<LabHandle> {
  const files = labFiles(name);
  if (!existsSync(files.plan)) {
    throw new LabError("LAB_NOT_FOUND", `lab "${name}" is not up`, "start it with `kosmosctl lab up`");
  }
  const plan = JSON.parse(await readFile(files.plan, "utf8")) as LabPlan;
  const token = (await readFile(files.token, "utf8")).trim();
  return { plan, token, files };
}

/** HTTP to an agent over its admin unix socket. */
export async function agentFetch(
  sock: string,
  path: string,
  init: { method?: string; body?: unknown; token?: string; timeoutMs?: number } = {},
): Promise<Response> {
  const headers: Record<string, string> = {};
  if (init.body !== undefined) headers["content-type"] = "application/json";
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  return fetch(`http://localhost${path}`, {
    method: init.method ?? "GET",
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    unix: sock,
    signal: AbortSignal.timeout(init.timeoutMs ?? 5000),
  } as RequestInit);
}

export interface AgentLaunch {
  /** Extra agent flags (tests). */
  extraArgs?: string[];
  /** Resync interval for agents (ms). */
  resyncMs?: number;
  /** Seed only the first N agents (the rest learn by gossip); default: the first node of each cluster. */
  seedCount?: number;
}

/** The agent's flags for a lab node (the command around them: agentCommand in bundle.ts). */
export function agentFlags(
  name: string,
  node: LabNodePlan,
  token: string,
  launch: AgentLaunch,
  seeds: string[],
): string[] {
  const dir = nodeDir(name, node.name);
  const files = labFiles(name);
  return [
    "--node",
    node.name,
    "--data-dir",
    dir,
    "--listen",
    `${node.ipv4}:${LAB_AGENT_PORT}`,
    "--token",
    token,
    "--secret-file",
    files.secret,
    "--upload-root",
    join(dir, "uploads"),
    "--resync",
    String(launch.resyncMs ?? 5000),
    ...seeds.flatMap((s) => ["--seed", s]),
    ...(launch.extraArgs ?? []),
  ];
}

/** Start the agent of `node` the way production runs it: the bundle, JS interpreted (agentCommand). */
export async function startAgent(
  name: string,
  plan: LabPlan,
  node: LabNodePlan,
  token: string,
  launch: AgentLaunch = {},
) {
  const dir = nodeDir(name, node.name);
  await mkdir(join(dir, "uploads"), { recursive: true });
  const seeds = plan.nodes
    .filter((n) => n.name !== node.name)
    .map((n) => `https://${n.ipv4}:${LAB_AGENT_PORT}`);
  const { argv, env } = await agentCommand(agentFlags(name, node, token, launch, seeds.slice(0, 3)));
  await spawnDetached(node.ns, argv, join(dir, "agent.log"), env);
}

async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await Bun.sleep(100);
  }
  throw new LabError(
    "LAB_TIMEOUT",
    `timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`,
    "look at the agent log under /run/kosmos/labs/<lab>/<node>/agent.log",
  );
}

export async function waitAgentHealthy(name: string, node: string, timeoutMs = 30_000): Promise<void> {
  const sock = agentSocket(name, node);
  await waitFor(`agent ${node} to answer /healthz`, timeoutMs, async () => {
    if (!existsSync(sock)) return undefined;
    const r = await agentFetch(sock, "/healthz", { timeoutMs: 1000 });
    return r.ok ? true : undefined;
  });
}

export async function waitAgentReady(name: string, node: string, timeoutMs = 30_000): Promise<void> {
  const sock = agentSocket(name, node);
  await waitFor(`agent ${node} to be ready (topology applied)`, timeoutMs, async () => {
    const r = await agentFetch(sock, "/readyz", { timeoutMs: 2000 });
    return r.ok ? true : undefined;
  });
}

export async function seedAgent(name: string, node: string, plan: LabPlan, token: string): Promise<number> {
  const r = await agentFetch(agentSocket(name, node), "/v1/topology", {
    method: "POST",
    body: plan.topology,
    token,
    timeoutMs: 10_000,
  });
  const body = (await r.json()) as { changed?: number; message?: string };
  if (!r.ok)
    throw new LabError("LAB_AGENT_FAILED", `seeding ${node} failed: ${body.message}`, "see the agent log");
  return body.changed ?? 0;
}

export interface UpOptions extends AgentLaunch {
  progress?: (step: string, done: number, total: number) => void;
  /** Don't wait for every agent to report ready. */
  noWait?: boolean;
  /**
   * Build the network only: Kosmos comes later, as on real clusters (`lab up --kubernetes --no-agents`,
   * then `kosmosctl install` / `join cluster`: the lab kubelets run the agent DaemonSet's pods).
   */
  noAgents?: boolean;
}

export async function labUp(name: string, config: LabConfig, opts: UpOptions = {}): Promise<LabHandle> {
  const plan = planLab(name, config);
  const files = labFiles(name);
  if (existsSync(files.plan) || (await labNamespaces(plan.prefix)).length > 0) {
    throw new LabError(
      "LAB_EXISTS",
      `lab "${name}" already exists`,
      "run `kosmosctl lab down` first, or pick --name",
    );
  }
  await mkdir(files.dir, { recursive: true, mode: 0o700 });
  const token = randomBytes(24).toString("hex");
  await writeFile(files.token, `${token}\n`, { mode: 0o600 });
  await writeFile(files.secret, randomBytes(32), { mode: 0o600 });
  await writeFile(files.plan, JSON.stringify(plan, null, 2));
  const total = 1 + (opts.noAgents ? 0 : plan.nodes.length * 3);
  let done = 0;
  const step = (s: string) => opts.progress?.(s, ++done, total);
  try {
    await buildNetwork(plan);
    step("network");
    if (opts.noAgents) return { plan, token, files };
    for (const node of plan.nodes) {
      await startAgent(name, plan, node, token, opts);
      step(`start agent ${node.name}`);
    }
    for (const node of plan.nodes) {
      await waitAgentHealthy(name, node.name);
      step(`agent ${node.name} up`);
    }
    // Like the controller: seed a few agents (the first node of each cluster); the rest learn by gossip.
    const firstPerCluster = plan.clusters
      .map((c) => plan.nodes.find((n) => n.cluster === c.name))
      .filter((n): n is LabNodePlan => n !== undefined);
    const seedTargets = opts.seedCount === undefined ? firstPerCluster : plan.nodes.slice(0, opts.seedCount);
    for (const node of seedTargets) await seedAgent(name, node.name, plan, token);
    for (const node of plan.nodes) {
      if (!opts.noWait) await waitAgentReady(name, node.name, 60_000);
      step(`agent ${node.name} ready`);
    }
  } catch (e) {
    (e as Error).message +=
      ` (lab "${name}" left up for inspection; remove it with \`kosmosctl lab down --name ${name}\`)`;
    throw e;
  }
  return { plan, token, files };
}

export async function labDown(name: string): Promise<{ namespaces: number; processes: number }> {
  // The lab's Kubernetes clusters first: their kubelets stop their pods (lazy: kubernetes.ts imports this file).
  const { stopLabKubernetes } = await import("./kubernetes.ts");
  await stopLabKubernetes(name);
  const res = await teardownNetwork(`kl-${name}-`);
  await rm(labFiles(name).dir, { recursive: true, force: true });
  return res;
}

export interface NodeStatusRow {
  node: string;
  cluster: string;
  namespace: string;
  underlay: string[];
  gatewayCandidate: boolean;
  pid?: number;
  ready: boolean;
  detail: string;
  socket: string;
  endpoint: string;
  agent?: Record<string, unknown>;
}

export async function labStatus(name: string): Promise<{ plan: LabPlan; nodes: NodeStatusRow[] }> {
  const { plan } = await loadLab(name);
  const nodes = await Promise.all(
    plan.nodes.map(async (n): Promise<NodeStatusRow> => {
      const pidFile = join(nodeDir(name, n.name), "agent.pid");
      const pid = existsSync(pidFile) ? Number((await readFile(pidFile, "utf8")).trim()) : undefined;
      // The lab's own agent process, or (after `kosmosctl install`) the DaemonSet's pod on the node.
      const ds = daemonSetAgentSocket(name, n.name);
      const sock = pid === undefined && existsSync(ds) ? ds : agentSocket(name, n.name);
      const via = sock === ds ? " (DaemonSet pod)" : "";
      let ready = false;
      let detail = `agent not answering${via}`;
      let agent: Record<string, unknown> | undefined;
      try {
        const r = await agentFetch(sock, "/v1/state", { timeoutMs: 2000 });
        agent = (await r.json()) as Record<string, unknown>;
        ready = agent.ready === true;
        detail = (ready ? "ready" : String(agent.waiting ?? agent.lastError ?? "not ready")) + via;
      } catch {
        /* agent down */
      }
      return {
        node: n.name,
        cluster: n.cluster,
        namespace: n.ns,
        underlay: [n.ipv4, n.ipv6],
        gatewayCandidate: n.gatewayCandidate,
        pid,
        ready,
        detail,
        socket: sock,
        endpoint: `https://${n.ipv4}:${LAB_AGENT_PORT}`,
        agent,
      };
    }),
  );
  return { plan, nodes };
}

/** Resolve `c1/node-1[/pod-1]`, `c1-node-1`, `c1-node-1-pod-1` or `fabric` to a namespace. */
export function resolveTarget(
  plan: LabPlan,
  target: string,
): { ns: string; kind: "node" | "pod" | "fabric"; id: string } {
  if (target === "fabric") return { ns: plan.fabricNs, kind: "fabric", id: "fabric" };
  const parts = target.split("/");
  const id = parts.length >= 2 ? parts.join("-") : target;
  for (const n of plan.nodes) {
    if (n.name === id) return { ns: n.ns, kind: "node", id };
    for (const p of n.pods) if (p.id === id) return { ns: p.ns, kind: "pod", id };
  }
  const known = plan.nodes.flatMap((n) => [
    `${n.cluster}/${n.short}`,
    ...n.pods.map((p) => `${n.cluster}/${n.short}/${p.name}`),
  ]);
  throw new LabError(
    "LAB_TARGET_UNKNOWN",
    `no node or pod "${target}" in lab ${plan.name}`,
    `one of: ${known.join(", ")}`,
  );
}
