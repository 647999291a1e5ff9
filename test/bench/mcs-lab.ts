/**
 * MCS propagation on the real-Kubernetes lab (issue 15): the time from a backend pod becoming Ready
 * in one cluster to its address answering from every node of every cluster — p50/p99 over trials, 3
 * clusters, 7 agents — against, in the same run, the time until the pod's own cluster's EndpointSlice
 * lists it ready (Kubernetes' local propagation: kube-controller-manager's EndpointSlice controller).
 *
 * Setup as `npm run demo` does it (lab-demo-k8s.ts: `lab up --kubernetes --no-agents`, `install
 * --mcs`, `join cluster --mcs` for c1, c2, c3); then in every cluster a headless Service `prop`
 * (namespace kosmos-bench, selector app=prop) and its ServiceExport: one Headless ServiceImport whose
 * name answers the ready endpoints' addresses — global IPs where the source cluster maps its pod CIDR
 * (c1: 242.1/16, c3: 242.3/16 as seen from the other clusters).
 *
 * A trial creates one pod (image kosmos-echo, readiness probe every second) in c1, c2, c3 in turn.
 * Observers, all timestamped in epoch ms on this machine:
 *   - Ready: the pod watch (an Informer) delivers the Ready condition;
 *   - baseline: the source cluster's EndpointSlice watch shows the address ready;
 *   - the imported EndpointSlice in both other clusters (the MCS controller's write);
 *   - every node's agent DNS answers `prop.kosmos-bench.svc.clusterset.local` A with the address
 *     that cluster must see: one poller process per node (mcs-lab-poller.ts) inside the node's
 *     network namespace, one UDP socket, a query every $MCS_LAB_POLL_MS (20) ms while a watch is on.
 * Then the pod is deleted and the pollers wait for the address to leave every node's answer (the
 * removal figure, and the sync point before the next trial: no fixed sleeps).
 *
 * Knobs: MCS_LAB_TRIALS (30), MCS_LAB_POLL_MS (20), MCS_LAB_TIMEOUT_MS per phase (60000). Needs root
 * and KUBEBUILDER_ASSETS (found like the kubelet bench). The lab, the pollers and the informers are
 * removed also on failure. Run directly: bun test/bench/mcs-lab.ts
 */
import { mkdir, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { labAgentTargets } from "../../internal/cli/check-clusterset.ts";
import { demoLabUp, installAndJoin } from "../../internal/cli/lab-demo-k8s.ts";
import { applyObjects, Informer, type KubeClient, type ManifestObject } from "../../internal/kube/index.ts";
import { AgentExecutor } from "../../internal/netcheck/index.ts";
import { DEFAULT_LAB, labDown, type LabPlan, parseLabConfig } from "../../internal/lab/index.ts";
import { type BenchResult, printResults } from "./lib.ts";
import {
  detectorFigures,
  expectedAddress,
  parseSeen,
  type Trial,
  summarize,
  watchLine,
} from "./mcs-lab-lib.ts";

const TRIALS = Number(process.env.MCS_LAB_TRIALS ?? 30);
const POLL_MS = Number(process.env.MCS_LAB_POLL_MS ?? 20);
const PHASE_MS = Number(process.env.MCS_LAB_TIMEOUT_MS ?? 60_000);
const REPO = join(import.meta.dir, "../..");
const POLLER = join(import.meta.dir, "mcs-lab-poller.ts");
const LAB = `mlab${process.pid % 10000}`;
const NS = "kosmos-bench";
const SVC = "prop";
const NAME = `${SVC}.${NS}.svc.clusterset.local`;
/** An address no pod has: "absent" of it means the name answers NOERROR (the import reached the agent). */
const NOBODY = "0.0.0.0";
/** Where a timed-out trial leaves what the agents knew ($MCS_LAB_DIAG). */
const DIAG = process.env.MCS_LAB_DIAG ?? `/tmp/mcs-lab-diag-${process.pid}`;

const now = (): number => performance.timeOrigin + performance.now();
const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

type Pod = {
  metadata: { name: string; namespace?: string };
  status?: { podIPs?: { ip: string }[]; conditions?: { type: string; status: string }[] };
};
type Slice = {
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  endpoints?: { addresses?: string[]; conditions?: { ready?: boolean } }[];
};

function exportObjects(): ManifestObject[] {
  return [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: NS } },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: SVC, namespace: NS },
      spec: { clusterIP: "None", selector: { app: SVC }, ports: [{ port: 8080, protocol: "TCP" }] },
    } as ManifestObject,
    {
      apiVersion: "multicluster.x-k8s.io/v1alpha1",
      kind: "ServiceExport",
      metadata: { name: SVC, namespace: NS },
    },
  ];
}

const podBody = (name: string) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, labels: { app: SVC } },
  spec: {
    automountServiceAccountToken: false,
    terminationGracePeriodSeconds: 0,
    containers: [
      {
        name: "echo",
        image: "kosmos-echo",
        ports: [{ containerPort: 8080 }],
        readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
      },
    ],
  },
});

const sliceHas = (s: Slice, addr: string): boolean =>
  (s.endpoints ?? []).some((e) => e.conditions?.ready !== false && (e.addresses ?? []).includes(addr));

/** One poller per node, inside its network namespace; `seen` lines go to the watch's callback. */
class Pollers {
  private readonly procs = new Map<string, ReturnType<typeof Bun.spawn<"pipe", "pipe", "inherit">>>();
  private readonly waiting = new Map<string, (atMs: number) => void>();

  async start(plan: LabPlan): Promise<void> {
    await Promise.all(
      plan.nodes.map(async (n) => {
        const p = Bun.spawn(
          ["nsenter", `--net=/run/netns/${n.ns}`, process.execPath, POLLER, n.ipv4, "53", String(POLL_MS)],
          { stdin: "pipe", stdout: "pipe", stderr: "inherit" },
        );
        this.procs.set(n.name, p);
        await new Promise<void>((ready, fail) => {
          const dec = new TextDecoder();
          let buf = "";
          (async () => {
            for await (const chunk of p.stdout) {
              buf += dec.decode(chunk, { stream: true });
              for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
                const line = buf.slice(0, i);
                buf = buf.slice(i + 1);
                if (line === "ready") ready();
                const s = parseSeen(line);
                if (s) this.waiting.get(s.id)?.(s.atMs);
              }
            }
            fail(new Error(`poller of ${n.name} ended`));
          })().catch(fail);
        });
      }),
    );
  }

  /** Watch on `node`; `onSeen` gets the epoch ms of the first reply that met it. */
  watch(node: string, id: string, want: "present" | "absent", addr: string, onSeen: (atMs: number) => void) {
    this.waiting.set(id, (at) => {
      this.waiting.delete(id);
      onSeen(at);
    });
    const p = this.procs.get(node);
    p?.stdin.write(watchLine(id, want, "A", NAME, addr));
    p?.stdin.flush();
  }

  cancelAll(): void {
    for (const id of this.waiting.keys())
      for (const p of this.procs.values()) {
        p.stdin.write(`cancel ${id}\n`);
        p.stdin.flush();
      }
    this.waiting.clear();
  }

  async stop(): Promise<void> {
    for (const p of this.procs.values()) {
      p.stdin.end();
      p.kill();
    }
    await Promise.all([...this.procs.values()].map((p) => p.exited));
  }
}

/** Resolves when `done()` holds after an event, or rejects after `ms`. */
function until(what: string, ms: number, subscribe: (check: () => void) => void, done: () => boolean) {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out (${ms} ms): ${what}`)), ms);
    const check = () => {
      if (done()) {
        clearTimeout(timer);
        resolve();
      }
    };
    subscribe(check);
    check();
  });
}

interface Current {
  trial: Trial;
  pod: string;
  ip?: string;
  /** node → the address its answers must carry. */
  want: Map<string, string>;
  onChange: () => void;
}

/** A trial that timed out: every agent's /v1/state and /v1/topology and the agents' logs, to DIAG/<trial>. */
let diagnosed = 0;
async function diagnose(plan: LabPlan, trial: number): Promise<void> {
  const dir = join(DIAG, String(trial));
  await mkdir(dir, { recursive: true });
  const agents = new AgentExecutor(labAgentTargets(plan, true));
  for (const n of plan.nodes)
    for (const what of ["state", "topology"])
      await writeFile(
        join(dir, `${n.name}.${what}.json`),
        JSON.stringify((await agents.json(n.name, `/v1/${what}`)) ?? null, null, 2),
      );
  const labDir = `/run/kosmos/labs/${LAB}`;
  // every Kosmos pod's log: the agents', and the kosmos-controller's (its MCS controller writes the slices)
  for await (const f of new Bun.Glob("kubernetes/nodes/*/pods/*/logs/*/*.log").scan({ cwd: labDir }))
    await writeFile(join(dir, f.replaceAll("/", "_")), await Bun.file(join(labDir, f)).bytes());
  // the lab's own logs (kubelets, API bridges, port maps) and each node's network as the kernel has it
  for await (const f of new Bun.Glob("**/*.log").scan({ cwd: labDir })) {
    if (f.startsWith("kubernetes/nodes/")) continue;
    const bytes = await Bun.file(join(labDir, f)).bytes();
    await writeFile(
      join(dir, `lab_${f.replaceAll("/", "_")}`),
      bytes.slice(Math.max(0, bytes.length - 4_000_000)),
    );
  }
  const run = async (argv: string[]) => {
    const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
    await p.exited;
    return `$ ${argv.join(" ")}\n${out}${err}`;
  };
  const pods = (await run(["ip", "netns", "list"])).split("\n").map((l) => l.split(" ")[0]!);
  for (const n of plan.nodes) {
    const out: string[] = [];
    for (const c of ["addr", "route", "-6 route", "neigh", "rule", "-d link"])
      out.push(await run(["ip", "-n", n.ns, ...c.split(" ")]));
    out.push(await run(["ip", "netns", "exec", n.ns, "nft", "list", "ruleset"]));
    out.push(await run(["ip", "netns", "exec", n.ns, "conntrack", "-S"]));
    out.push(await run(["ip", "netns", "exec", n.ns, "ss", "-tanp"]));
    for (const ns of pods.filter((x) => x.startsWith(`${n.ns}-p`))) {
      out.push(await run(["ip", "-n", ns, "-br", "addr"]));
      out.push(await run(["ip", "-n", ns, "route"]));
      out.push(await run(["ip", "-n", ns, "neigh"]));
      out.push(await run(["ip", "netns", "exec", ns, "ss", "-tanp"]));
    }
    await writeFile(join(dir, `${n.name}.net.txt`), out.join("\n"));
  }
  console.log(`trial ${trial}: the agents' state, topology and logs are in ${dir}`);
}

/**
 * Every agent's failure-detector counters over the run: false suspicions and verdicts between live
 * agents take an endpoint out of the answers of the agents that hold its node dead, so they belong
 * next to the tail. The lag is the agent's event-loop lag p99 (prom-client's monitor).
 */
async function printDetector(plan: LabPlan): Promise<void> {
  const agents = new AgentExecutor(labAgentTargets(plan, true));
  console.log(
    "node            probes  failed  suspicions raised  refuted (about itself)  deaths declared  loop lag p99",
  );
  for (const n of plan.nodes) {
    const text = await agents
      .client(n.name)
      .request("/metrics", { signal: AbortSignal.timeout(5000) })
      .then((r) => r.text())
      .catch(() => "");
    const f = detectorFigures(text);
    console.log(
      `${n.name.padEnd(15)} ${String(f.probes).padStart(6)}  ${String(f.failed).padStart(6)}  ${String(f.suspicions).padStart(17)}  ${String(f.refutations).padStart(22)}  ${String(f.deaths).padStart(15)}  ${f.lagP99Ms.toFixed(0).padStart(9)} ms`,
    );
  }
}

/** The trials: informers on pods and slices in every cluster, the pollers on every node. */
async function trials(plan: LabPlan, clients: Map<string, KubeClient>, pollers: Pollers): Promise<Trial[]> {
  const globals = Object.fromEntries(plan.clusters.map((c) => [c.name, c.globalCIDRs]));
  const clusters = plan.clusters.map((c) => c.name);
  let cur: Current | undefined;
  const informers: Array<{ start(): unknown; waitSynced(): Promise<void>; stop(): Promise<void> }> = [];
  const slicesOf = new Map<string, Informer<Slice>>();

  const checkSlices = (cluster: string, s: Slice) => {
    const c = cur;
    if (!c?.ip) return;
    const t = c.trial;
    const addr = expectedAddress(c.ip, t.source, cluster, globals);
    const own = s.metadata.labels?.["kubernetes.io/service-name"] === SVC && cluster === t.source;
    const imported = s.metadata.labels?.["multicluster.kubernetes.io/service-name"] === SVC;
    if (own && t.localSliceAtMs === undefined && sliceHas(s, addr)) t.localSliceAtMs = now();
    if (imported && cluster !== t.source && t.importedAtMs[cluster] === undefined && sliceHas(s, addr))
      t.importedAtMs[cluster] = now();
    c.onChange();
  };
  const onPod = (cluster: string, p: Pod) => {
    const c = cur;
    if (!c || p.metadata.name !== c.pod || cluster !== c.trial.source) return;
    const ip = p.status?.podIPs?.map((x) => x.ip).find((x) => !x.includes(":"));
    if (ip && !c.ip) {
      c.ip = ip;
      for (const n of plan.nodes) {
        const addr = expectedAddress(ip, c.trial.source, n.cluster, globals);
        c.want.set(n.name, addr);
        const t = c.trial;
        pollers.watch(n.name, `${c.pod}:${n.name}:in`, "present", addr, (at) => {
          t.dnsAtMs[n.name] = at;
          c.onChange();
        });
      }
      for (const [k, inf] of slicesOf) for (const s of inf.list()) checkSlices(k, s);
    }
    if (p.status?.conditions?.some((x) => x.type === "Ready" && x.status === "True") && !c.trial.readyAtMs)
      c.trial.readyAtMs = now();
    c.onChange();
  };
  for (const cl of clusters) {
    const client = clients.get(cl)!;
    const pods = new Informer<Pod>({
      client,
      path: `/api/v1/namespaces/${NS}/pods`,
      name: `bench-pods-${cl}`,
    });
    pods.on("add", (p) => onPod(cl, p)).on("update", (p) => onPod(cl, p));
    const slices = new Informer<Slice>({
      client,
      path: `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`,
      name: `bench-slices-${cl}`,
    });
    slices.on("add", (s) => checkSlices(cl, s)).on("update", (s) => checkSlices(cl, s));
    slicesOf.set(cl, slices);
    informers.push(pods, slices);
  }
  for (const i of informers) i.start();
  try {
    await Promise.all(informers.map((i) => i.waitSynced()));
    const out: Trial[] = [];
    for (let i = 0; i < TRIALS; i++) {
      const source = clusters[i % clusters.length]!;
      const trial: Trial = {
        source,
        readyAtMs: 0,
        importedAtMs: Object.fromEntries(clusters.filter((c) => c !== source).map((c) => [c, undefined])),
        dnsAtMs: Object.fromEntries(plan.nodes.map((n) => [n.name, undefined])),
        goneAtMs: Object.fromEntries(plan.nodes.map((n) => [n.name, undefined])),
      };
      out.push(trial);
      const listeners: Array<() => void> = [];
      cur = {
        trial,
        pod: `${SVC}-${i}`,
        want: new Map(),
        onChange: () => {
          for (const f of listeners) f();
        },
      };
      const c = cur;
      const client = clients.get(source)!;
      await client.create(`/api/v1/namespaces/${NS}/pods`, podBody(c.pod));
      const seenEverywhere = () =>
        trial.readyAtMs > 0 &&
        trial.localSliceAtMs !== undefined &&
        Object.values(trial.importedAtMs).every((x) => x !== undefined) &&
        Object.values(trial.dnsAtMs).every((x) => x !== undefined);
      await until(
        `${c.pod} in ${source}: Ready, slices, every node's answer`,
        PHASE_MS,
        (f) => listeners.push(f),
        seenEverywhere,
      ).catch(async (e: Error) => {
        const missing = Object.entries(trial.dnsAtMs)
          .filter(([, at]) => at === undefined)
          .map(([n]) => n);
        console.log(`trial ${i}: ${e.message}; nodes that never answered: ${missing.join(", ") || "none"}`);
        if (diagnosed++ < 2) await diagnose(plan, i);
      });
      pollers.cancelAll();
      // Removal: delete, then every node's answer without the address (the next trial's clean start).
      trial.deletedAtMs = now();
      await client.delete(`/api/v1/namespaces/${NS}/pods/${c.pod}`, { gracePeriodSeconds: 0 });
      for (const n of plan.nodes) {
        const addr = c.want.get(n.name);
        if (!addr) continue;
        pollers.watch(n.name, `${c.pod}:${n.name}:out`, "absent", addr, (at) => {
          trial.goneAtMs[n.name] = at;
          c.onChange();
        });
      }
      await until(
        `${c.pod} gone from every node's answer`,
        PHASE_MS,
        (f) => listeners.push(f),
        () => Object.values(trial.goneAtMs).every((x) => x !== undefined),
      ).catch((e: Error) => console.log(`trial ${i}: ${e.message}`));
      pollers.cancelAll();
    }
    return out;
  } finally {
    cur = undefined;
    await Promise.all(informers.map((i) => i.stop()));
  }
}

export async function run(): Promise<BenchResult[]> {
  if (!process.env.KUBEBUILDER_ASSETS) {
    const p = Bun.spawnSync(["bash", join(REPO, "scripts/kube-assets")]);
    process.env.KUBEBUILDER_ASSETS = p.stdout.toString().trim();
  }
  await labDown(LAB);
  const pollers = new Pollers();
  let clients = new Map<string, KubeClient>();
  try {
    const up = await demoLabUp(
      LAB,
      parseLabConfig(DEFAULT_LAB),
      `kosmosctl lab up --kubernetes --no-agents --name ${LAB}`,
    );
    clients = up.clients;
    await installAndJoin(up.plan, up.st, clients);
    for (const c of clients.values()) await applyObjects(c, exportObjects());
    await pollers.start(up.plan);
    // Every node's agent knows the (still empty) import: its name answers NOERROR.
    const known = new Set<string>();
    await until(
      "the import answering NOERROR at every node",
      300_000,
      (f) => {
        for (const n of up.plan.nodes)
          pollers.watch(n.name, `setup:${n.name}`, "absent", NOBODY, () => {
            known.add(n.name);
            f();
          });
      },
      () => known.size === up.plan.nodes.length,
    );
    const loadBefore = load();
    const t = await trials(up.plan, clients, pollers);
    console.log(`load average (1/5/15 min): before the trials ${loadBefore}; after ${load()}`);
    await printDetector(up.plan);
    // the slow trials, by name: which node answered last, and how late (the figures hide it)
    for (const [i, tr] of t.entries()) {
      const late = Object.entries(tr.dnsAtMs).map(
        ([n, at]) => [n, (at ?? Number.NaN) - tr.readyAtMs] as const,
      );
      const [node, ms] = late.reduce((a, b) => (b[1] > a[1] || Number.isNaN(b[1]) ? b : a));
      if (!(ms < 1000))
        console.log(
          `slow trial ${i} (pod in ${tr.source}): ${node} answered ${Math.round(ms)} ms after Ready`,
        );
    }
    return summarize(t, up.plan.nodes.length);
  } finally {
    await pollers.stop().catch(() => undefined);
    for (const c of clients.values()) c.close();
    await labDown(LAB).catch((e: Error) => console.error(`lab down ${LAB}: ${e.message}`));
  }
}

if (import.meta.main) printResults(await run());
