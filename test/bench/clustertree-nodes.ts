/**
 * ClusterTree virtual-node capacity with a 1,000-node leaf (issue 14, "Benchmarks"): a real root and
 * one real leaf (API server only: its 1,000 Nodes are API objects — Ready, 4 CPU / 8Gi / 110 pods —
 * with no kubelet renewing a Lease, so the leaf runs no node-lifecycle controller that would mark them
 * Unknown), kosmos-clustertree as its own process. In one run:
 *   (a) start → the one2cluster virtual node's capacity equals the aggregate of the 1,000 nodes;
 *       baseline: a plain informer listing the same 1,000 nodes;
 *   (b) a burst: every leaf node's allocatable CPU +1m, 16 patches in flight;
 *   (c) a burst of Ready=False on 100 nodes, then Ready=True again;
 *   (d) a steady rate: $CT_NODES_RATE patches/s (default 20) for $CT_NODES_STEADY_S s (default 30);
 *   (e) one2node for a subset ($CT_NODES_ONE2ONE leaf nodes, default 100; 0 skips): the Cluster's
 *       leafModels switched to name them, time until each has its own root node with its capacity, then
 *       a burst on those nodes.
 * For each change phase: how many status updates the virtual node(s) got and per second, the k-th
 * change sent → the root's capacity counting k changes (p50/p99), the last change → the root showing
 * it, and clustertree's CPU. Baseline (same run): the same changes seen by a plain watch on the leaf —
 * what the leaf API server itself delivers. clustertree's RSS at the end.
 *
 * Run directly: bun test/bench/clustertree-nodes.ts   ($CT_NODES, default 1000)
 */
import { type NodeObject, parseQuantity } from "../../internal/clustertree/index.ts";
import { Informer, type KubeClient } from "../../internal/kube/index.ts";
import { registerNodes, type StandInNode } from "../helpers/kubelet-standin.ts";
import { clusterObject, spawnClusterTree, startTreeLab, type TreeLab } from "../helpers/tree-lab.ts";
import { type BenchResult, cpuMs, percentile, printResults, rssKb } from "./lib.ts";

const N = Number(process.env.CT_NODES ?? 1000);
const RATE = Number(process.env.CT_NODES_RATE ?? 20);
const STEADY_S = Number(process.env.CT_NODES_STEADY_S ?? 30);
const ONE2ONE = Math.min(N, Number(process.env.CT_NODES_ONE2ONE ?? 100));
const FLIPS = Math.min(Math.floor(N / 2), 100);
const CONCURRENCY = 16;
const TIMEOUT_MS = 120_000;
const VNODE = "kosmos-leaf1";

const cpuOf = (n: NodeObject | undefined, f: "capacity" | "allocatable" = "capacity"): bigint =>
  n?.status?.[f]?.cpu ? parseQuantity(n.status[f].cpu) : 0n;
const isReady = (n: NodeObject): boolean =>
  n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

interface Change {
  t: number;
  name: string;
  cpu: bigint;
}

/** A watch on Nodes recording each change of `shape` (time, node, CPU), with waits on its cache. */
function track(client: KubeClient, name: string, shape: (n: NodeObject) => string, labelSelector?: string) {
  const inf = new Informer<NodeObject>({ client, path: "/api/v1/nodes", name, labelSelector });
  const changes: Change[] = [];
  let waiters: { ok: () => boolean; done: (t: number) => void }[] = [];
  const check = (): void => {
    const t = performance.now();
    waiters = waiters.filter((w) => {
      if (!w.ok()) return true;
      w.done(t);
      return false;
    });
  };
  const on = (n: NodeObject, old?: NodeObject): void => {
    if (!old || shape(n) !== shape(old))
      changes.push({ t: performance.now(), name: n.metadata.name, cpu: cpuOf(n) });
    check();
  };
  inf
    .on("add", (n) => on(n))
    .on("update", on)
    .on("delete", check)
    .start();
  return {
    inf,
    changes,
    /** Resolves with the time `ok` first held (now, if it holds already). */
    until(ok: () => boolean, what: string): Promise<number> {
      if (ok()) return Promise.resolve(performance.now());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${what}: not in ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
        waiters.push({
          ok,
          done: (t) => {
            clearTimeout(timer);
            resolve(t);
          },
        });
      });
    },
  };
}
type Tracker = ReturnType<typeof track>;

/** Send `patches` (CONCURRENCY in flight, or paced at `rate`/s); the send time of each, in order. */
async function send(patches: (() => Promise<unknown>)[], rate?: number): Promise<number[]> {
  const sent: number[] = [];
  const t0 = performance.now();
  let next = 0;
  if (rate) {
    const inFlight: Promise<unknown>[] = [];
    for (const [i, p] of patches.entries()) {
      const wait = t0 + (i * 1000) / rate - performance.now();
      if (wait > 0) await Bun.sleep(wait); // pacing the load, not waiting for a state
      sent.push(performance.now());
      inFlight.push(p());
    }
    await Promise.all(inFlight);
    return sent;
  }
  const worker = async (): Promise<void> => {
    while (next < patches.length) {
      const p = patches[next++] as () => Promise<unknown>;
      sent.push(performance.now());
      await p();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return sent;
}

/** Times at which a watch's CPU sum over `names` first reached base + k, k = 1..count. */
function reachTimes(changes: Change[], from: number, base: bigint, count: number): number[] {
  const out: number[] = [];
  let k = 1;
  for (const c of changes.slice(from)) {
    while (k <= count && c.cpu >= base + BigInt(k)) {
      out.push(c.t);
      k++;
    }
  }
  return out;
}

interface Env {
  lab: TreeLab;
  leaf: KubeClient;
  leafW: Tracker;
  rootW: Tracker;
  pid: number;
  /** The CPU (milli) each leaf node has now, as the bench last set it. */
  cpu: Map<string, bigint>;
}

const cpuPatch = (e: Env, node: string): (() => Promise<unknown>) => {
  const v = (e.cpu.get(node) as bigint) + 1n;
  e.cpu.set(node, v);
  const q = `${v}m`;
  return () =>
    e.leaf.patch(
      `/api/v1/nodes/${node}/status`,
      { status: { capacity: { cpu: q }, allocatable: { cpu: q } } },
      "merge",
    );
};

const readyPatch = (e: Env, node: string, ready: boolean): (() => Promise<unknown>) => {
  const t = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const cond = { type: "Ready", status: ready ? "True" : "False", reason: "Bench", message: "bench" };
  return () =>
    e.leaf.patch(
      `/api/v1/nodes/${node}/status`,
      { status: { conditions: [{ ...cond, lastHeartbeatTime: t, lastTransitionTime: t }] } },
      "strategic",
    );
};

/** The aggregate CPU of the leaf (Ready nodes), from the bench's own watch on the leaf. */
const leafCpu = (e: Env, names?: string[]): bigint =>
  (names ? names.map((n) => e.leafW.inf.get(n)) : e.leafW.inf.list())
    .filter((n): n is NodeObject => n !== undefined && isReady(n))
    .reduce((s, n) => s + cpuOf(n, "allocatable"), 0n);

/** One change phase: send, wait for the leaf watch and then the virtual node, report. */
async function phase(
  e: Env,
  label: string,
  patches: (() => Promise<unknown>)[],
  o: { rate?: number; monotonic: boolean; vnodes: string[] },
): Promise<BenchResult[]> {
  const leafFrom = e.leafW.changes.length;
  const rootFrom = e.rootW.changes.length;
  const leafBase = leafCpu(e);
  const rootBase = cpuOf(e.rootW.inf.get(o.vnodes[0] ?? ""));
  const cpu0 = cpuMs(e.pid);
  const sent = await send(patches, o.rate);
  const acked = performance.now();
  const B = patches.length;
  const leafDone = await e.leafW.until(() => e.leafW.changes.length - leafFrom >= B, `${label}: leaf watch`);
  const want = new Map(o.vnodes.map((v) => [v, o.vnodes.length === 1 ? leafCpu(e) : leafCpu(e, [v])]));
  const rootDone = await e.rootW.until(
    () => [...want].every(([v, c]) => cpuOf(e.rootW.inf.get(v)) === c),
    `${label}: virtual node capacity`,
  );
  const cpu = cpuMs(e.pid) - cpu0;
  const updates = e.rootW.changes.length - rootFrom;
  const first = sent[0] as number;
  const last = sent[sent.length - 1] as number;
  const perS = (n: number, until: number): number => n / ((until - first) / 1000);
  const r: BenchResult[] = [
    {
      name: `${label}: leaf Node changes/s the leaf API server took (${B} sent → acked)`,
      value: perS(B, acked),
      unit: "/s",
    },
    {
      name: `${label}: virtual-node capacity updates/s`,
      value: perS(updates, rootDone),
      unit: "/s",
      baseline: { name: "leaf Node changes/s a plain watch saw", value: perS(B, leafDone) },
    },
    {
      name: `${label}: virtual-node capacity updates`,
      value: updates,
      unit: "",
      baseline: { name: "leaf Node changes", value: B },
    },
    {
      name: `${label}: last change sent → virtual node shows it`,
      value: rootDone - last,
      unit: "ms",
      baseline: { name: "→ leaf watch sees it", value: leafDone - last },
    },
    { name: `${label}: kosmos-clustertree CPU`, value: cpu, unit: "ms" },
  ];
  if (o.monotonic) {
    // every change is +1m: the k-th sent is counted once a sum is base + k
    const leafAt = reachTimes(sumChanges(e.leafW.changes, leafFrom, leafBase), 0, leafBase, B);
    const rootAt = reachTimes(e.rootW.changes, rootFrom, rootBase, B);
    const lat = (at: number[]) => sent.map((s, k) => (at[k] ?? Number.NaN) - s);
    for (const q of [50, 99])
      r.push({
        name: `${label}: k-th change sent → virtual node counts k, p${q}`,
        value: percentile(lat(rootAt), q),
        unit: "ms",
        baseline: { name: "→ leaf watch counts k", value: percentile(lat(leafAt), q) },
      });
  }
  return r;
}

/** A leaf watch's changes as running sums of +1m steps (each recorded change is one node's +1m). */
function sumChanges(changes: Change[], from: number, base: bigint): Change[] {
  return changes.slice(from).map((c, i) => ({ ...c, cpu: base + BigInt(i + 1) }));
}

/** (a): clustertree started → the virtual node's capacity is the aggregate of the leaf's nodes. */
async function startup(e: Env, stopper: { stop: () => Promise<void> }): Promise<BenchResult[]> {
  const t0 = performance.now();
  const { proc } = await spawnClusterTree(e.lab);
  e.pid = proc.pid;
  stopper.stop = async () => {
    proc.kill();
    await proc.exited;
  };
  await e.lab.rootClient.create(
    "/apis/kosmos.io/v1alpha1/clusters",
    clusterObject("leaf1", e.lab.leaves[0]!),
  );
  const want = leafCpu(e);
  const done = await e.rootW.until(() => cpuOf(e.rootW.inf.get(VNODE)) === want, "startup capacity");
  const vn = e.rootW.inf.get(VNODE);
  if (parseQuantity(vn?.status?.capacity?.pods ?? "0") !== BigInt(110 * N) * 1000n)
    throw new Error(`virtual node pods ${vn?.status?.capacity?.pods}, want ${110 * N}`);
  return [
    {
      name: `start → one2cluster virtual node capacity = aggregate of ${N} leaf nodes`,
      value: done - t0,
      unit: "ms",
    },
    { name: "kosmos-clustertree CPU until then", value: cpuMs(proc.pid), unit: "ms" },
  ];
}

/** (e): leafModels naming ONE2ONE leaf nodes: one root node each, then a burst on them. */
async function one2one(e: Env, names: string[]): Promise<BenchResult[]> {
  const t0 = performance.now();
  await e.lab.rootClient.patch(
    "/apis/kosmos.io/v1alpha1/clusters/leaf1",
    {
      spec: {
        clusterTreeOptions: {
          enable: true,
          leafModels: names.map((n) => ({ nodeSelector: { nodeName: n } })),
        },
      },
    },
    "merge",
  );
  const done = await e.rootW
    .until(
      () =>
        !e.rootW.inf.get(VNODE) &&
        names.every((n) => cpuOf(e.rootW.inf.get(n)) === leafCpu(e, [n]) && leafCpu(e, [n]) > 0n),
      "one2node nodes",
    )
    .catch((err: Error) => {
      const have = e.rootW.inf.list().map((n) => `${n.metadata.name}=${cpuOf(n)}`);
      throw new Error(`${err.message}; root has ${have.slice(0, 5).join(" ")} (${have.length})`);
    });
  const burst = await phase(
    e,
    `one2node, ${names.length} nodes, burst +1m each`,
    names.map((n) => cpuPatch(e, n)),
    { monotonic: false, vnodes: names },
  );
  return [
    {
      name: `one2cluster → one2node for ${names.length} leaf nodes: all root nodes with their capacity`,
      value: done - t0,
      unit: "ms",
    },
    ...burst,
  ];
}

export async function run(): Promise<BenchResult[]> {
  const nodes: StandInNode[] = Array.from({ length: N }, (_, i) => ({
    name: `n-${String(i).padStart(4, "0")}`,
    ip: `192.168.${100 + Math.floor(i / 250)}.${(i % 250) + 2}`,
  }));
  const lab = await startTreeLab([[]], { leafComponents: [], standIn: false });
  const leaf = lab.leafClients[0] as KubeClient;
  const ct = { stop: async (): Promise<void> => undefined };
  const trackers: Tracker[] = [];
  try {
    const r0 = performance.now();
    await registerNodes(leaf, nodes, { concurrency: CONCURRENCY, untaint: true });
    const registered = performance.now() - r0;
    const l0 = performance.now();
    const leafW = track(leaf, "bench-leaf", (n) => JSON.stringify([n.status?.allocatable?.cpu, isReady(n)]));
    trackers.push(leafW);
    await leafW.inf.waitSynced();
    const listed = performance.now() - l0;
    const rootW = track(
      lab.rootClient,
      "bench-root",
      (n) => JSON.stringify(n.status?.capacity ?? {}),
      "kosmos.io/node=true",
    );
    trackers.push(rootW);
    await rootW.inf.waitSynced();
    const e: Env = { lab, leaf, leafW, rootW, pid: 0, cpu: new Map(nodes.map((n) => [n.name, 4000n])) };
    const st = await startup(e, ct);
    const names = nodes.map((n) => n.name);
    const one = { monotonic: true, vnodes: [VNODE] };
    const results: BenchResult[] = [
      {
        name: `register ${N} leaf Nodes (create, status, untaint; ${CONCURRENCY} in flight)`,
        value: registered,
        unit: "ms",
      },
      ...st.map((r, i) =>
        i === 0 ? { ...r, baseline: { name: `a plain informer lists the ${N}`, value: listed } } : r,
      ),
      ...(await phase(
        e,
        `burst, ${N} nodes +1m CPU`,
        names.map((n) => cpuPatch(e, n)),
        one,
      )),
      ...(await phase(
        e,
        `Ready=False on ${FLIPS} nodes`,
        names.slice(0, FLIPS).map((n) => readyPatch(e, n, false)),
        { ...one, monotonic: false },
      )),
      ...(await phase(
        e,
        `Ready=True again on ${FLIPS}`,
        names.slice(0, FLIPS).map((n) => readyPatch(e, n, true)),
        { ...one, monotonic: false },
      )),
      ...(await phase(
        e,
        `steady ${RATE}/s for ${STEADY_S} s`,
        Array.from({ length: RATE * STEADY_S }, (_, i) => cpuPatch(e, names[i % N] as string)),
        { ...one, rate: RATE },
      )),
    ];
    if (ONE2ONE > 0) results.push(...(await one2one(e, names.slice(0, ONE2ONE))));
    results.push({ name: "kosmos-clustertree RSS at the end", value: rssKb(e.pid) / 1024, unit: "MiB" });
    return results;
  } finally {
    await ct.stop();
    for (const t of trackers) await t.inf.stop();
    await lab.stop();
  }
}

if (import.meta.main) printResults(await run());
