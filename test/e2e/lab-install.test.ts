/**
 * Issue 13's scenario, as `npm run demo` runs it with the Kubernetes assets: the default lab's three
 * clusters become real Kubernetes clusters (a control plane each, a lab kubelet per node), Kosmos is
 * installed into them with `kosmosctl install` / `join cluster` — the agents are the DaemonSet's pods,
 * run by the lab kubelets in the nodes' namespaces; the controller is the Deployment's pods, in pod
 * namespaces, reaching its API server through the `kubernetes` Service — and echo pods placed by the
 * real scheduler answer each other across clusters. Then every API server of the lab is stopped, and
 * the same connections still answer: the agents keep the network from their replicas.
 */
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderClustersetReport } from "../../internal/cli/check-clusterset.ts";
import {
  DEMO_NAMESPACE,
  type DemoPod,
  demoTargets,
  probeTargets,
  runningEcho,
} from "../../internal/cli/lab-demo-k8s.ts";
import { KubeClient, loadKubeConfig } from "../../internal/kube/index.ts";
import { sandboxNames } from "../../internal/kubelet/index.ts";
import { labDown, labFiles, loadLab, readKubeState, sh } from "../../internal/lab/index.ts";
import type { ClustersetReport } from "../../internal/netcheck/index.ts";
import { kubeSkip } from "../helpers/k8s.ts";
import { kosmosctl } from "../helpers/kosmosctl.ts";
import { labName, until } from "./helpers.ts";

const LAB = labName("ins");
const T = 420_000;
const skip = kubeSkip();

type Pod = {
  metadata: { name: string; labels?: Record<string, string> };
  spec?: { nodeName?: string; hostNetwork?: boolean };
  status?: { phase?: string; podIP?: string; hostIP?: string };
};
type Cluster = { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } };

const clients: KubeClient[] = [];
const clientFor = (kubeconfig: string): KubeClient => {
  const c = new KubeClient(loadKubeConfig(kubeconfig));
  clients.push(c);
  return c;
};

const NAME = "echo.kosmos-demo.svc.clusterset.local";
const HEADLESS = "echo-h.kosmos-demo.svc.clusterset.local";
/** The echo pods of the first test (the DNS check's tests read them outside the describe). */
const echoPods: DemoPod[] = [];

/** Run argv inside a pod: its network, mount (its resolv.conf) and UTS namespaces, via one of its processes. */
async function inPod(
  pod: DemoPod,
  argv: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { plan } = await loadLab(LAB);
  const node = plan.nodes.find((n) => n.cluster === pod.cluster && n.short === pod.node)!;
  const { ns } = sandboxNames(`${node.ns}-`, pod.uid);
  const pids = (await sh(["ip", "netns", "pids", ns])).stdout.split("\n").filter(Boolean);
  const r = await sh(["nsenter", "-t", pids[0]!, "-m", "-n", "-u", "--", ...argv], { allowFail: true });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** `n` connections to the clusterset name from `from`; the answering pods' clusters. */
async function clustersAnswering(from: DemoPod, pods: DemoPod[], n: number): Promise<string[]> {
  const loop = `for i in $(seq ${n}); do socat -T2 - TCP:${NAME}:8080,connect-timeout=2 </dev/null; echo; done`;
  const r = await inPod(from, ["sh", "-c", loop]);
  return r.stdout
    .split("\n")
    .filter(Boolean)
    .map((name) => pods.find((p) => p.name === name.trim())?.cluster ?? `?${name}`);
}

type CheckRun = { code: number; out: string; rep?: ClustersetReport };

/** `kosmosctl check ... -p dns --timeout 5 -o json` and its report (undefined when stdout is no JSON). */
async function checkJson(args: string[]): Promise<CheckRun> {
  const r = await kosmosctl(["check", ...args, "-p", "dns", "--timeout", "5", "-o", "json"], {
    timeoutMs: 150_000,
  });
  let rep: ClustersetReport | undefined;
  try {
    rep = JSON.parse(r.stdout) as ClustersetReport;
  } catch {
    rep = undefined;
  }
  return { code: r.code, out: `${args.join(" ")}: exit ${r.code}\n${r.stdout}\n${r.stderr}`, rep };
}

/** `kosmosctl check --lab -p dns -o json` (clusterset names from every pod) and its report. */
const checkDns = (): Promise<CheckRun> => checkJson(["--lab", "--name", LAB]);

/** A lab as an inventory file (its kubeconfigs, agents, pods); `check --inventory -p dns` on it per resolver. */
async function checkInventoryDns(resolvers: string[]): Promise<CheckRun[]> {
  const dir = mkdtempSync(join(tmpdir(), "kosmos-inv-"));
  try {
    const file = join(dir, "inventory.yaml");
    const inv = await kosmosctl(["lab", "inventory", "--name", LAB], { timeoutMs: 60_000 });
    expect(inv.code, inv.stderr).toBe(0);
    writeFileSync(file, inv.stdout);
    const out: CheckRun[] = [];
    for (const resolver of resolvers)
      out.push(await checkJson(["--inventory", file, "--resolver", resolver]));
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every echo pod was asked, every lookup passed, both names (A) were checked from every pod. */
function expectAllPods(rep: ClustersetReport, out: string): void {
  expect(rep.podErrors, out).toEqual({});
  expect(
    rep.results.filter((x) => !x.ok),
    out,
  ).toEqual([]);
  const asked = new Set(rep.results.map((x) => x.pod));
  for (const p of echoPods) expect(asked, out).toContain(`${p.cluster}/${DEMO_NAMESPACE}/${p.name}`);
  for (const pod of asked)
    expect(
      rep.results
        .filter((x) => x.pod === pod && x.type === "A")
        .map((x) => x.name)
        .sort(),
      `${pod}\n${out}`,
    ).toEqual([HEADLESS, NAME]);
  // The headless name answers the ready echo pods of c1 and c2 (as the pod's cluster reaches them).
  const h = rep.results.find((x) => x.name === HEADLESS && x.cluster === "c3" && x.type === "A")!;
  expect(h.got.length, out).toBe(4);
}

/** A Service over the echo pods (headless or not) and its ServiceExport, in the demo namespace. */
async function exportEcho(c: KubeClient, name: string, headless: boolean): Promise<void> {
  await c.create(`/api/v1/namespaces/${DEMO_NAMESPACE}/services`, {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name },
    spec: {
      ...(headless ? { clusterIP: "None" } : {}),
      selector: { app: "echo" },
      ports: [{ port: 8080, protocol: "TCP" }],
    },
  });
  await c.create(`/apis/multicluster.x-k8s.io/v1alpha1/namespaces/${DEMO_NAMESPACE}/serviceexports`, {
    apiVersion: "multicluster.x-k8s.io/v1alpha1",
    kind: "ServiceExport",
    metadata: { name },
  });
}

beforeAll(() => labDown(LAB), T);
afterAll(async () => {
  for (const c of clients) c.close();
  await labDown(LAB);
}, T);

describe.skipIf(skip)("Kosmos installed into the lab's real Kubernetes clusters (npm run demo)", () => {
  const echo: DemoPod[] = [];

  test(
    "lab demo: install/join bring every agent up as a DaemonSet pod; echo pods answer across clusters",
    async () => {
      const r = await kosmosctl(["lab", "demo", "--name", LAB], { timeoutMs: T - 60_000 });
      const out = `exit ${r.code}\n${r.stdout}\n${r.stderr}`;
      expect(r.code, out).toBe(0);
      const m = /(\d+)\/(\d+) cross-cluster connections between pods the real scheduler placed answered/.exec(
        r.stdout,
      );
      expect(m, out).not.toBeNull();
      expect(m![1]).toBe(m![2]);
      expect(Number(m![2])).toBe(16); // the default lab: 1 source per cluster, every pod and family elsewhere

      const { plan } = await loadLab(LAB);
      const st = (await readKubeState(LAB))!;
      const host = clientFor(st.clusters[0]!.kubeconfig);
      // The controller writes each Cluster's Ready condition on its own schedule: wait for all three.
      const ready = (c: Cluster) => c.status?.conditions?.find((k) => k.type === "Ready")?.status === "True";
      const clusters = await until("every Cluster Ready", 60_000, async () => {
        const l = await host.list<Cluster>("/apis/kosmos.io/v1alpha1/clusters");
        return l.items.length === 3 && l.items.every(ready) ? l : undefined;
      });
      expect(clusters.items.map((c) => c.metadata.name).sort()).toEqual(["c1", "c2", "c3"]);
      const cn = await host.list("/apis/kosmos.io/v1alpha1/clusternodes");
      expect(cn.items.map((n) => n.metadata.name).sort()).toEqual(plan.nodes.map((n) => n.name).sort());

      for (const c of st.clusters) {
        const nodes = plan.nodes.filter((n) => n.cluster === c.name);
        const pods = await clientFor(c.kubeconfig).list<Pod>("/api/v1/namespaces/kosmos-system/pods");
        const agents = pods.items.filter(
          (p) => p.metadata.labels?.["app.kubernetes.io/name"] === "kosmos-agent",
        );
        expect(agents.length, c.name).toBe(nodes.length);
        for (const a of agents) {
          expect(a.status?.phase).toBe("Running");
          // hostNetwork: the agent is in its node's namespace, at the node's underlay address.
          expect(a.status?.podIP).toBe(a.status?.hostIP);
          expect(nodes.map((n) => n.ipv4)).toContain(a.status!.podIP!);
        }
        if (c.name !== "c1") continue;
        // The controller runs in pod namespaces: its pod IPs are in c1's pod CIDRs, and everything it
        // seeded came through the kubernetes Service (in-cluster config) and the stored internal kubeconfigs.
        const ctl = pods.items.filter(
          (p) => p.metadata.labels?.["app.kubernetes.io/name"] === "kosmos-controller",
        );
        expect(ctl.length).toBe(2);
        for (const p of ctl) {
          expect(p.status?.phase).toBe("Running");
          expect(p.status?.podIP).toStartWith("10.244.");
        }
      }
      // Each agent's replica is in its node's own hostPath (the DaemonSet's /var/lib/kosmos).
      const node = plan.nodes[0]!;
      const dbFile = join(
        labFiles(LAB).dir,
        "kubernetes",
        "nodes",
        node.name,
        "host",
        "var/lib/kosmos/kosmos.db",
      );
      expect(existsSync(dbFile), dbFile).toBe(true);
      const db = new Database(dbFile, { readonly: true });
      try {
        const names = db.query<{ name: string }, []>("SELECT name FROM nodes WHERE deleted = 0").all();
        expect(names.map((n) => n.name).sort()).toEqual(plan.nodes.map((n) => n.name).sort());
      } finally {
        db.close();
      }
      // `lab status` finds the DaemonSet's agents through their hostPath admin sockets.
      const status = await kosmosctl(["lab", "status", "--name", LAB, "-o", "json"]);
      const rows = (
        JSON.parse(status.stdout) as { nodes: { name: string; ready: boolean; detail: string }[] }
      ).nodes;
      expect(rows.filter((n) => !n.ready)).toEqual([]);
      expect(rows.every((n) => n.detail === "ready (DaemonSet pod)")).toBe(true);
      for (const c of st.clusters) echo.push(...(await runningEcho(clientFor(c.kubeconfig), c.name, 2)));
      expect(echo.length).toBe(6);
    },
    T,
  );

  test(
    "a Service exported from c1 and c2 resolves from a c3 pod as a clusterset name; connections reach both clusters",
    async () => {
      expect(echo.length).toBe(6);
      const st = (await readKubeState(LAB))!;
      for (const name of ["c1", "c2"]) {
        await exportEcho(clientFor(st.clusters.find((x) => x.name === name)!.kubeconfig), "echo", false);
      }
      const from = echo.find((p) => p.cluster === "c3")!;
      let ip = "";
      for (const deadline = Date.now() + 60_000; Date.now() < deadline && !ip; await Bun.sleep(500)) {
        const r = await inPod(from, ["getent", "ahostsv4", NAME]);
        ip = r.code === 0 ? (r.stdout.split(/\s+/)[0] ?? "") : "";
      }
      expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      // The ClusterSetIP the c3 API server's ServiceImport carries.
      const c3 = clientFor(st.clusters.find((x) => x.name === "c3")!.kubeconfig);
      const si = await c3.get<{ spec?: { ips?: string[] } }>(
        `/apis/multicluster.x-k8s.io/v1alpha1/namespaces/${DEMO_NAMESPACE}/serviceimports/echo`,
      );
      expect(si.spec?.ips).toEqual([ip]);
      let seen = new Set<string>();
      for (const deadline = Date.now() + 60_000; Date.now() < deadline; await Bun.sleep(500)) {
        seen = new Set(await clustersAnswering(from, echo, 12));
        if (seen.has("c1") && seen.has("c2")) break;
      }
      expect([...seen].sort()).toEqual(["c1", "c2"]);
    },
    T,
  );

  test(
    "kosmosctl check --lab -p dns: every pod's own resolver answers every clusterset name (ClusterSetIP and headless) as the API servers say",
    async () => {
      expect(echo.length).toBe(6);
      echoPods.push(...echo);
      const st = (await readKubeState(LAB))!;
      for (const name of ["c1", "c2"]) {
        await exportEcho(clientFor(st.clusters.find((x) => x.name === name)!.kubeconfig), "echo-h", true);
      }
      // The headless import and its slices reach every cluster and every agent: wait until all pass.
      let last = { code: -1, out: "" } as Awaited<ReturnType<typeof checkDns>>;
      await until(
        "every pod's lookups pass",
        240_000,
        async () => {
          last = await checkDns();
          return last.code === 0 && last.rep?.results.some((x) => x.name === HEADLESS && x.got.length === 4);
        },
        1000,
      ).catch(() => undefined);
      expect(last.code, last.out).toBe(0);
      const rep = last.rep!;
      console.log(renderClustersetReport(rep));
      expectAllPods(rep, last.out);
      expect(rep.sources, last.out).toEqual({
        c1: "API server of c1",
        c2: "API server of c2",
        c3: "API server of c3",
      });
    },
    T,
  );

  test("check --inventory -p dns on the lab written as an inventory: the same exact answers, through the agents' exec API, from the pods' resolv.conf and from the node's address", async () => {
    expect(echoPods.length).toBe(6);
    for (const r of await checkInventoryDns(["resolv.conf", "node"])) {
      expect(r.rep, r.out).toBeDefined();
      expectAllPods(r.rep!, r.out);
      expect(r.rep!.sources, r.out).toEqual({
        c1: "API server of c1",
        c2: "API server of c2",
        c3: "API server of c3",
      });
      expect(r.code, r.out).toBe(0);
    }
  }, 360_000);

  test("with every API server of the lab stopped, the same connections and the clusterset name still answer", async () => {
    expect(echo.length).toBe(6);
    const { plan } = await loadLab(LAB);
    const st = (await readKubeState(LAB))!;
    const apis = await sh(["pgrep", "-f", `kube-apiserver .*--etcd-prefix=/${LAB}-`], { allowFail: true });
    const pids = apis.stdout.split("\n").filter(Boolean).map(Number);
    expect(pids.length).toBe(3);
    for (const p of pids) process.kill(p, "SIGKILL");
    // Down for real: the host's own kubeconfig gets no answer.
    const probe = await sh(["curl", "-sk", "--max-time", "3", `${st.clusters[0]!.server}/readyz`], {
      allowFail: true,
    });
    expect(probe.code).not.toBe(0);
    const results = await probeTargets(plan, demoTargets(plan, echo));
    expect(results.length).toBe(16);
    expect(results.filter((x) => !x.ok)).toEqual([]);
    // The name resolves and connects from the agents' replicas alone.
    const from = echo.find((p) => p.cluster === "c3")!;
    const answers = await clustersAnswering(from, echo, 12);
    expect(answers.length).toBe(12);
    expect(answers.filter((c) => c !== "c1" && c !== "c2")).toEqual([]);
  }, 60_000);

  test("with every API server stopped, check -p dns passes from every pod against the agents' replicas", async () => {
    expect(echoPods.length).toBe(6);
    const r = await checkDns();
    expect(r.code, r.out).toBe(0);
    console.log(renderClustersetReport(r.rep!));
    expectAllPods(r.rep!, r.out);
    const sources = Object.entries(r.rep!.sources);
    expect(sources.length, r.out).toBeGreaterThan(0);
    for (const [k, v] of sources) {
      expect(k, r.out).toMatch(/^c[123]\/c[123]-node-\d+$/);
      expect(v, r.out).toStartWith(
        `replica of ${k.split("/")[1]}'s agent (API server of ${k.split("/")[0]}:`,
      );
    }
  }, 180_000);

  test("with every API server stopped, check --inventory -p dns passes from every pod against the agents' replicas", async () => {
    expect(echoPods.length).toBe(6);
    const [r] = await checkInventoryDns(["resolv.conf"]);
    expect(r?.rep, r?.out).toBeDefined();
    expectAllPods(r!.rep!, r!.out);
    for (const [k, v] of Object.entries(r!.rep!.sources)) {
      expect(k, r!.out).toMatch(/^c[123]\/c[123]-node-\d+$/);
      expect(v, r!.out).toStartWith(`replica of ${k.split("/")[1]}'s agent`);
    }
    expect(r!.code, r!.out).toBe(0);
  }, 180_000);

  test("c1's nodes gone (links down, API servers still stopped): every connection to the name reaches c2", async () => {
    const { plan } = await loadLab(LAB);
    const from = echo.find((p) => p.cluster === "c3")!;
    const t0 = performance.now();
    for (const n of plan.nodes.filter((x) => x.cluster === "c1"))
      await sh(["ip", "-n", n.ns, "link", "set", "eth0", "down"]);
    let answers: string[] = [];
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await Bun.sleep(250)) {
      answers = await clustersAnswering(from, echo, 8);
      if (answers.length === 8 && answers.every((c) => c === "c2")) break;
    }
    expect(answers).toEqual(Array(8).fill("c2"));
    console.log(
      `c1 gone: every connection reaches c2 after ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }, 90_000);
});
