/**
 * The lab's real Kubernetes clusters (issue 13), in one run:
 *   (b) `kosmosctl lab up` of the default lab (3 clusters, 7 nodes): network only (baseline), then
 *       with `--kubernetes` — time to up, to the first Ready Node, to the first Running pod, and the
 *       RSS of the whole lab summed from /proc (supervisor, etcd, API servers, controller-managers,
 *       schedulers, kubelets, agents, everything in the lab's namespaces), per component too;
 *   (a) pod startup on that lab's cluster c2 (3 nodes, 110 pods each: 300 pods do not fit on 2):
 *       N pods created 16 at a time, created → Running seen by a watch, p50/p90/p99 and pods/s;
 *       baseline: N × (`ip netns add` + a veth on a bridge + addresses/route + start the same program
 *       in it under `unshare -m -u`, until it prints), 16 at a time.
 * N = $KUBELET_BENCH_PODS (default 300). Needs root and KUBEBUILDER_ASSETS. Everything is removed
 * (pods, lab down, the baseline's namespaces and processes) also on failure.
 *
 * Run directly: bun test/bench/kubelet.ts
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { Informer, KubeClient, loadKubeConfig } from "../../internal/kube/index.ts";
import { kubeconfigFile, labDown, readKubeState } from "../../internal/lab/index.ts";
import { type BenchResult, percentile, printResults } from "./lib.ts";

const N = Number(process.env.KUBELET_BENCH_PODS ?? 300);
const CONCURRENCY = 16;
const REPO = join(import.meta.dir, "../..");
const KOSMOSCTL = join(REPO, "cmd/kosmosctl.ts");
const LAB = `kbench${process.pid % 10000}`;
const CLUSTERS = ["c1", "c2", "c3"];
const POD_CLUSTER = "c2";
const NS = "bench";
/** The program every pod (and every baseline namespace) runs. */
const PROGRAM = ["sh", "-c", "echo up; exec sleep infinity"];

type Pod = { metadata: { name: string }; status?: { phase?: string } };
type Node = { status?: { conditions?: { type: string; status: string }[] } };

const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

async function run1(argv: string[], allowFail = false): Promise<string> {
  const p = Bun.spawn(argv, {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, KOSMOS_LOG_LEVEL: "warn" },
  });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  if (code !== 0 && !allowFail) throw new Error(`${argv.join(" ")} exited ${code}: ${err || out}`);
  return out;
}

// ---- RSS of the whole lab, from /proc ----

function procStatus(pid: string): { ppid: number; rssKb: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    return {
      ppid: Number(/PPid:\s+(\d+)/.exec(s)?.[1] ?? 0),
      rssKb: Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0),
    };
  } catch {
    return undefined;
  }
}

function component(pid: number): string {
  let cmd = "";
  try {
    cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return "other";
  }
  for (const c of ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"])
    if (cmd.includes(`/${c} `) || cmd.startsWith(`${c} `)) return c;
  if (cmd.includes("kosmos-kubelet")) return "kosmos-kubelet";
  if (cmd.includes("kosmos-agent") || cmd.includes(" agent ")) return "kosmos-agent";
  if (cmd.includes("k8s-supervise")) return "supervisor";
  return "other (lab pods, helpers)";
}

/**
 * RSS (MiB) of every process of the lab: descendants of the Kubernetes supervisor, and every process
 * whose network namespace is one of the lab's (`kl-<lab>-*`: agents, lab pods, kubelet pods).
 */
async function labRss(lab: string): Promise<{ total: number; by: Map<string, number>; procs: number }> {
  const inodes = new Set<number>();
  for (const n of existsSync("/run/netns") ? readdirSync("/run/netns") : [])
    if (n.startsWith(`kl-${lab}-`)) inodes.add(statSync(`/run/netns/${n}`).ino);
  const st = await readKubeState(lab).catch(() => undefined);
  const procs = new Map<number, { ppid: number; rssKb: number }>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const s = procStatus(d);
    if (s) procs.set(Number(d), s);
  }
  const mine = new Set<number>();
  for (const pid of procs.keys()) {
    try {
      const ino = Number(/\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/net`))?.[1]);
      if (inodes.has(ino)) mine.add(pid);
    } catch {
      /* gone */
    }
  }
  if (st) mine.add(st.supervisorPid);
  // descendants of anything already counted
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, s] of procs)
      if (!mine.has(pid) && mine.has(s.ppid)) {
        mine.add(pid);
        grew = true;
      }
  }
  const by = new Map<string, number>();
  let total = 0;
  for (const pid of mine) {
    const kb = procs.get(pid)?.rssKb ?? 0;
    total += kb;
    const c = component(pid);
    by.set(c, (by.get(c) ?? 0) + kb / 1024);
  }
  return { total: total / 1024, by, procs: mine.size };
}

// ---- (b) lab up ----

const readyNodes = async (c: KubeClient): Promise<number> =>
  (await c.list<Node>("/api/v1/nodes")).items.filter((n) =>
    n.status?.conditions?.some((k) => k.type === "Ready" && k.status === "True"),
  ).length;

function clientOf(cluster: string): KubeClient {
  return new KubeClient(loadKubeConfig(kubeconfigFile(LAB, cluster)));
}

/** `kosmosctl lab up` of the default lab; with --kubernetes also watches for the first Ready Node. */
async function timedUp(kubernetes: boolean): Promise<{ upS: number; firstReadyS?: number }> {
  const t0 = performance.now();
  let firstReadyS: number | undefined;
  let upping = true;
  const poll = (async () => {
    const clients = new Map<string, KubeClient>();
    while (upping && kubernetes && firstReadyS === undefined) {
      for (const c of CLUSTERS) {
        if (!clients.has(c) && existsSync(kubeconfigFile(LAB, c))) clients.set(c, clientOf(c));
        const cl = clients.get(c);
        if (cl && (await readyNodes(cl).catch(() => 0)) > 0) {
          firstReadyS ??= (performance.now() - t0) / 1000;
        }
      }
      await Bun.sleep(100);
    }
    for (const c of clients.values()) c.close();
  })();
  try {
    await run1([
      process.execPath,
      KOSMOSCTL,
      "lab",
      "up",
      "--name",
      LAB,
      ...(kubernetes ? ["--kubernetes"] : []),
    ]);
  } finally {
    upping = false;
    await poll;
  }
  const upS = (performance.now() - t0) / 1000;
  return { upS, ...(firstReadyS !== undefined ? { firstReadyS } : {}) };
}

const podBody = (name: string) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, labels: { bench: "kubelet" } },
  spec: {
    automountServiceAccountToken: false,
    terminationGracePeriodSeconds: 0,
    containers: [{ name: "c", image: "busybox", command: PROGRAM }],
  },
});

async function waitFor(what: string, ms: number, ok: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out (${ms} ms) waiting for ${what}`);
    await Bun.sleep(100);
  }
}

// ---- (a) pod startup ----

/** Create N pods (CONCURRENCY in flight); each one's created → Running latency (ms), seen by a watch. */
async function podStartup(client: KubeClient): Promise<{ ms: number[]; offsets: number[]; seconds: number }> {
  const created = new Map<string, number>();
  const running = new Map<string, number>();
  let done: () => void = () => undefined;
  const all = new Promise<void>((r) => {
    done = r;
  });
  const seen = (p: Pod): void => {
    if (p.status?.phase !== "Running" || running.has(p.metadata.name)) return;
    running.set(p.metadata.name, performance.now());
    if (running.size === N) done();
  };
  const w = new Informer<Pod>({ client, path: `/api/v1/namespaces/${NS}/pods`, name: "bench-kubelet" });
  w.on("add", seen).on("update", seen).start();
  await w.waitSynced();
  const t0 = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < N) {
      const name = `p-${next++}`;
      created.set(name, performance.now());
      await client.create(`/api/v1/namespaces/${NS}/pods`, podBody(name));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const timer = setTimeout(done, 600_000);
  await all;
  clearTimeout(timer);
  const seconds = (performance.now() - t0) / 1000;
  await w.stop();
  if (running.size < N) throw new Error(`only ${running.size}/${N} pods Running after 600 s`);
  return {
    ms: [...created].map(([n, t]) => (running.get(n) ?? Number.NaN) - t),
    offsets: [...created.values()].map((t) => t - t0).sort((a, b) => a - b),
    seconds,
  };
}

/**
 * The baseline: N bare namespaces on a bridge, each running PROGRAM, CONCURRENCY at a time. Item i
 * is requested at `offsets[i]` ms after the start (the pods' create times, so requests queue the
 * same way): `ms` = request → running; `workMs` = the item's own setup + start, without the queue.
 */
async function bareStartup(offsets: number[]): Promise<{ ms: number[]; workMs: number[]; seconds: number }> {
  const pre = `kbb${process.pid % 10000}`;
  const br = `${pre}-br`;
  const procs: ReturnType<typeof Bun.spawn>[] = [];
  const made: string[] = [];
  try {
    await run1(["ip", "netns", "add", br]);
    made.push(br);
    await run1(["ip", "-n", br, "link", "add", "br0", "type", "bridge"]);
    await run1(["ip", "-n", br, "addr", "add", "10.250.0.1/16", "dev", "br0"]);
    await run1(["ip", "-n", br, "link", "set", "br0", "up"]);
    const ms: number[] = [];
    const workMs: number[] = [];
    let next = 0;
    let t0 = 0;
    const one = async (i: number): Promise<void> => {
      const due = t0 + (offsets[i] ?? 0);
      if (performance.now() < due) await Bun.sleep(due - performance.now());
      const t = performance.now();
      const ns = `${pre}-${i}`;
      const host = `kbh${i}`;
      await run1(["ip", "netns", "add", ns]);
      made.push(ns);
      await run1([
        "ip",
        "link",
        "add",
        "eth0",
        "netns",
        ns,
        "type",
        "veth",
        "peer",
        "name",
        host,
        "netns",
        br,
      ]);
      await run1(["ip", "-n", br, "link", "set", host, "master", "br0", "up"]);
      const ip = `10.250.${1 + (i >> 8)}.${i & 255}`;
      const p = Bun.spawn(["ip", "-n", ns, "-batch", "-"], {
        stdin: "pipe",
        stdout: "ignore",
        stderr: "pipe",
      });
      p.stdin.write(
        `link set lo up\nlink set eth0 up\naddr add ${ip}/16 dev eth0\nroute add default via 10.250.0.1\n`,
      );
      p.stdin.end();
      if ((await p.exited) !== 0) throw new Error(`ip -n ${ns} -batch failed`);
      const c = Bun.spawn(["setsid", "ip", "netns", "exec", ns, "unshare", "-m", "-u", ...PROGRAM], {
        stdin: "ignore",
        stdout: "pipe",
        stderr: "ignore",
      });
      procs.push(c);
      const r = c.stdout.getReader();
      const first = await r.read();
      r.releaseLock();
      if (!new TextDecoder().decode(first.value).startsWith("up"))
        throw new Error(`${ns}: program did not start`);
      ms.push(performance.now() - due);
      workMs.push(performance.now() - t);
    };
    t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < N) await one(next++);
      }),
    );
    return { ms, workMs, seconds: (performance.now() - t0) / 1000 };
  } finally {
    for (const p of procs) p.kill("SIGKILL");
    await Promise.all(procs.map((p) => p.exited));
    for (const ns of made.reverse()) await run1(["ip", "netns", "del", ns], true);
  }
}

// ---- the module ----

export async function run(): Promise<BenchResult[]> {
  if (!process.env.KUBEBUILDER_ASSETS)
    process.env.KUBEBUILDER_ASSETS = (await run1(["bash", join(REPO, "scripts/kube-assets")])).trim();
  const results: BenchResult[] = [];
  const loads: string[] = [];
  await labDown(LAB);
  try {
    // (b) baseline: the network-only lab
    const plain = await timedUp(false);
    const plainRss = await labRss(LAB);
    loads.push(`after plain up ${load()}`);
    await labDown(LAB);
    // (b) with --kubernetes
    const k8s = await timedUp(true);
    const k8sRss = await labRss(LAB);
    loads.push(`after --kubernetes up ${load()}`);
    const t1 = performance.now();
    const c1 = clientOf("c1");
    try {
      await waitFor("default ServiceAccount in c1", 60_000, async () =>
        Boolean(await c1.get("/api/v1/namespaces/default/serviceaccounts/default")),
      );
      await c1.create("/api/v1/namespaces/default/pods", podBody("first"));
      await waitFor("first pod Running", 60_000, async () => {
        const p = await c1.get<Pod>("/api/v1/namespaces/default/pods/first");
        return p.status?.phase === "Running";
      });
    } finally {
      c1.close();
    }
    const firstPodS = k8s.upS + (performance.now() - t1) / 1000;
    results.push(
      {
        name: "lab up, default lab (3 clusters, 7 nodes) --kubernetes",
        value: k8s.upS,
        unit: "s",
        baseline: { name: "network-only lab up", value: plain.upS },
      },
      { name: "  … to the first Ready Node", value: k8s.firstReadyS ?? Number.NaN, unit: "s" },
      { name: "  … to the first Running pod (created after up)", value: firstPodS, unit: "s" },
      {
        name: `RSS of the whole lab, --kubernetes (${k8sRss.procs} processes)`,
        value: k8sRss.total,
        unit: "MiB",
        baseline: { name: `network-only (${plainRss.procs} proc.)`, value: plainRss.total },
      },
      ...[...k8sRss.by]
        .filter(([, mib]) => mib > 0)
        .sort((a, b) => b[1] - a[1])
        .map(([c, mib]) => ({ name: `  RSS: ${c}`, value: mib, unit: "MiB" })),
    );

    // (a) pod startup on c2 (3 nodes)
    const client = clientOf(POD_CLUSTER);
    let pods: { ms: number[]; offsets: number[]; seconds: number };
    try {
      await client.create("/api/v1/namespaces", {
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name: NS },
      });
      await waitFor(`ServiceAccount default in ${NS}`, 60_000, async () =>
        Boolean(await client.get(`/api/v1/namespaces/${NS}/serviceaccounts/default`)),
      );
      pods = await podStartup(client);
      loads.push(`after ${N} pods ${load()}`);
      await client
        .request("DELETE", `/api/v1/namespaces/${NS}/pods`, {
          query: { gracePeriodSeconds: 0 },
          timeoutMs: 300_000,
        })
        .catch(() => undefined);
      await waitFor(
        "bench pods gone",
        300_000,
        async () => (await client.list(`/api/v1/namespaces/${NS}/pods`)).items.length === 0,
      ).catch(() => undefined);
    } finally {
      client.close();
    }
    await labDown(LAB);
    const bare = await bareStartup(pods.offsets);
    loads.push(`after bare netns ${load()}`);
    for (const q of [50, 90, 99]) {
      const v = percentile(pods.ms, q);
      results.push({
        name: `pod startup p${q}, ${N} pods on ${POD_CLUSTER} (3 lab kubelets), create → Running by watch`,
        value: v,
        unit: "ms",
        baseline: { name: "bare netns+veth+start, same request times", value: percentile(bare.ms, q) },
        ...(q === 99 ? { target: "p99 ≤ 5000 ms (upstream SLO)", ok: v <= 5000 } : {}),
      });
    }
    results.push({
      name: "  bare: one namespace's own setup + start p50 / p99 (no queue)",
      value: percentile(bare.workMs, 50),
      unit: `ms / ${percentile(bare.workMs, 99).toFixed(0)} ms`,
    });
    results.push({
      name: `pods/s sustained (${N} pods, ${CONCURRENCY} creates in flight)`,
      value: N / pods.seconds,
      unit: "pods/s",
      baseline: { name: `bare, ${CONCURRENCY} in flight`, value: N / bare.seconds },
    });
    console.log(`load average (1/5/15 min): ${loads.join("; ")}`);
    return results;
  } finally {
    await labDown(LAB).catch((e: Error) => console.error(`lab down ${LAB}: ${e.message}`));
  }
}

if (import.meta.main) printResults(await run());
