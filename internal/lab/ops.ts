/**
 * Operations on a running lab (tests, benchmarks, demos): add a node, partition / heal two
 * clusters, kill / restart an agent. They change the substrate the way a real cluster would
 * change (a new machine, a broken link, a crashed process) and, for a new node, update the lab's
 * plan and seed the new topology into ONE agent, as the controller would: the rest is gossip.
 */
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { familyOf, hostAt, prefixLen, subnet } from "./addr.ts";
import {
  type AgentLaunch,
  agentFetch,
  agentSocket,
  LabError,
  labFiles,
  loadLab,
  nodeDir,
  seedAgent,
  startAgent,
  waitAgentHealthy,
  waitAgentReady,
} from "./lab.ts";
import { buildNode, buildPod, cniGateway, cniMac, renderFabricFilter, renderKubeProxy } from "./network.ts";
import type { LabClusterPlan, LabNodePlan, LabPlan, LabPodPlan } from "./plan.ts";
import { inNs, ipBatch, isRunning, sh } from "./sh.ts";

async function savePlan(lab: string, plan: LabPlan): Promise<void> {
  await writeFile(labFiles(lab).plan, JSON.stringify(plan, null, 2));
}

function clusterOf(plan: LabPlan, cluster: string): LabClusterPlan {
  const c = plan.clusters.find((x) => x.name === cluster);
  if (!c) {
    throw new LabError(
      "LAB_TARGET_UNKNOWN",
      `no cluster "${cluster}" in lab ${plan.name}`,
      `one of: ${plan.clusters.map((x) => x.name).join(", ")}`,
    );
  }
  return c;
}

function nodeOf(plan: LabPlan, node: string): LabNodePlan {
  const n = plan.nodes.find((x) => x.name === node || `${x.cluster}/${x.short}` === node);
  if (!n) {
    throw new LabError(
      "LAB_TARGET_UNKNOWN",
      `no node "${node}" in lab ${plan.name}`,
      `one of: ${plan.nodes.map((x) => x.name).join(", ")}`,
    );
  }
  return n;
}

/** Same offset inside the cluster's global CIDR (IPv4 only), as planLab does. */
function globalOf(ip: string, globalCIDRs: Record<string, string>): string | undefined {
  const num = (a: string) => a.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  for (const [local, global] of Object.entries(globalCIDRs)) {
    if (familyOf(local) !== 4 || familyOf(ip) !== 4) continue;
    const base = num(local.split("/")[0] ?? "");
    const off = num(ip) - base;
    if (off >= 0 && off < 2 ** (32 - prefixLen(local))) return hostAt(global, off);
  }
  return undefined;
}

/** Pure: the plan of one more node in `cluster` (next free index), its pods, and the updated lab plan. */
export function planAddNode(
  plan: LabPlan,
  cluster: string,
  opts: { name?: string; gateway?: boolean } = {},
): {
  plan: LabPlan;
  node: LabNodePlan;
} {
  const c = clusterOf(plan, cluster);
  const peers = plan.nodes.filter((n) => n.cluster === cluster);
  const index = Math.max(0, ...peers.map((n) => n.index)) + 1;
  if (index > 200)
    throw new LabError("LAB_TARGET_UNKNOWN", `cluster ${cluster} is full`, "at most 200 nodes per cluster");
  const short = opts.name ?? `node-${index}`;
  const name = `${cluster}-${short}`;
  if (plan.nodes.some((n) => n.name === name)) {
    throw new LabError(
      "LAB_EXISTS",
      `node ${name} already exists in lab ${plan.name}`,
      "pick another --name",
    );
  }
  const gateway = opts.gateway ?? false;
  const pod4 = c.podCIDRs.find((p) => familyOf(p) === 4);
  const pod6 = c.podCIDRs.find((p) => familyOf(p) === 6);
  const nodePod4 = pod4 ? subnet(pod4, 24, index) : undefined;
  const nodePod6 = pod6 ? subnet(pod6, 64, index) : undefined;
  const podsPerNode = peers[0]?.pods.length ?? 1;
  const node: LabNodePlan = {
    name,
    short,
    cluster,
    clusterIndex: c.index,
    index,
    ns: `${plan.prefix}${name}`,
    fabricIf: `c${c.index}n${index}`,
    ipv4: hostAt(c.lan4, index),
    ipv6: hostAt(c.lan6, index),
    gatewayCandidate: gateway,
    portMappings: [],
    podCIDRs: [nodePod4, nodePod6].filter((x): x is string => x !== undefined),
    pods: [],
  };
  for (let j = 1; j <= podsPerNode; j++) {
    const id = `${name}-pod-${j}`;
    const ipv4 = nodePod4 ? hostAt(nodePod4, j + 1) : undefined;
    const pod: LabPodPlan = {
      id,
      name: `pod-${j}`,
      node: name,
      cluster,
      ns: `${plan.prefix}${id}`,
      hostIf: `pod${j}`,
      ipv4,
      ipv6: nodePod6 ? hostAt(nodePod6, j + 1) : undefined,
      globalIPv4: ipv4 ? globalOf(ipv4, c.globalCIDRs) : undefined,
    };
    node.pods.push(pod);
  }
  const services = plan.services.map((s) =>
    s.cluster !== cluster
      ? s
      : {
          ...s,
          backends4: [...s.backends4, ...node.pods.flatMap((p) => (p.ipv4 ? [p.ipv4] : []))],
          backends6: [...s.backends6, ...node.pods.flatMap((p) => (p.ipv6 ? [p.ipv6] : []))],
        },
  );
  const next: LabPlan = {
    ...plan,
    nodes: [...plan.nodes, node],
    services,
    topology: {
      ...plan.topology,
      nodes: [
        ...plan.topology.nodes,
        {
          name,
          cluster,
          ipv4: c.ipFamily !== "ipv6" ? node.ipv4 : undefined,
          ipv6: c.ipFamily !== "ipv4" ? node.ipv6 : undefined,
          podCIDRs: node.podCIDRs,
          gatewayCandidate: gateway,
          interfaceName: "eth0",
          underlayMTU: 1500,
        },
      ],
    },
  };
  return { plan: next, node };
}

/** `nft -f` input replacing table `family name` atomically (creating it first makes the delete safe). */
function replaceTable(family: string, name: string, body: string): string {
  return `table ${family} ${name}\ndelete table ${family} ${name}\n${body}`;
}

/** The first agent of the lab that answers /healthz (the one to seed), excluding `except`. */
async function liveAgent(lab: string, plan: LabPlan, except: string[] = []): Promise<string> {
  for (const n of plan.nodes) {
    if (except.includes(n.name)) continue;
    try {
      const r = await agentFetch(agentSocket(lab, n.name), "/healthz", { timeoutMs: 1000 });
      if (r.ok) return n.name;
    } catch {
      /* down */
    }
  }
  throw new LabError(
    "LAB_AGENT_FAILED",
    `no agent of lab ${lab} answers`,
    "restart one with labRestartAgent",
  );
}

export interface AddNodeOptions extends AgentLaunch {
  /** Short node name (default node-<next index>). */
  name?: string;
  /** Gateway candidate (gateway-mode clusters). */
  gateway?: boolean;
  /** Agent to seed the new topology into (default: the first live one). */
  seedNode?: string;
  /** Wait until the new agent has applied its plan (default true). */
  wait?: boolean;
}

/**
 * Add a node to a running lab: namespace, veth on the cluster LAN, host-gw routes both ways with
 * the cluster's nodes, pods, the kube-proxy table (all nodes of the cluster get the new backends),
 * the fabric filter (a new gateway candidate may cross), its agent; then the lab plan is updated
 * and the new topology seeded into ONE existing agent. The new agent learns it by gossip.
 */
export async function labAddNode(
  lab: string,
  cluster: string,
  opts: AddNodeOptions = {},
): Promise<LabNodePlan> {
  const { plan: old, token } = await loadLab(lab);
  const { plan, node } = planAddNode(old, cluster, opts);
  const c = clusterOf(plan, cluster);
  await savePlan(lab, plan);
  await buildNode(plan, node);
  for (const pod of node.pods) await buildPod(node, pod);
  // host-gw routes from the cluster's other nodes to the new node's pod CIDRs.
  for (const other of plan.nodes) {
    if (other.cluster !== cluster || other.name === node.name) continue;
    const lines = node.podCIDRs.map(
      (cidr) => `route replace ${cidr} via ${familyOf(cidr) === 6 ? node.ipv6 : node.ipv4} proto static`,
    );
    await ipBatch(other.ns, lines);
    const svc = plan.services.find((s) => s.cluster === cluster);
    if (svc && svc.backends4.length + svc.backends6.length > 0) {
      await inNs(other.ns, ["nft", "-f", "-"], {
        input: replaceTable("inet", "labproxy", renderKubeProxy(svc, c)),
      });
    }
  }
  if (node.gatewayCandidate && c.networkType === "gateway") {
    await inNs(plan.fabricNs, ["nft", "-f", "-"], {
      input: replaceTable("inet", "labfabric", renderFabricFilter(plan)),
    });
  }
  const seedNode = opts.seedNode ?? (await liveAgent(lab, plan, [node.name]));
  await startAgent(lab, plan, node, token, opts);
  await waitAgentHealthy(lab, node.name);
  await seedAgent(lab, seedNode, plan, token);
  if (opts.wait ?? true) await waitAgentReady(lab, node.name, 60_000);
  return node;
}

// ---------------------------------------------------------------------------------------------
// Partitions: a table of its own in the fabric netns, re-rendered from <lab>/partitions.json.

function partitionsFile(lab: string): string {
  return join(labFiles(lab).dir, "partitions.json");
}

async function loadPartitions(lab: string): Promise<Array<[string, string]>> {
  const f = partitionsFile(lab);
  if (!existsSync(f)) return [];
  return JSON.parse(await readFile(f, "utf8")) as Array<[string, string]>;
}

/** Pure: nft table dropping forwarding between the LANs of each partitioned cluster pair. */
export function renderPartitions(plan: LabPlan, pairs: Array<[string, string]>): string {
  const lines = [
    "table inet labpartition {",
    "  chain forward {",
    "    type filter hook forward priority -10; policy accept;",
  ];
  for (const [a, b] of pairs) {
    const ba = clusterOf(plan, a).bridge;
    const bb = clusterOf(plan, b).bridge;
    lines.push(`    iifname "${ba}" oifname "${bb}" drop`, `    iifname "${bb}" oifname "${ba}" drop`);
  }
  lines.push("  }", "}");
  return `${lines.join("\n")}\n`;
}

async function applyPartitions(lab: string, plan: LabPlan, pairs: Array<[string, string]>): Promise<void> {
  await writeFile(partitionsFile(lab), JSON.stringify(pairs));
  await inNs(plan.fabricNs, ["nft", "-f", "-"], {
    input: replaceTable("inet", "labpartition", renderPartitions(plan, pairs)),
  });
}

const samePair = (p: [string, string], a: string, b: string) =>
  (p[0] === a && p[1] === b) || (p[0] === b && p[1] === a);

/** Drop all forwarding between the LANs of clusters A and B (both directions, every protocol). */
export async function labPartition(
  lab: string,
  clusterA: string,
  clusterB: string,
): Promise<Array<[string, string]>> {
  const { plan } = await loadLab(lab);
  clusterOf(plan, clusterA);
  clusterOf(plan, clusterB);
  const pairs = (await loadPartitions(lab)).filter((p) => !samePair(p, clusterA, clusterB));
  pairs.push([clusterA, clusterB]);
  await applyPartitions(lab, plan, pairs);
  return pairs;
}

/** Allow forwarding between A and B again (no-op when they were not partitioned). */
export async function labHeal(
  lab: string,
  clusterA: string,
  clusterB: string,
): Promise<Array<[string, string]>> {
  const { plan } = await loadLab(lab);
  const pairs = (await loadPartitions(lab)).filter((p) => !samePair(p, clusterA, clusterB));
  await applyPartitions(lab, plan, pairs);
  return pairs;
}

/** Remove every partition of the lab. */
export async function labHealAll(lab: string): Promise<void> {
  const { plan } = await loadLab(lab);
  await applyPartitions(lab, plan, []);
}

// ---------------------------------------------------------------------------------------------
// Agent processes.

/**
 * The process exists and is not a zombie. An agent started with `setsid -f` is reparented to PID 1,
 * which may reap it a second or two after it died: until then kill(pid, 0) still succeeds.
 */
/** The pid the agent of `node` wrote (undefined when it never started or the file is gone). */
export async function labAgentPid(lab: string, node: string): Promise<number | undefined> {
  const f = join(nodeDir(lab, node), "agent.pid");
  if (!existsSync(f)) return undefined;
  const pid = Number((await readFile(f, "utf8")).trim());
  return Number.isInteger(pid) && pid > 1 && isRunning(pid) ? pid : undefined;
}

/**
 * Kill the agent of `node` (SIGKILL by default: no goodbye to peers) and wait until it is gone;
 * `links: true` also takes the node's eth0 down (the machine is gone, not just the process).
 */
export async function labKillAgent(
  lab: string,
  node: string,
  opts: { links?: boolean; signal?: "SIGKILL" | "SIGTERM" } = {},
): Promise<number | undefined> {
  const { plan } = await loadLab(lab);
  const n = nodeOf(plan, node);
  const pid = await labAgentPid(lab, n.name);
  if (pid !== undefined) {
    process.kill(pid, opts.signal ?? "SIGKILL");
    const deadline = Date.now() + 10_000;
    while (isRunning(pid) && Date.now() < deadline) await Bun.sleep(20);
    if (isRunning(pid)) process.kill(pid, "SIGKILL");
  }
  if (opts.links) await ipBatch(n.ns, ["link set eth0 down"]);
  return pid;
}

/** Bring the node's eth0 back with its addresses, default routes and host-gw routes (idempotent). */
export async function labRestoreLinks(lab: string, node: string): Promise<void> {
  const { plan } = await loadLab(lab);
  const n = nodeOf(plan, node);
  const c = clusterOf(plan, n.cluster);
  const lines = [
    "link set eth0 up",
    `addr replace ${n.ipv4}/24 dev eth0`,
    `addr replace ${n.ipv6}/64 dev eth0 nodad`,
    `route replace default via ${c.router4}`,
    `route replace default via ${c.router6}`,
  ];
  for (const other of plan.nodes) {
    if (other.cluster !== n.cluster || other.name === n.name) continue;
    for (const cidr of other.podCIDRs) {
      lines.push(`route replace ${cidr} via ${familyOf(cidr) === 6 ? other.ipv6 : other.ipv4} proto static`);
    }
  }
  await ipBatch(n.ns, lines);
  // cni0 addresses are untouched by eth0 going down; make sure the bridge is up anyway.
  await ipBatch(n.ns, [
    `link set cni0 address ${cniMac(n.ns)}`,
    "link set cni0 up",
    ...n.podCIDRs.map(
      (p) => `addr replace ${cniGateway(p)}/${p.split("/")[1]} dev cni0${familyOf(p) === 6 ? " nodad" : ""}`,
    ),
  ]);
}

export interface RestartOptions extends AgentLaunch {
  /** Wait for /readyz (default true). */
  wait?: boolean;
  /** Replace the SQLite replica with garbage before starting (corruption drill). */
  corruptDb?: boolean;
}

/**
 * (Re)start the agent of `node`: kills a running one first, restores its links, starts a fresh
 * process with the same flags, waits until healthy (and ready unless `wait: false`).
 */
export async function labRestartAgent(
  lab: string,
  node: string,
  opts: RestartOptions = {},
): Promise<number | undefined> {
  const { plan, token } = await loadLab(lab);
  const n = nodeOf(plan, node);
  await labKillAgent(lab, n.name);
  await labRestoreLinks(lab, n.name);
  if (opts.corruptDb) {
    const db = join(nodeDir(lab, n.name), "kosmos.db");
    await writeFile(db, `this is not a SQLite database ${Date.now()}\n`.repeat(64));
    for (const side of ["-wal", "-shm"]) await sh(["rm", "-f", `${db}${side}`]);
  }
  await sh(["rm", "-f", join(nodeDir(lab, n.name), "agent.pid")]);
  await startAgent(lab, plan, n, token, opts);
  await waitAgentHealthy(lab, n.name);
  if (opts.wait ?? true) await waitAgentReady(lab, n.name, 60_000);
  return labAgentPid(lab, n.name);
}
