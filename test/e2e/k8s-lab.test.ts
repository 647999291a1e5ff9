/**
 * End to end through Kubernetes objects (root, network namespaces): the default lab's agents start
 * unseeded; its clusters exist only as Kosmos Cluster objects in a (fake) host API server and as Nodes
 * in one (fake) API server per member cluster; the real controller derives the topology and seeds a
 * few agents, the rest learn it by gossip. Then the objects change (a Node deleted / re-created, a
 * Cluster's globalCIDRsMap) and every agent's topology follows; the API servers restart on the same
 * port while traffic keeps flowing and the controller recovers. One lab shared by the tests, in order.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type V1Node,
} from "@kubernetes/client-node";
import type { ClusterNodeObject, ClusterObject } from "../../internal/controller/index.ts";
import { DEFAULT_LAB, parseLabConfig } from "../../internal/lab/config.ts";
import { type KubeLab, kubeObjectsForLab, labFromKubernetes } from "../../internal/lab/k8s.ts";
import { agentFetch, agentSocket, labDown, waitAgentReady } from "../../internal/lab/lab.ts";
import type { LabPlan } from "../../internal/lab/plan.ts";
import { expectedProbes, type MatrixOptions, type ProbeResult, runProbes } from "../../internal/lab/probe.ts";
import type { Topology } from "../../internal/topology/index.ts";
import { until } from "./helpers.ts";

const LAB = `ek8s${process.pid.toString(36)}`.slice(0, 12);
const T = 90_000;
let kl: KubeLab | undefined;

const lab = (): KubeLab => {
  if (!kl) throw new Error("lab not up");
  return kl;
};

async function agentTopology(node: string): Promise<Topology> {
  const r = await agentFetch(agentSocket(LAB, node), "/v1/topology", { timeoutMs: 3000 });
  if (!r.ok) throw new Error(`${node} /v1/topology: HTTP ${r.status}`);
  return (await r.json()) as Topology;
}

/** Every agent (but `except`) holds a topology satisfying `pred`. */
async function everyAgent(
  what: string,
  pred: (t: Topology) => boolean,
  except: string[] = [],
): Promise<void> {
  const nodes = lab()
    .plan.nodes.map((n) => n.name)
    .filter((n) => !except.includes(n));
  await until(what, 20_000, async () => {
    for (const n of nodes) if (!pred(await agentTopology(n))) return false;
    return true;
  });
}

/** Probe until everything passes (convergence) or the deadline; returns the failures left. */
async function probesUntilPass(plan: LabPlan, opts: MatrixOptions = {}, timeoutMs = 20_000) {
  const probes = expectedProbes(plan, opts);
  let pending = probes;
  let failed: ProbeResult[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await runProbes(pending, { concurrency: 8, timeoutSec: 1 });
    failed = res.filter((r) => !r.ok);
    pending = pending.filter((_, i) => !res[i]?.ok);
    if (failed.length === 0 || Date.now() > deadline) break;
    await Bun.sleep(300);
  }
  return {
    total: probes.length,
    failed: failed.map((f) => `${f.src} -> ${f.dst} ${f.ip} ${f.proto}: ${f.detail}`),
  };
}

const nodeNames = (t: Topology): string[] => t.nodes.map((n) => n.name).sort();
const planNodeNames = (): string[] =>
  lab()
    .plan.nodes.map((n) => n.name)
    .sort();

const memberCore = (cluster: string) => lab().memberKubeConfig(cluster).makeApiClient(CoreV1Api);
const hostCustom = () => lab().hostKubeConfig.makeApiClient(CustomObjectsApi);

const getCluster = async (name: string): Promise<ClusterObject> =>
  (await hostCustom().getClusterCustomObject({
    group: "kosmos.io",
    version: "v1alpha1",
    plural: "clusters",
    name,
  })) as ClusterObject;

async function setGlobalCIDRs(cluster: string, map: Record<string, string>): Promise<void> {
  await hostCustom().patchClusterCustomObject(
    {
      group: "kosmos.io",
      version: "v1alpha1",
      plural: "clusters",
      name: cluster,
      // JSON merge patch: null removes keys that are not in the new map.
      body: {
        spec: {
          clusterLinkOptions: {
            globalCIDRsMap: {
              ...nullAll((await getCluster(cluster)).spec.clusterLinkOptions?.globalCIDRsMap),
              ...map,
            },
          },
        },
      },
    },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
}
const nullAll = (m: Record<string, string> | undefined): Record<string, null> =>
  Object.fromEntries(Object.keys(m ?? {}).map((k) => [k, null]));

/** The plan with c3's pods reached through another global CIDR. */
function withGlobal(plan: LabPlan, cluster: string, from: string, to: string): LabPlan {
  const p = structuredClone(plan);
  for (const n of p.nodes) {
    if (n.cluster !== cluster) continue;
    for (const pod of n.pods)
      if (pod.globalIPv4?.startsWith(from)) pod.globalIPv4 = to + pod.globalIPv4.slice(from.length);
  }
  return p;
}

beforeAll(async () => {
  await labDown(LAB);
  kl = await labFromKubernetes(LAB, parseLabConfig(DEFAULT_LAB));
  for (const n of kl.plan.nodes) await waitAgentReady(LAB, n.name, 60_000);
}, T);

afterAll(async () => {
  await kl?.stop();
  await labDown(LAB);
}, T);

describe("a lab whose topology comes from Kubernetes objects through the controller", () => {
  test(
    "Cluster + member Node objects → ClusterNodes, Cluster status, every agent's topology; all cross-cluster probes pass",
    async () => {
      const { plan } = lab();
      // The controller maintains one ClusterNode per member Node and the detected CIDRs in status.
      const cns = (
        (await hostCustom().listClusterCustomObject({
          group: "kosmos.io",
          version: "v1alpha1",
          plural: "clusternodes",
        })) as {
          items: ClusterNodeObject[];
        }
      ).items;
      expect(cns.map((n) => n.metadata.name).sort()).toEqual(planNodeNames());
      for (const c of plan.clusters) {
        const obj = await until(`status of ${c.name}`, 10_000, async () => {
          const o = await getCluster(c.name);
          return o.status?.conditions?.find((x) => x.type === "Ready")?.status === "True" ? o : undefined;
        });
        expect(obj.status?.clusterLinkStatus?.podCIDRs?.slice().sort()).toEqual(c.podCIDRs.slice().sort());
        expect(obj.status?.clusterLinkStatus?.serviceCIDRs?.slice().sort()).toEqual(
          c.serviceCIDRs.slice().sort(),
        );
        expect(obj.status?.nodeCount).toBe(plan.nodes.filter((n) => n.cluster === c.name).length);
      }
      // Every agent (seeded or not) holds the same nodes/CIDRs/gateways as the lab's own plan.
      const want = plan.topology;
      for (const n of plan.nodes) {
        const t = await agentTopology(n.name);
        expect(nodeNames(t)).toEqual(planNodeNames());
        for (const wc of want.clusters) {
          const gc = t.clusters.find((c) => c.name === wc.name)!;
          expect(gc.networkType).toBe(wc.networkType);
          expect(gc.ipFamily).toBe(wc.ipFamily);
          expect([...gc.podCIDRs].sort()).toEqual([...wc.podCIDRs].sort());
          expect([...gc.serviceCIDRs].sort()).toEqual([...wc.serviceCIDRs].sort());
          expect(gc.globalCIDRs).toEqual(wc.globalCIDRs);
        }
        for (const wn of want.nodes) {
          const gn = t.nodes.find((x) => x.name === wn.name)!;
          expect({ ip4: gn.ipv4, ip6: gn.ipv6, pods: gn.podCIDRs, gw: gn.gatewayCandidate }).toEqual({
            ip4: wn.ipv4,
            ip6: wn.ipv6,
            pods: wn.podCIDRs,
            gw: wn.gatewayCandidate,
          });
        }
      }
      const r = await probesUntilPass(plan);
      expect(r.failed).toEqual([]);
      expect(r.total).toBe(126);
    },
    T,
  );

  test(
    "a member Node deleted / re-created: every agent's topology follows, traffic to the node is back",
    async () => {
      const { plan } = lab();
      const core = memberCore("c1");
      const gone = "c1-node-2";
      const node = (await core.readNode({ name: "node-2" })) as V1Node;
      await core.deleteNode({ name: "node-2" });
      await everyAgent(`${gone} removed everywhere`, (t) => !nodeNames(t).includes(gone), [gone]);
      expect(nodeNames(lab().controller.topology())).not.toContain(gone);
      const fresh = kubeObjectsForLab(plan).members.c1!.nodes.find((n) => n.metadata?.name === "node-2")!;
      expect(fresh.status?.addresses).toEqual(node.status?.addresses);
      await core.createNode({ body: fresh });
      await everyAgent(`${gone} back everywhere`, (t) => nodeNames(t).includes(gone));
      const r = await probesUntilPass(plan, { dstClusters: ["c1"], includeServices: false });
      expect(r.failed).toEqual([]);
      expect(r.total).toBeGreaterThan(0);
    },
    T,
  );

  test(
    "a Cluster's globalCIDRsMap changed: agents follow, c3's pods answer on the new global IPs (then back)",
    async () => {
      const { plan } = lab();
      await setGlobalCIDRs("c3", { "10.244.0.0/16": "242.33.0.0/16" });
      await everyAgent("c3 global CIDR 242.33.0.0/16", (t) =>
        t.clusters.some((c) => c.name === "c3" && c.globalCIDRs["10.244.0.0/16"] === "242.33.0.0/16"),
      );
      const moved = withGlobal(plan, "c3", "242.3.", "242.33.");
      const r = await probesUntilPass(moved, { dstClusters: ["c3"], includeServices: false, families: [4] });
      expect(r.failed).toEqual([]);
      await setGlobalCIDRs("c3", { "10.244.0.0/16": "242.3.0.0/16" });
      await everyAgent("c3 global CIDR back", (t) =>
        t.clusters.some((c) => c.name === "c3" && c.globalCIDRs["10.244.0.0/16"] === "242.3.0.0/16"),
      );
      const back = await probesUntilPass(plan, {
        dstClusters: ["c3"],
        includeServices: false,
        families: [4],
      });
      expect(back.failed).toEqual([]);
    },
    T,
  );

  test(
    "API servers restart on the same ports: traffic unaffected while down; the controller picks up changes made meanwhile and after",
    async () => {
      const k = lab();
      const servers = [k.host, ...k.members.values()];
      const ports = servers.map((s) => s.port);
      for (const s of servers) await s.stop();
      // A change made while every API server is down (straight into the surviving store): c2's node-3 leaves.
      const nodesType = k.members.get("c2")!.store.type("", "nodes")!;
      k.members.get("c2")!.store.delete(nodesType, undefined, "node-3");
      const during = await probesUntilPass(k.plan, {}, 5_000);
      expect(during.failed).toEqual([]);
      expect(nodeNames(k.controller.topology())).toContain("c2-node-3"); // nothing seen yet
      for (const s of servers) await s.start();
      expect(servers.map((s) => s.port)).toEqual(ports);
      // The informers re-list and watch again (no polling: watches are the only way changes arrive).
      await until("watches re-established", 20_000, async () => servers.every((s) => s.watchCount() > 0));
      await everyAgent("c2-node-3 removed after the restart", (t) => !nodeNames(t).includes("c2-node-3"), [
        "c2-node-3",
      ]);
      // The controller keeps working after the restart: the node comes back through the API.
      const fresh = kubeObjectsForLab(k.plan).members.c2!.nodes.find((n) => n.metadata?.name === "node-3")!;
      await memberCore("c2").createNode({ body: fresh });
      await everyAgent("c2-node-3 back", (t) => nodeNames(t).includes("c2-node-3"));
      await until("the controller to lead again", 20_000, async () => k.controller.isLeader());
      const after = await probesUntilPass(k.plan);
      expect(after.failed).toEqual([]);
      expect(after.total).toBe(126);
    },
    T,
  );
});
