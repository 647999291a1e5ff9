/**
 * End to end through Kubernetes objects (root, network namespaces, KUBEBUILDER_ASSETS): the default
 * lab's agents start unseeded; its clusters exist only as Kosmos Cluster objects in a real host API
 * server and as Nodes in one real API server per member cluster (upstream kube-apiserver, one shared
 * etcd); the real controller derives the topology and seeds a few agents, the rest learn it by gossip.
 * Then the objects change (a Node deleted / re-created, a Cluster's globalCIDRsMap) and every agent's
 * topology follows; every API server goes down while traffic keeps flowing, a change is made through
 * an HA replica, the servers come back on the same ports and the controller's informers relist (410
 * Gone) and recover. One lab shared by the tests, in order.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  CLUSTER_NODES_PATH,
  CLUSTERS_PATH,
  type ClusterNodeObject,
  type ClusterObject,
} from "../../internal/controller/index.ts";
import { KubeClient, kubeConfigFromYaml } from "../../internal/kube/index.ts";
import { DEFAULT_LAB, parseLabConfig } from "../../internal/lab/config.ts";
import { describesPlan, type KubeLab, kubeObjectsForLab, labFromKubernetes } from "../../internal/lab/k8s.ts";
import { agentFetch, agentSocket, labDown, waitAgentReady } from "../../internal/lab/lab.ts";
import type { LabPlan } from "../../internal/lab/plan.ts";
import { expectedProbes, type MatrixOptions, type ProbeResult, runProbes } from "../../internal/lab/probe.ts";
import type { Topology } from "../../internal/topology/index.ts";
import { kubeSkip } from "../helpers/k8s.ts";
import { until } from "./helpers.ts";

const skip = kubeSkip();
const LAB = `ek8s${process.pid.toString(36)}`.slice(0, 12);
const T = 180_000;
let kl: KubeLab | undefined;
const memberClients = new Map<string, KubeClient>();

const lab = (): KubeLab => {
  if (!kl) throw new Error("lab not up");
  return kl;
};

/** An admin client of a member cluster's API server (one per cluster, closed at the end). */
function member(cluster: string): KubeClient {
  let c = memberClients.get(cluster);
  if (!c) {
    c = lab().memberClient(cluster);
    memberClients.set(cluster, c);
  }
  return c;
}

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
  await until(what, 30_000, async () => {
    for (const n of nodes) if (!pred(await agentTopology(n))) return false;
    return true;
  });
}

/**
 * Probe until everything passes (convergence) or the deadline; returns the failures left. Rounds use a
 * 1 s timeout; what still fails at the deadline is tried once more with 3 s, so a reply slowed down by
 * a loaded machine is not reported as lost traffic.
 */
async function probesUntilPass(plan: LabPlan, opts: MatrixOptions = {}, timeoutMs = 20_000) {
  const probes = expectedProbes(plan, opts);
  let pending = probes;
  let failed: ProbeResult[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = Date.now() > deadline;
    const res = await runProbes(pending, { concurrency: 8, timeoutSec: last ? 3 : 1 });
    failed = res.filter((r) => !r.ok);
    const slow = res.filter((r) => r.ok && last);
    if (slow.length > 0)
      console.warn(`passed only with a 3 s timeout: ${slow.map((r) => `${r.src} -> ${r.ip}`)}`);
    pending = pending.filter((_, i) => !res[i]?.ok);
    if (failed.length === 0 || last) break;
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

const getCluster = (name: string): Promise<ClusterObject> =>
  lab().hostClient.get<ClusterObject>(`${CLUSTERS_PATH}/${name}`);

async function setGlobalCIDRs(cluster: string, map: Record<string, string>): Promise<void> {
  const current = (await getCluster(cluster)).spec.clusterLinkOptions?.globalCIDRsMap;
  // JSON merge patch: null removes keys that are not in the new map.
  const body = { spec: { clusterLinkOptions: { globalCIDRsMap: { ...nullAll(current), ...map } } } };
  await lab().hostClient.patch(`${CLUSTERS_PATH}/${cluster}`, body, "merge");
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

/** The lab's Node object of a member cluster, as first created. */
const labNode = (cluster: string, name: string) =>
  kubeObjectsForLab(lab().plan).members[cluster]!.nodes.find((n) => n.metadata.name === name)!;

describe.skipIf(skip)("a lab whose topology comes from Kubernetes objects through the controller", () => {
  beforeAll(async () => {
    await labDown(LAB);
    kl = await labFromKubernetes(LAB, parseLabConfig(DEFAULT_LAB));
    for (const n of kl.plan.nodes) await waitAgentReady(LAB, n.name, 60_000);
  }, 300_000);

  afterAll(async () => {
    for (const c of memberClients.values()) c.close();
    await kl?.stop();
    await labDown(LAB);
  }, T);

  test(
    "Cluster + member Node objects → ClusterNodes, Cluster status, every agent's topology; all cross-cluster probes pass",
    async () => {
      const { plan, hostClient } = lab();
      // The controller maintains one ClusterNode per member Node and the detected CIDRs in status.
      const cns = (await hostClient.list<ClusterNodeObject>(CLUSTER_NODES_PATH)).items;
      expect(cns.map((n) => n.metadata.name).sort()).toEqual(planNodeNames());
      for (const n of cns) expect(n.metadata.ownerReferences?.[0]?.kind).toBe("Cluster");
      for (const c of plan.clusters) {
        const obj = await until(`status of ${c.name}`, 10_000, async () => {
          const o = await getCluster(c.name);
          return o.status?.conditions?.find((x) => x.type === "Ready")?.status === "True" ? o : undefined;
        });
        expect(obj.status?.clusterLinkStatus?.podCIDRs?.slice().sort()).toEqual(c.podCIDRs.slice().sort());
        // Detected from the member API server's refusal of an out-of-range clusterIP, per family.
        expect(obj.status?.clusterLinkStatus?.serviceCIDRs?.slice().sort()).toEqual(
          c.serviceCIDRs.slice().sort(),
        );
        expect(obj.status?.nodeCount).toBe(plan.nodes.filter((n) => n.cluster === c.name).length);
      }
      // Every agent (seeded or not) holds the same nodes/CIDRs/gateways as the lab's own plan (the
      // controller may have pushed partial topologies first; gossip brings the last one everywhere).
      await everyAgent("every agent holds the whole plan", (t) => describesPlan(t, plan));
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
      const c1 = member("c1");
      const gone = "c1-node-2";
      const node = await c1.get<{ status?: { addresses?: unknown } }>("/api/v1/nodes/node-2");
      expect(await c1.delete("/api/v1/nodes/node-2")).toBe(true);
      await everyAgent(`${gone} removed everywhere`, (t) => !nodeNames(t).includes(gone), [gone]);
      expect(nodeNames(lab().controller.topology())).not.toContain(gone);
      const fresh = labNode("c1", "node-2");
      expect(fresh.status.addresses).toEqual(node.status?.addresses as typeof fresh.status.addresses);
      await c1.create("/api/v1/nodes", fresh);
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

  test("every API server down (traffic unaffected); a change made through an HA replica meanwhile; servers back on the same ports: informers relist after 410 Gone, the change reaches every agent, the controller leads again", async () => {
    const k = lab();
    const servers = [k.host, ...k.members.values()];
    const urls = servers.map((s) => s.url);
    const before = new Map(k.controller.watches().map((w) => [w.name, w]));
    expect([...before.keys()].sort()).toEqual([
      "clusternodes",
      "clusters",
      "nodes@c1",
      "nodes@c2",
      "nodes@c3",
    ]);
    const baseline = await probesUntilPass(k.plan);
    expect(baseline.failed).toEqual([]);
    await Promise.all(servers.map((s) => s.stopApiServer()));
    const during = await probesUntilPass(k.plan, {}, 5_000);
    expect(during.failed).toEqual([]);
    // c2's control plane is HA: its other API server (same etcd prefix and certificates, another
    // port, unknown to the controller) is up for a moment, and node-3 leaves through it.
    const replica = await k.members.get("c2")!.startReplica();
    try {
      const rc = new KubeClient(kubeConfigFromYaml(replica.kubeconfig()));
      expect(await rc.delete("/api/v1/nodes/node-3")).toBe(true);
      rc.close();
    } finally {
      await replica.stop();
    }
    expect(nodeNames(k.controller.topology())).toContain("c2-node-3"); // nothing seen yet
    await Promise.all(servers.map((s) => s.restartApiServer()));
    for (const [i, s] of servers.entries()) expect(await s.ready(urls[i])).toBe(true);
    // The informers' resourceVersions predate the new watch caches: each watch is refused with 410
    // Gone and the informer lists again (no polling: watches are the only way changes arrive).
    await until("every informer relisted after 410 Gone", 30_000, async () =>
      k.controller.watches().every((w) => {
        const b = before.get(w.name);
        return b !== undefined && w.synced && w.expired > b.expired && w.relists > b.relists;
      }),
    );
    await everyAgent("c2-node-3 removed after the restart", (t) => !nodeNames(t).includes("c2-node-3"), [
      "c2-node-3",
    ]);
    // The controller keeps working after the restart: the node comes back through the API.
    await member("c2").create("/api/v1/nodes", labNode("c2", "node-3"));
    await everyAgent("c2-node-3 back", (t) => nodeNames(t).includes("c2-node-3"));
    await until("the controller to lead again", 20_000, async () => k.controller.isLeader());
    const after = await probesUntilPass(k.plan);
    expect(after.failed).toEqual([]);
    expect(after.total).toBe(126);
  }, 420_000);
});
