/**
 * `kosmosctl check --lab -p dns`: clusterset names from every pod of the lab (docs/check.md
 * "Clusterset names"). In a Kubernetes lab the pods are the ones the lab kubelets run — every pod
 * sandbox (its own network namespace: not hostNetwork) with a process in it (Running), found on the
 * nodes themselves so that the check runs with every API server down; in a network-only lab, the
 * lab's pod namespaces. Probes run on this machine (the lab's host), inside each pod.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import type { AgentTarget } from "../exec/index.ts";
import { KubeClient, loadKubeConfig } from "../kube/index.ts";
import { sandboxNames } from "../kubelet/index.ts";
import {
  agentSocket,
  labFiles,
  type LabKubeState,
  type LabPlan,
  loadLab,
  readKubeState,
  sh,
} from "../lab/index.ts";
import {
  AgentExecutor,
  type ClustersetReport,
  expectationsFrom,
  localPodRun,
  NetcheckError,
  type PodExecutor,
  type ResolverPod,
  runClustersetCheck,
} from "../netcheck/index.ts";
import { defaultRunner } from "../sys/index.ts";
import { FAIL, OK, type OutputFormat, printData, renderTable } from "./output.ts";

/** A lab kubelet's root on the host (`--root`): pods/<uid>/, host/ (hostPath volumes). */
const kubeletRoot = (lab: string, node: string): string =>
  join(labFiles(lab).dir, "kubernetes", "nodes", node);

/** The namespace a pod's resolv.conf says it is in (first search domain `<ns>.svc.<domain>`). */
export function namespaceFromResolvConf(text: string): string | undefined {
  const search = /^\s*search\s+(\S+)/m.exec(text)?.[1];
  return search && /\.svc\./.test(search) ? search.split(".")[0] : undefined;
}

/**
 * The container processes of every network namespace, by the namespace's inode: processes in a UTS
 * namespace of their own (a pod's containers have the pod's hostname; the kubelet's probes and
 * `ip netns exec` visitors keep this machine's), oldest pid first. One pass over /proc (`ip netns
 * pids` scans all of /proc once per namespace).
 */
function containerProcesses(): Map<number, number[]> {
  const out = new Map<number, number[]>();
  const inode = (link: string): number => Number(/\[(\d+)\]/.exec(link)?.[1] ?? -1);
  let ownUts: string;
  try {
    ownUts = readlinkSync("/proc/self/ns/uts");
  } catch {
    return out;
  }
  const pids = readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .sort((a, b) => a - b);
  for (const pid of pids) {
    try {
      if (readlinkSync(`/proc/${pid}/ns/uts`) === ownUts) continue;
      const net = inode(readlinkSync(`/proc/${pid}/ns/net`));
      out.set(net, [...(out.get(net) ?? []), pid]);
    } catch {
      /* gone meanwhile, or a kernel thread */
    }
  }
  return out;
}

/** The pods the lab kubelets run in their own network namespaces with a process in it. */
async function kubeletPods(plan: LabPlan): Promise<ResolverPod[]> {
  const out: ResolverPod[] = [];
  const procs = containerProcesses();
  for (const n of plan.nodes) {
    const dir = join(kubeletRoot(plan.name, n.name), "pods");
    const uids = existsSync(dir) ? readdirSync(dir) : [];
    for (const uid of uids) {
      const { ns } = sandboxNames(`${n.ns}-`, uid);
      const netFile = `/run/netns/${ns}`;
      // hostNetwork (no sandbox of its own) or not running: no candidate.
      const candidates = existsSync(netFile) ? (procs.get(statSync(netFile).ino) ?? []) : [];
      let found: { pid: number; name: string } | undefined;
      for (const pid of candidates) {
        // The pod's hostname (its name), read in its UTS namespace; a process gone meanwhile fails.
        const h = await sh(["nsenter", "-t", String(pid), "-u", "cat", "/proc/sys/kernel/hostname"], {
          allowFail: true,
        });
        if (h.code === 0 && h.stdout.trim()) {
          found = { pid, name: h.stdout.trim() };
          break;
        }
      }
      if (!found) continue;
      const { pid, name } = found;
      const resolv = join(dir, uid, "resolv.conf");
      const podNs = existsSync(resolv) ? namespaceFromResolvConf(readFileSync(resolv, "utf8")) : undefined;
      out.push({
        id: `${n.cluster}/${podNs ?? "?"}/${name}`,
        cluster: n.cluster,
        node: n.name,
        execPrefix: ["nsenter", "-t", String(pid), "-n", "-m", "--"],
      });
    }
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : 1));
}

/**
 * Where each node's agent answers: its admin socket — in a Kubernetes lab in the node's
 * /var/lib/kosmos hostPath (the agents are the DaemonSet's pods), else where `lab up` started it.
 */
export function labAgentTargets(plan: LabPlan, kubernetes: boolean): Record<string, AgentTarget> {
  return Object.fromEntries(
    plan.nodes.map((n) => [
      n.name,
      {
        url: `unix:${kubernetes ? join(kubeletRoot(plan.name, n.name), "host/var/lib/kosmos/agent.sock") : agentSocket(plan.name, n.name)}`,
      },
    ]),
  );
}

/** A lab's pods the clusterset check asks, and its agents (Kubernetes lab or network-only). */
export async function labResolverPods(name: string): Promise<{
  pods: ResolverPod[];
  /** The agents' addresses (admin sockets), as an inventory file names them. */
  targets: Record<string, AgentTarget>;
  plan: LabPlan;
  kube?: LabKubeState;
}> {
  const { plan } = await loadLab(name);
  const kube = await readKubeState(name);
  const targets = labAgentTargets(plan, kube !== undefined);
  if (!kube) {
    const pods = plan.nodes.flatMap((n) =>
      n.pods.map((p) => ({
        id: p.id,
        cluster: p.cluster,
        node: n.name,
        execPrefix: ["ip", "netns", "exec", p.ns],
      })),
    );
    return { pods, targets, plan };
  }
  return { pods: await kubeletPods(plan), targets, plan, kube };
}

export interface ClustersetFlags {
  name: string;
  src?: string[];
  timeout: number;
  retries: number;
  concurrency: number;
  output: OutputFormat;
}

/** Per name and type: the answer checked and how many pods got it. */
function nameRows(rep: ClustersetReport): Array<Array<string | number>> {
  const by = new Map<string, { want: Set<string>; ok: number; n: number; headless: boolean }>();
  for (const r of rep.results) {
    const k = `${r.name} ${r.type}`;
    const e = by.get(k) ?? { want: new Set<string>(), ok: 0, n: 0, headless: r.headless };
    e.want.add(r.want.join(",") || "none");
    e.n++;
    if (r.ok) e.ok++;
    by.set(k, e);
  }
  return [...by.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, e]) => {
      const [name, type] = k.split(" ");
      return [
        name ?? "",
        type ?? "",
        e.headless ? "Headless" : "ClusterSetIP",
        [...e.want].join(" | "),
        `${e.ok === e.n ? OK : FAIL} ${e.ok}/${e.n}`,
      ];
    });
}

export function renderClustersetReport(rep: ClustersetReport): string {
  const lines: string[] = [];
  if (rep.results.length) lines.push(renderTable(["NAME", "TYPE", "IMPORT", "WANT", "PODS"], nameRows(rep)));
  const failed = rep.results.filter((r) => !r.ok);
  if (failed.length) {
    lines.push(
      renderTable(
        ["POD", "RESOLVER", "NAME", "TYPE", "HOP", "GOT", "WANT", "DETAIL"],
        failed.map((r) => [
          r.pod,
          r.resolver,
          r.name,
          r.type,
          r.hop ?? "",
          r.got.join(",") || "-",
          r.want.join(",") || "-",
          r.detail,
        ]),
      ),
    );
  }
  for (const [pod, err] of Object.entries(rep.podErrors)) lines.push(`${FAIL} ${pod}: ${err}`);
  lines.push("expected answers from:");
  for (const [k, v] of Object.entries(rep.sources)) lines.push(`  ${k}: ${v}`);
  const names = new Set(rep.results.map((r) => r.name)).size;
  const bad = rep.failed > 0 || Object.keys(rep.podErrors).length > 0;
  lines.push(
    `${rep.passed}/${rep.lookups} clusterset lookups passed (${names} names, ${rep.pods} pods, each asking its own resolver) in ${(rep.durationMs / 1000).toFixed(1)} s ${bad ? FAIL : OK}`,
  );
  return lines.join("\n");
}

/**
 * Run the check over `pods`, print the report, set the exit code (both `--lab` and `--inventory`).
 * `podErrors`: pods known not to be checkable before the run (they count as failures).
 */
export async function runClustersetAction(
  label: string,
  pods: ResolverPod[],
  podErrors: Record<string, string>,
  expected: Parameters<typeof runClustersetCheck>[2],
  exec: PodExecutor,
  o: ClustersetFlags & { concurrencyCap: number },
): Promise<void> {
  const rep = await runClustersetCheck(label, pods, expected, exec, {
    timeoutSec: o.timeout,
    retries: o.retries,
    concurrency: Math.min(o.concurrency, o.concurrencyCap),
  });
  rep.podErrors = { ...podErrors, ...rep.podErrors };
  rep.pods += Object.keys(podErrors).length;
  if (rep.lookups === 0 && Object.keys(rep.podErrors).length === 0)
    throw new NetcheckError(
      "NO_PAIRS",
      `no ServiceImport is visible to the pods of ${label}: no clusterset name to check`,
      "export a Service (a ServiceExport next to it, docs/services.md)",
    );
  printData(o.output, rep, () => renderClustersetReport(rep));
  process.exitCode = rep.failed > 0 || Object.keys(rep.podErrors).length > 0 ? 1 : 0;
}

/** `kosmosctl check --lab -p dns`: run, print, set the exit code. */
export async function clustersetAction(o: ClustersetFlags): Promise<void> {
  const inv = await labResolverPods(o.name);
  const clients = new Map(
    (inv.kube?.clusters ?? []).map((c) => [c.name, new KubeClient(loadKubeConfig(c.kubeconfig))]),
  );
  try {
    const pods = inv.pods.filter((p) => !o.src || o.src.includes(p.cluster));
    if (pods.length === 0)
      throw new NetcheckError(
        "NO_PAIRS",
        `no pod to ask in lab ${o.name}${o.src ? ` (clusters ${o.src.join(",")})` : ""}`,
        inv.kube
          ? "run some pods (hostNetwork pods use their node's resolver and are left out)"
          : "is the lab up?",
      );
    const runner = defaultRunner();
    // Probes run on this machine: a few pods at a time.
    await runClustersetAction(
      `lab/${o.name}`,
      pods,
      {},
      expectationsFrom(clients, new AgentExecutor(inv.targets)),
      (pod) => localPodRun(runner, pod.execPrefix),
      { ...o, concurrencyCap: 4 },
    );
  } finally {
    for (const c of clients.values()) c.close();
  }
}
