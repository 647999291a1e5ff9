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
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type DemoPod, demoTargets, probeTargets, runningEcho } from "../../internal/cli/lab-demo-k8s.ts";
import { KubeClient, loadKubeConfig } from "../../internal/kube/index.ts";
import { labDown, labFiles, loadLab, readKubeState, sh } from "../../internal/lab/index.ts";
import { kubeSkip } from "../helpers/k8s.ts";
import { kosmosctl } from "../helpers/kosmosctl.ts";
import { labName } from "./helpers.ts";

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
      const clusters = await host.list<Cluster>("/apis/kosmos.io/v1alpha1/clusters");
      expect(clusters.items.map((c) => c.metadata.name).sort()).toEqual(["c1", "c2", "c3"]);
      for (const c of clusters.items)
        expect(c.status?.conditions?.find((k) => k.type === "Ready")?.status, c.metadata.name).toBe("True");
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
      for (const c of st.clusters) echo.push(...(await runningEcho(clientFor(c.kubeconfig), c.name, 2)));
      expect(echo.length).toBe(6);
    },
    T,
  );

  test("with every API server of the lab stopped, the same connections still answer", async () => {
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
  }, 60_000);
});
