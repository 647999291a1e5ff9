/** ClusterTree planning (pure): quantities, capacity, virtual nodes per mode, pod conversion, status. */
import { describe, expect, test } from "bun:test";
import { convertPod, leafPodPatch } from "../../internal/clustertree/convert.ts";
import { matchesSelector, partyNodeName, planNodes } from "../../internal/clustertree/model.ts";
import { exactMap, mergeTaints } from "../../internal/clustertree/nodes.ts";
import { aggregate, formatQuantity, parseQuantity } from "../../internal/clustertree/resources.ts";
import { statusFromLeaf } from "../../internal/clustertree/status.ts";
import type { NodeObject, PodObject } from "../../internal/clustertree/types.ts";
import type { ClusterObject } from "../../internal/controller/index.ts";

const node = (
  name: string,
  o: { labels?: Record<string, string>; ready?: boolean; cordon?: boolean } = {},
): NodeObject => ({
  metadata: { name, labels: { "kubernetes.io/hostname": name, ...(o.labels ?? {}) } },
  spec: { unschedulable: o.cordon },
  status: {
    allocatable: { cpu: "4", memory: "8Gi", pods: "110" },
    conditions: [{ type: "Ready", status: o.ready === false ? "False" : "True" }],
  },
});

const pod = (
  name: string,
  o: { node?: string; cpu?: string; kosmos?: boolean; phase?: string } = {},
): PodObject => ({
  metadata: {
    name,
    namespace: "default",
    uid: `uid-${name}`,
    labels: o.kosmos ? { "kosmos-io/pod": "true" } : {},
  },
  spec: {
    nodeName: o.node,
    containers: [
      { name: "c", image: "img:1", resources: { requests: { cpu: o.cpu ?? "500m", memory: "1Gi" } } },
    ],
  },
  status: { phase: o.phase ?? "Running" },
});

const cluster = (models?: unknown[]): ClusterObject => ({
  metadata: { name: "leaf1" },
  spec: { clusterTreeOptions: { enable: true, leafModels: models as never } },
});

describe("quantities", () => {
  test("parse and format exactly", () => {
    expect(parseQuantity("250m")).toBe(250n);
    expect(parseQuantity("4")).toBe(4000n);
    expect(parseQuantity("1Ki")).toBe(1024000n);
    expect(parseQuantity("1.5")).toBe(1500n);
    expect(parseQuantity("1e3")).toBe(1_000_000n);
    expect(parseQuantity("2G")).toBe(2_000_000_000_000n);
    expect(formatQuantity(parseQuantity("8Gi"))).toBe("8589934592");
    expect(formatQuantity(1500n)).toBe("1500m");
    expect(() => parseQuantity("4 cores")).toThrow("not a quantity");
  });
});

describe("capacity", () => {
  test("Ready schedulable nodes minus running pods Kosmos did not create", () => {
    const nodes = [node("a"), node("b"), node("c", { ready: false }), node("d", { cordon: true })];
    const pods: Record<string, PodObject[]> = {
      a: [pod("p1", { node: "a", cpu: "1" }), pod("mine", { node: "a", cpu: "2", kosmos: true })],
      b: [pod("pending", { node: "b", phase: "Pending" })],
      c: [pod("onBad", { node: "c", cpu: "3" })],
    };
    const cap = aggregate(nodes, (n) => pods[n] ?? [], "kosmos-io/pod");
    expect(cap).toEqual({ cpu: "7", memory: String(16 * 2 ** 30 - 2 ** 30), pods: "219" });
  });
});

describe("virtual nodes", () => {
  const leaf = [
    node("n1", { labels: { party: "yes", "node-role.kubernetes.io/control-plane": "" } }),
    node("n2", { labels: { party: "yes" } }),
    node("n3"),
  ];
  const none = (): PodObject[] => [];

  test("one2cluster: kosmos-<cluster>, upstream labels, taint and annotations, LeafModel labels/taints", () => {
    const p = planNodes({
      cluster: cluster([{ labels: { zone: "z1" }, taints: [{ key: "t", value: "v", effect: "NoExecute" }] }]),
      leafNodes: leaf,
      podsByNode: none,
    });
    expect(p.nodes.map((n) => n.name)).toEqual(["kosmos-leaf1"]);
    const n = p.nodes[0]!;
    expect(n.labels).toMatchObject({
      "kosmos.io/node": "true",
      "kubernetes.io/role": "agent",
      "kubernetes.io/hostname": "kosmos-leaf1",
      zone: "z1",
    });
    expect(n.taints).toEqual([
      { key: "kosmos.io/node", value: "true", effect: "NoSchedule" },
      { key: "t", value: "v", effect: "NoExecute" },
    ]);
    expect(n.annotations).toEqual({ "kosmos-io/owned-by-cluster": "leaf1", leafNodeMode: "one2cluster" });
    expect(n.capacity.cpu).toBe("12");
    expect(n.leafNodes).toEqual(["n1", "n2", "n3"]);
  });

  test("no leafModels is one2cluster too", () => {
    expect(planNodes({ cluster: cluster(undefined), leafNodes: leaf, podsByNode: none }).nodes[0]!.name).toBe(
      "kosmos-leaf1",
    );
  });

  test("one2node: one root node per model named as the leaf node, leaf labels without roles", () => {
    const p = planNodes({
      cluster: cluster([{ nodeSelector: { nodeName: "n1" } }, { nodeSelector: { nodeName: "gone" } }]),
      leafNodes: leaf,
      podsByNode: none,
    });
    expect(p.nodes.map((n) => [n.name, n.ref.mode, n.capacity.cpu ?? "none"])).toEqual([
      ["n1", "one2node", "4"],
      ["gone", "one2node", "none"],
    ]);
    expect(p.nodes[0]!.labels.party).toBe("yes");
    expect(p.nodes[0]!.labels["node-role.kubernetes.io/control-plane"]).toBeUndefined();
    expect(p.problems).toEqual(["leafModels[1]: leaf node gone not found"]);
  });

  test("one2node: a leaf node's own taints are copied, its lifecycle taints are not (the root's controller owns those)", () => {
    const cordoned: NodeObject = {
      ...leaf[0]!,
      spec: {
        unschedulable: true,
        taints: [
          { key: "gpu", value: "a100", effect: "NoSchedule" },
          {
            key: "node.kubernetes.io/unschedulable",
            effect: "NoSchedule",
            timeAdded: "2026-01-01T00:00:00Z",
          },
          { key: "node.kubernetes.io/not-ready", effect: "NoExecute" },
        ],
      },
    };
    const p = planNodes({
      cluster: cluster([{ nodeSelector: { nodeName: "n1" } }]),
      leafNodes: [cordoned, ...leaf.slice(1)],
      podsByNode: none,
    });
    expect(p.nodes[0]!.taints).toEqual([
      { key: "kosmos.io/node", value: "true", effect: "NoSchedule" },
      { key: "gpu", value: "a100", effect: "NoSchedule" },
    ]);
    // cordoned: nothing to offer (the status patch deletes the old keys: exactMap)
    expect(p.nodes[0]!.capacity).toEqual({});
  });

  test("root node writes: lifecycle taints kept once, capacity keys that went away deleted", () => {
    const lifecycle = { key: "node.kubernetes.io/not-ready", effect: "NoExecute", timeAdded: "t" };
    expect(
      mergeTaints(
        [
          { key: "kosmos.io/node", value: "true", effect: "NoSchedule" },
          { ...lifecycle, timeAdded: undefined },
        ],
        [
          { key: "kosmos.io/node", value: "true", effect: "NoSchedule" },
          lifecycle,
          { key: "old", effect: "NoSchedule" },
        ],
      ).map((t) => `${t.key}:${t.effect}`),
    ).toEqual(["kosmos.io/node:NoSchedule", "node.kubernetes.io/not-ready:NoExecute"]);
    expect(exactMap({ cpu: "4", memory: "8Gi", "nvidia.com/gpu": "1" }, { cpu: "2" })).toEqual({
      cpu: "2",
      memory: null,
      "nvidia.com/gpu": null,
    });
    expect(exactMap(undefined, {})).toEqual({});
  });

  test("one2party: kosmos-<leafNodeName>-<i> over the selected nodes; mixed models reported", () => {
    const p = planNodes({
      cluster: cluster([
        { leafNodeName: "leaf1", nodeSelector: { labelSelector: { matchLabels: { party: "yes" } } } },
        { nodeSelector: { nodeName: "n3" } },
      ]),
      leafNodes: leaf,
      podsByNode: none,
    });
    expect(p.nodes.map((n) => [n.name, n.leafNodes])).toEqual([["kosmos-leaf1-0", ["n1", "n2"]]]);
    expect(p.problems[0]).toContain("leafModels[1]");
    expect(partyNodeName("x".repeat(80), 12)).toHaveLength(63);
  });

  test("label selectors: matchLabels AND expressions", () => {
    expect(
      matchesSelector(
        { a: "1", b: "2" },
        { matchLabels: { a: "1" }, matchExpressions: [{ key: "b", operator: "In", values: ["2"] }] },
      ),
    ).toBe(true);
    expect(matchesSelector({ a: "1" }, { matchExpressions: [{ key: "b", operator: "Exists" }] })).toBe(false);
    expect(
      matchesSelector({ a: "1" }, { matchExpressions: [{ key: "a", operator: "NotIn", values: ["1"] }] }),
    ).toBe(false);
  });
});

describe("pod conversion", () => {
  const root = (): PodObject => ({
    metadata: {
      name: "web",
      namespace: "app",
      uid: "root-uid",
      resourceVersion: "9",
      labels: { app: "web" },
      annotations: { a: "1" },
      ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "rs", uid: "x" }],
    },
    spec: {
      nodeName: "kosmos-leaf1",
      schedulerName: "kosmos-scheduler",
      priority: 0,
      nodeSelector: { "kubernetes.io/hostname": "kosmos-leaf1" },
      tolerations: [{ key: "kosmos.io/node", operator: "Exists" }],
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchExpressions: [{ key: "x", operator: "Exists" }] }],
          },
          preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1 }],
        },
      },
      containers: [
        {
          name: "c",
          image: "nginx:1",
          env: [
            { name: "A", valueFrom: { configMapKeyRef: { name: "cfg", key: "k" } } },
            { name: "B", valueFrom: { secretKeyRef: { name: "pw", key: "k" } } },
          ],
          volumeMounts: [
            { name: "kube-api-access-x", mountPath: "/var/run/secrets/kubernetes.io/serviceaccount" },
          ],
        },
      ],
      volumes: [
        {
          name: "kube-api-access-x",
          projected: {
            sources: [
              { serviceAccountToken: { path: "token", expirationSeconds: 3607 } },
              { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
              { downwardAPI: { items: [] } },
            ],
          },
        },
        { name: "data", secret: { secretName: "tls" } },
      ],
      imagePullSecrets: [{ name: "regcred" }],
      serviceAccountName: "web-sa",
    },
    status: { phase: "Pending" },
  });

  test("one2cluster: strips root-only fields, marks the pod, renames the CA, rewrites the token", () => {
    const c = convertPod(root(), { cluster: "leaf1", mode: "one2cluster" });
    if (!c.ok) throw new Error(c.message);
    const p = c.pod;
    expect(p.metadata).toEqual({
      name: "web",
      namespace: "app",
      labels: { app: "web", "kosmos-io/pod": "true" },
      annotations: { a: "1", "kosmos-io/tripped": "{}", "kosmos.io/root-pod-uid": "root-uid" },
    });
    expect(p.status).toBeUndefined();
    expect(p.spec.nodeName).toBeUndefined();
    expect(p.spec.nodeSelector).toBeUndefined();
    expect(p.spec.tolerations).toBeUndefined();
    expect(p.spec.schedulerName).toBeUndefined();
    expect(p.spec.priority).toBeUndefined();
    expect(p.spec.affinity).toEqual({
      nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1 }] },
    });
    expect(p.spec.automountServiceAccountToken).toBe(false);
    expect(p.spec.volumes![0]!.projected!.sources).toEqual([
      { secret: { name: "kosmos-web-sa-token", items: [{ key: "token", path: "token" }] } },
      { configMap: { name: "master-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
      { downwardAPI: { items: [] } },
    ]);
    expect(p.spec.containers[0]!.env).toEqual(root().spec.containers[0]!.env!); // refs kept, values not inlined
    expect(c.deps).toEqual({
      configMaps: ["cfg", "kube-root-ca.crt"],
      secrets: ["pw", "tls"],
      optionalSecrets: ["regcred"],
      optionalConfigMaps: [],
      pvcs: [],
      serviceAccount: "web-sa",
      token: true,
    });
  });

  test("one2node keeps the leaf node; one2party gets the selector as required affinity", () => {
    const n = convertPod(root(), { cluster: "leaf1", mode: "one2node", leafNode: "n1" });
    expect(n.ok && n.pod.spec.nodeName).toBe("n1");
    const p = convertPod(root(), {
      cluster: "leaf1",
      mode: "one2party",
      selector: { matchLabels: { party: "yes" }, matchExpressions: [{ key: "z", operator: "Exists" }] },
    });
    if (!p.ok) throw new Error(p.message);
    expect(p.pod.spec.nodeName).toBeUndefined();
    expect(p.pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution).toEqual({
      nodeSelectorTerms: [
        {
          matchExpressions: [
            { key: "party", operator: "In", values: ["yes"] },
            { key: "z", operator: "Exists", values: undefined },
          ],
        },
      ],
    });
  });

  test("kosmos.io/cluster-selector overrides placement; a broken one names the field", () => {
    const r = root();
    r.metadata.annotations = {
      "kosmos.io/cluster-selector": JSON.stringify({
        nodeSelector: { disk: "ssd" },
        tolerations: [{ key: "gpu", operator: "Exists" }],
      }),
    };
    const c = convertPod(r, { cluster: "leaf1", mode: "one2cluster" });
    if (!c.ok) throw new Error(c.message);
    expect(c.pod.spec.nodeSelector).toEqual({ disk: "ssd" });
    expect(c.pod.spec.tolerations).toEqual([{ key: "gpu", operator: "Exists" }]);
    r.metadata.annotations = { "kosmos.io/cluster-selector": "{nope" };
    const bad = convertPod(r, { cluster: "leaf1", mode: "one2cluster" });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.field).toBe("metadata.annotations[kosmos.io/cluster-selector]");
  });

  test("a PVC volume is kept and its claim is a dependency; an empty claim name is named", () => {
    const r = root();
    r.spec.volumes!.push({ name: "db", persistentVolumeClaim: { claimName: "db" } });
    const c = convertPod(r, { cluster: "leaf1", mode: "one2cluster" });
    expect(c.ok && c.deps.pvcs).toEqual(["db"]);
    expect(c.ok && c.pod.spec.volumes![2]).toEqual({
      name: "db",
      persistentVolumeClaim: { claimName: "db" },
    });
    r.spec.volumes![2] = { name: "db", persistentVolumeClaim: { claimName: "" } };
    const bad = convertPod(r, { cluster: "leaf1", mode: "one2cluster" });
    expect(!bad.ok && bad.field).toBe("spec.volumes[2].persistentVolumeClaim.claimName");
  });

  test("updates carry images, labels, annotations and activeDeadlineSeconds only", () => {
    const c = convertPod(root(), { cluster: "leaf1", mode: "one2cluster" });
    if (!c.ok) throw new Error(c.message);
    const leaf = structuredClone(c.pod);
    expect(leafPodPatch(c.pod, leaf)).toBeUndefined();
    const r = root();
    r.metadata.labels = { app: "web", v: "2" };
    r.spec.containers[0]!.image = "nginx:2";
    r.spec.activeDeadlineSeconds = 30;
    r.metadata.annotations = {};
    const c2 = convertPod(r, { cluster: "leaf1", mode: "one2cluster" });
    if (!c2.ok) throw new Error(c2.message);
    expect(leafPodPatch(c2.pod, leaf)).toEqual({
      metadata: { labels: { v: "2" }, annotations: { a: null } },
      spec: { containers: [{ name: "c", image: "nginx:2" }], activeDeadlineSeconds: 30 },
    });
  });
});

describe("status", () => {
  test("leaf fields copied; equal statuses write nothing", () => {
    const leaf = {
      phase: "Running",
      podIP: "10.1.0.5",
      podIPs: [{ ip: "10.1.0.5" }],
      hostIP: "192.168.0.2",
      qosClass: "BestEffort",
    };
    expect(statusFromLeaf(leaf, { phase: "Pending", qosClass: "Burstable" })).toEqual({
      phase: "Running",
      podIP: "10.1.0.5",
      podIPs: [{ ip: "10.1.0.5" }],
      hostIP: "192.168.0.2",
    });
    expect(statusFromLeaf(leaf, { ...leaf, qosClass: "Burstable" })).toBeUndefined();
  });
});
