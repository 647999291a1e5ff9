/**
 * Issue 14's "Done when" in the lab (`kosmosctl lab demo --tree`, step by step): the tree preset's
 * root and two leaves are real clusters with lab kubelets running pods in network namespaces; Kosmos
 * is installed on the root and joined by all three (the leaves with --enable-tree); kosmos-clustertree
 * runs as the manifest's Deployment (hostNetwork on root/node-1, its kubelet API reached by the root
 * API server through the lab's host port mapping). A root Deployment of 6 echo pods runs in both
 * leaves with the leaf pods' IPs; a pod on a real root node reaches them through a root Service and
 * directly; `kubectl logs/exec` work on a root pod; deleting the Deployment removes every leaf pod and
 * copy.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  type CarriedPod,
  deleteTreeWorkload,
  deployTreeWorkload,
  KUBECTL,
  runClusterTree,
  type TreeLab,
  type TreePod,
  treeLabUp,
  treeLogsExec,
  treeTraffic,
} from "../../internal/cli/lab-demo-tree.ts";
import { NODE_LABEL, POD_LABEL } from "../../internal/clustertree/index.ts";
import { labDown, parseLabConfig, TREE_LAB } from "../../internal/lab/index.ts";
import { kubeSkip } from "../helpers/k8s.ts";
import { labName } from "./helpers.ts";

const LAB = labName("tree");
const T = 600_000;
const skip = kubeSkip();

let lab: TreeLab | undefined;
let pods: CarriedPod[] = [];
let client: TreePod | undefined;

type NodeLike = {
  metadata: { name: string };
  status?: {
    addresses?: { type: string; address: string }[];
    daemonEndpoints?: { kubeletEndpoint?: { Port?: number } };
    conditions?: { type: string; status: string }[];
  };
};

beforeAll(() => labDown(LAB), T);
afterAll(async () => {
  lab?.close();
  await labDown(LAB);
}, T);

/** Does `ip` (IPv4) fall inside `cidr`? */
function inCidr(ip: string, cidr: string): boolean {
  const [base, len] = cidr.split("/") as [string, string];
  const n = (a: string) => a.split(".").reduce((x, o) => x * 256 + Number(o), 0);
  const mask = 2 ** 32 - 2 ** (32 - Number(len));
  return (n(ip) & mask) >>> 0 === (n(base) & mask) >>> 0;
}

describe.skipIf(skip)("ClusterTree in the lab (kosmosctl lab demo --tree)", () => {
  test(
    "install + join (leaves --enable-tree) + clustertree's Deployment: one Ready virtual node per leaf, reached by the root API server through the port mapping",
    async () => {
      lab = await treeLabUp(LAB, parseLabConfig(TREE_LAB));
      expect(lab.root).toBe("root");
      expect(lab.leaves).toEqual(["leaf1", "leaf2"]);
      await runClusterTree(lab);
      const root = lab.clients.get("root")!;
      const mapping = lab.st.portMappings?.find((m) => m.cluster === "root");
      expect(mapping?.node).toBe("node-1");
      const vnodes = await root.list<NodeLike>("/api/v1/nodes", { labelSelector: `${NODE_LABEL}=true` });
      expect(vnodes.items.map((n) => n.metadata.name).sort()).toEqual(["kosmos-leaf1", "kosmos-leaf2"]);
      for (const n of vnodes.items) {
        expect(n.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
        // The API server prefers InternalDNS: localhost:<host port> → socat → node-1:10250.
        expect(n.status?.addresses).toContainEqual({ type: "InternalDNS", address: "localhost" });
        expect(n.status?.addresses).toContainEqual({ type: "InternalIP", address: mapping!.nodeAddress });
        expect(n.status?.daemonEndpoints?.kubeletEndpoint?.Port).toBe(mapping!.hostPort);
      }
      // clustertree is the manifest's pod: hostNetwork on root/node-1.
      const ct = await root.list<{ spec?: { nodeName?: string; hostNetwork?: boolean } }>(
        "/api/v1/namespaces/kosmos-system/pods",
        { labelSelector: "app.kubernetes.io/name=kosmos-clustertree" },
      );
      expect(ct.items.length).toBe(1);
      expect(ct.items[0]!.spec?.nodeName).toBe("node-1");
      expect(ct.items[0]!.spec?.hostNetwork).toBe(true);
    },
    T,
  );

  test(
    "a root Deployment of 6 tolerating kosmos.io/node: 6 Running root pods with their leaf pods' IPs, spread over both leaves",
    async () => {
      expect(lab).toBeDefined();
      const got = await deployTreeWorkload(lab!, 6);
      pods = got.pods;
      client = got.client;
      expect(pods.length).toBe(6);
      const cidr = (c: string) => lab!.plan.clusters.find((x) => x.name === c)!.podCIDRs[0]!;
      for (const p of pods) {
        expect(p.root.ready).toBe(true);
        expect(p.leafPod?.ready).toBe(true);
        expect(p.root.ip).toBe(p.leafPod!.ip);
        expect(p.root.node).toBe(`kosmos-${p.leaf}`);
        expect(inCidr(p.root.ip, cidr(p.leaf))).toBe(true);
        expect(inCidr(p.root.ip, cidr("root"))).toBe(false);
      }
      // maxSkew 1 over two virtual nodes: 3 and 3.
      expect(pods.filter((p) => p.leaf === "leaf1").length).toBe(3);
      expect(pods.filter((p) => p.leaf === "leaf2").length).toBe(3);
      // Leaf pods carry the mark and run on the leaves' real (lab kubelet) nodes.
      for (const leaf of lab!.leaves) {
        const l = await lab!.clients
          .get(leaf)!
          .list<{ metadata: { labels?: Record<string, string> }; spec?: { nodeName?: string } }>(
            "/api/v1/namespaces/kosmos-tree-demo/pods",
            { labelSelector: "app=web" },
          );
        expect(l.items.length).toBe(3);
        for (const p of l.items) {
          expect(p.metadata.labels?.[POD_LABEL]).toBe("true");
          expect(["node-1", "node-2"]).toContain(p.spec?.nodeName ?? "");
        }
      }
      // The client is on a real root node (not virtual).
      expect(["node-1", "node-2"]).toContain(client.node);
      expect(inCidr(client.ip, cidr("root"))).toBe(true);
    },
    T,
  );

  test("from a pod on a real root node: the root Service reaches pods in both leaves, and every root pod IP answers", async () => {
    expect(pods.length).toBe(6);
    const r = await treeTraffic(lab!, pods, client!);
    expect(r.viaService.leaf1 ?? 0).toBeGreaterThan(0);
    expect(r.viaService.leaf2 ?? 0).toBeGreaterThan(0);
    expect(r.direct.filter((d) => !d.ok)).toEqual([]);
    expect(r.direct.length).toBe(6);
  }, 120_000);

  test("kubectl logs and kubectl exec on a root pod (root API server → clustertree → leaf)", async () => {
    expect(pods.length).toBe(6);
    const pod = pods[0]!;
    const r = await treeLogsExec(lab!, pod.root.name);
    expect(r.logs).toContain(`${pod.root.name}: answering its name on TCP 8080`);
    if (!KUBECTL) {
      console.log(`exec not checked: ${r.skipped}`);
      return;
    }
    expect(r.exec?.code).toBe(0);
    // hostname in the pod's UTS namespace, and its eth0 address: the leaf pod's.
    expect(r.exec?.out.trim()).toStartWith(`${pod.root.name} in ${pod.root.ip}/`);
  }, 120_000);

  test(
    "deleting the Deployment removes every leaf pod and every copy only they needed",
    async () => {
      expect(pods.length).toBe(6);
      const { before, after } = await deleteTreeWorkload(lab!);
      expect(before.reduce((n, o) => n + o.pods.length, 0)).toBe(6);
      for (const o of before) {
        // The root CA and the ServiceAccount token, as the root names them (default SA: the leaf's own).
        expect(o.configMaps).toEqual(["master-root-ca.crt"]);
        expect(o.secrets).toEqual(["kosmos-default-token"]);
      }
      for (const o of after) {
        expect(o.pods).toEqual([]);
        expect(o.configMaps).toEqual([]);
        expect(o.secrets).toEqual([]);
        expect(o.serviceAccounts).toEqual([]);
      }
      const root = lab!.clients.get("root")!;
      const left = await root.list("/api/v1/namespaces/kosmos-tree-demo/pods", { labelSelector: "app=web" });
      expect(left.items).toEqual([]);
    },
    T,
  );
});
