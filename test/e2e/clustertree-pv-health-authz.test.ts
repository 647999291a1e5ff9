/**
 * ClusterTree against real control planes — a root and one leaf, each with its real
 * kube-controller-manager (PV binder, pvc/pv-protection, node lifecycle) and scheduler:
 *   - PV/PVC: a root PVC goes to the leaf with the pod that uses it; the leaf's PV controller binds it
 *     to a static PV we create there; that PV comes up to the root pre-bound to the root PVC, and the
 *     root's PV controller binds the root pair. Deletions both ways; a missing PVC is an Event;
 *   - the kubelet API authorizes with SubjectAccessReviews: a certificate without RBAC gets 403, the
 *     root API server's kubelet client gets logs and exec;
 *   - the opt-in NotReady mode: the leaf's API server stopped, the virtual node keeps its Lease and
 *     turns Ready=False (not Unknown), the root's not-ready taint evicts its pods; recovery.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { request as httpsRequest, type Server } from "node:https";
import { connect } from "node:tls";
import {
  type PodObject,
  type PvcObject,
  type PvObject,
  type RunningClusterTree,
  startClusterTree,
  startKubeletServer,
  webhookAuthorizer,
} from "../../internal/clustertree/index.ts";
import type { NodeObject } from "../../internal/clustertree/types.ts";
import { assetsProblem, freePort, issueCert } from "../../internal/controlplane/index.ts";
import type { KubeClient, KubeObject } from "../../internal/kube/index.ts";
import { createLogger, silentLogger } from "../../internal/observability/index.ts";
import { type KubeletStandIn, startKubeletStandIn } from "../helpers/kubelet-standin.ts";
import { clusterObject, startRecordingLeafKubelet, startTreeLab, type TreeLab } from "../helpers/tree-lab.ts";
import { until } from "../helpers/wait.ts";

const problem = assetsProblem();
if (problem) console.warn(`SKIPPED: ClusterTree storage against real control planes: ${problem}`);
const T = 180_000;
const CLUSTERS = "/apis/kosmos.io/v1alpha1/clusters";
const NS = "vol";
const PVCS = `/api/v1/namespaces/${NS}/persistentvolumeclaims`;
const PVS = "/api/v1/persistentvolumes";
const PODS = `/api/v1/namespaces/${NS}/pods`;

let lab: TreeLab | undefined;
let tree: RunningClusterTree | undefined;
let root: KubeClient;
let leaf: KubeClient;
let kubeletPort = 0;
let kubelet: { stop(): Promise<void> } | undefined;
let fakeLeafKubelet: Server | undefined;
let rootKubelet: KubeletStandIn | undefined;
let leafKubeletSaw: string[] = [];
const tag = process.pid.toString(36);
const pvData = `pv-data-${tag}`;
const pvLogs = `pv-logs-${tag}`;

/** CT_SHOW=1 prints what the docs quote (docs/clustertree.md). */
const show = (label: string, v: unknown): void => {
  if (process.env.CT_SHOW)
    console.log(`### ${label}\n${typeof v === "string" ? v : JSON.stringify(v, null, 1)}`);
};
const maybe = async <X>(p: Promise<X>): Promise<X | undefined> => p.catch(() => undefined);
const events = async (pod: string) =>
  (
    await root.list<KubeObject & { reason: string; message: string; involvedObject: { name: string } }>(
      `/api/v1/namespaces/${NS}/events`,
    )
  ).items.filter((e) => e.involvedObject.name === pod);

/** data asks 1Gi, logs 3Gi: the leaf's binder (smallest fit) can bind each to one PV only. */
function claim(name: string): unknown {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name, labels: { app: "db" } },
    spec: {
      accessModes: ["ReadWriteOnce"],
      storageClassName: "",
      resources: { requests: { storage: name === "logs" ? "3Gi" : "1Gi" } },
    },
  };
}

/** A static PV in the leaf, on leaf node l1-a (a local-style node affinity). */
function leafVolume(name: string, size: string): unknown {
  return {
    apiVersion: "v1",
    kind: "PersistentVolume",
    metadata: { name },
    spec: {
      capacity: { storage: size },
      accessModes: ["ReadWriteOnce"],
      storageClassName: "",
      persistentVolumeReclaimPolicy: "Retain",
      hostPath: { path: `/tmp/${name}` },
      nodeAffinity: {
        required: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: ["l1-a"] }] },
          ],
        },
      },
    },
  };
}

function pod(name: string, claims: string[], nodeName?: string): unknown {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels: { app: "db" } },
    spec: {
      ...(nodeName ? { nodeName } : {}),
      tolerations: [{ key: "kosmos.io/node", operator: "Exists", effect: "NoSchedule" }],
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: "db",
          image: "postgres:16",
          volumeMounts: claims.map((c) => ({ name: c, mountPath: `/${c}` })),
        },
      ],
      volumes: claims.map((c) => ({ name: c, persistentVolumeClaim: { claimName: c } })),
    },
  };
}

const start = (notReady?: { notReadyAfterMs: number; recoverAfterMs: number }) =>
  startClusterTree({
    kubeconfig: lab!.root.kubeconfig(),
    leaderElection: false,
    nodeAddress: "127.0.0.1",
    kubeletPort,
    heartbeatMs: notReady ? 1_000 : 2_000,
    minBackoffMs: 100,
    maxBackoffMs: 2_000,
    ...(notReady ? { notReady } : {}),
    ...(process.env.CT_LOG
      ? { logger: createLogger({ component: "clustertree", level: process.env.CT_LOG }) }
      : {}),
  });

beforeAll(async () => {
  if (problem) return;
  lab = await startTreeLab([
    [
      { name: "l1-a", ip: "192.168.71.11" },
      { name: "l1-b", ip: "192.168.71.12" },
    ],
  ]);
  root = lab.rootClient;
  leaf = lab.leafClients[0]!;
  await root.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: NS } });
  kubeletPort = await freePort();
  tree = await start();
  await root.create(CLUSTERS, clusterObject("leaf1", lab.leaves[0]!));
  await until(
    async () =>
      (await maybe(root.get<KubeObject>("/api/v1/nodes/kosmos-leaf1")))?.metadata.name === "kosmos-leaf1",
    "virtual node kosmos-leaf1",
    60_000,
    200,
  );
}, T);

afterAll(async () => {
  await tree?.stop().catch(() => undefined);
  await kubelet?.stop().catch(() => undefined);
  await rootKubelet?.stop().catch(() => undefined);
  fakeLeafKubelet?.close();
  await lab?.stop();
}, T);

describe.skipIf(problem !== undefined)("ClusterTree: PV/PVC between a root and a leaf", () => {
  test(
    "a pod's PVCs go to the leaf, the leaf binds them to static PVs, the PVs come up and the root binds",
    async () => {
      for (const c of ["data", "logs"]) await root.create(PVCS, claim(c));
      await leaf.create(PVS, leafVolume(pvData, "2Gi"));
      await leaf.create(PVS, leafVolume(pvLogs, "4Gi"));
      await root.create(PODS, pod("db-0", ["data", "logs"], "kosmos-leaf1"));
      await until(
        async () => (await maybe(root.get<PodObject>(`${PODS}/db-0`)))?.status?.phase === "Running",
        "root pod db-0 Running (its leaf pod ran)",
        90_000,
        250,
      );
      const lp = await leaf.get<PodObject>(`${PODS}/db-0`);
      expect(lp.spec.nodeName).toBe("l1-a"); // the leaf scheduler followed the PV's node affinity
      expect(lp.spec.volumes?.map((v) => v.persistentVolumeClaim?.claimName)).toEqual(["data", "logs"]);
      const rootData = await root.get<PvcObject>(`${PVCS}/data`);
      const copy = await leaf.get<PvcObject>(`${PVCS}/data`);
      expect(copy.metadata.annotations).toMatchObject({
        "kosmos.io/global": "true",
        "kosmos.io/source-uid": rootData.metadata.uid,
      });
      expect(copy.status?.phase).toBe("Bound");
      expect(copy.spec.volumeName).toBe(pvData);
      await until(
        async () => {
          const r = await root.get<PvcObject>(`${PVCS}/data`);
          return r.status?.phase === "Bound" && r.spec.volumeName === pvData;
        },
        "root PVC data Bound to the mirrored PV",
        60_000,
        250,
      );
      const r = await root.get<PvcObject>(`${PVCS}/data`);
      expect(r.status?.capacity).toEqual({ storage: "2Gi" });
      const mirror = await root.get<PvObject>(`${PVS}/${pvData}`);
      expect(mirror.metadata.annotations).toMatchObject({
        "kosmos-io/cluster-owners": "leaf1",
        "kosmos.io/global": "true",
      });
      expect(mirror.spec.claimRef).toMatchObject({ namespace: NS, name: "data", uid: r.metadata.uid });
      expect(mirror.spec.persistentVolumeReclaimPolicy).toBe("Retain");
      expect(mirror.spec.nodeAffinity?.required?.nodeSelectorTerms).toEqual([
        { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: ["kosmos-leaf1"] }] },
      ]);
      expect(mirror.status?.phase).toBe("Bound");
      show("root PVC data", { spec: r.spec, status: r.status });
      show("leaf PVC data (copy)", {
        annotations: copy.metadata.annotations,
        volumeName: copy.spec.volumeName,
        status: copy.status,
      });
      show("root PV mirror", {
        annotations: mirror.metadata.annotations,
        spec: mirror.spec,
        status: mirror.status,
      });
    },
    T,
  );

  test(
    "the root's own scheduler places a second pod of the bound claim on the virtual node (PV affinity rewritten)",
    async () => {
      await root.create(PODS, pod("db-1", ["data"]));
      await until(
        async () => (await root.get<PodObject>(`${PODS}/db-1`)).status?.phase === "Running",
        "db-1 scheduled by the root scheduler and Running",
        90_000,
        250,
      );
      expect((await root.get<PodObject>(`${PODS}/db-1`)).spec.nodeName).toBe("kosmos-leaf1");
      expect((await leaf.get<PodObject>(`${PODS}/db-1`)).spec.nodeName).toBe("l1-a");
    },
    T,
  );

  test(
    "bad input: a pod whose PVC does not exist in the root gets an Event, and nothing is made in the leaf",
    async () => {
      await root.create(PODS, pod("ghost", ["nope"], "kosmos-leaf1"));
      await until(
        async () =>
          (await events("ghost")).some(
            (e) =>
              e.reason === "Waiting" &&
              e.message.includes(`PersistentVolumeClaim ${NS}/nope not found in the root`),
          ),
        "Waiting event naming the missing PVC",
        30_000,
        200,
      );
      expect(await maybe(leaf.get(`${PODS}/ghost`))).toBeUndefined();
      expect(await maybe(leaf.get(`${PVCS}/nope`))).toBeUndefined();
      expect(tree!.ready().ready || !tree!.isLeader()).toBe(true); // still running
      await root.delete(`${PODS}/ghost`, { gracePeriodSeconds: 0 });
    },
    T,
  );

  test(
    "deletions: a root PV mirror deleted deletes the leaf PV; root PVCs deleted delete the leaf copies; a leaf PV deleted deletes its mirror",
    async () => {
      // A user deletes the root mirror of pv-logs: both PVs are Terminating (pv-protection) while bound.
      await root.delete(`${PVS}/${pvLogs}`);
      await until(
        async () =>
          Boolean((await maybe(leaf.get<PvObject>(`${PVS}/${pvLogs}`)))?.metadata.deletionTimestamp),
        "leaf PV pv-logs being deleted",
        30_000,
        200,
      );
      for (const p of ["db-0", "db-1"]) await root.delete(`${PODS}/${p}`);
      for (const c of ["data", "logs"]) await root.delete(`${PVCS}/${c}`);
      await until(
        async () =>
          (await maybe(leaf.get(`${PVCS}/data`))) === undefined &&
          (await maybe(leaf.get(`${PVCS}/logs`))) === undefined,
        "leaf PVC copies gone once the leaf pods are gone",
        90_000,
        250,
      );
      expect((await leaf.list(PODS)).items).toEqual([]);
      await until(
        async () =>
          (await maybe(leaf.get(`${PVS}/${pvLogs}`))) === undefined &&
          (await maybe(root.get(`${PVS}/${pvLogs}`))) === undefined,
        "pv-logs gone on both sides",
        60_000,
        250,
      );
      // pv-data is Retain: Released in the leaf, its mirror Released in the root, both kept.
      await until(
        async () => (await leaf.get<PvObject>(`${PVS}/${pvData}`)).status?.phase === "Released",
        "leaf pv-data Released",
        60_000,
        250,
      );
      expect((await root.get<PvObject>(`${PVS}/${pvData}`)).metadata.deletionTimestamp).toBeUndefined();
      await leaf.delete(`${PVS}/${pvData}`);
      await until(
        async () => (await maybe(root.get(`${PVS}/${pvData}`))) === undefined,
        "root mirror of pv-data gone after the leaf PV",
        60_000,
        250,
      );
    },
    T,
  );
});

/** GET on our kubelet API with a client certificate: [status, body]. */
function kubeletGet(path: string, cert: string, key: string): Promise<[number, string]> {
  return new Promise((resolve, reject) => {
    const r = httpsRequest(
      { host: "127.0.0.1", port: kubeletPort, path, method: "GET", cert, key, rejectUnauthorized: false },
      (res) => {
        let body = "";
        res.on("data", (d: Buffer) => {
          body += d.toString("utf8");
        });
        res.on("end", () => resolve([res.statusCode ?? 0, body]));
      },
    );
    r.on("error", reject);
    r.end();
  });
}

/** A client certificate of the root's CA (the CA our kubelet API verifies against). */
async function clientCert(cn: string): Promise<{ cert: string; key: string }> {
  const c = await issueCert(lab!.root.ca, lab!.root.dir, { name: `client-${cn}`, cn, usage: "client" });
  return { cert: await Bun.file(c.certPath).text(), key: await Bun.file(c.keyPath).text() };
}

/** The first line of the answer to an SPDY exec upgrade sent to the root API server. */
function execThroughRoot(pod: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: lab!.root.port, ca: lab!.root.ca.pem }, () => {
      s.write(
        [
          `POST ${PODS}/${pod}/exec?container=c&command=echo&command=hi&stdout=true HTTP/1.1`,
          "Host: 127.0.0.1",
          `Authorization: Bearer ${lab!.root.adminToken}`,
          "Connection: Upgrade",
          "Upgrade: SPDY/3.1",
          "X-Stream-Protocol-Version: v4.channel.k8s.io",
          "Content-Length: 0",
          "",
          "",
        ].join("\r\n"),
      );
    });
    let buf = "";
    s.on("data", (d: Buffer) => {
      buf += d.toString("utf8");
      if (buf.includes("\r\n")) {
        resolve(buf.split("\r\n")[0]!);
        s.destroy();
      }
    });
    s.on("error", reject);
  });
}

/** The leaf node l1-b gets a tiny HTTPS kubelet (the stand-in runs none): answers logs, accepts exec. */
async function startFakeLeafKubelet(): Promise<void> {
  const k = await startRecordingLeafKubelet(lab!.leaves[0]!, leaf);
  fakeLeafKubelet = k.server;
  leafKubeletSaw = k.saw;
}

describe.skipIf(problem !== undefined)(
  "ClusterTree: the kubelet API authorizes like a Webhook kubelet",
  () => {
    test(
      "a certificate without RBAC gets 403; one with nodes/proxy gets through; the root API server's kubelet client runs logs and exec",
      async () => {
        const serving = await issueCert(lab!.root.ca, lab!.root.dir, {
          name: "clustertree-kubelet",
          cn: "kosmos-clustertree",
          usage: "server",
          hosts: ["127.0.0.1"],
        });
        kubelet = await startKubeletServer({
          cert: await Bun.file(serving.certPath).text(),
          key: await Bun.file(serving.keyPath).text(),
          clientCA: lab!.root.ca.pem,
          host: "127.0.0.1",
          port: kubeletPort,
          leafOfPod: (ns, n) => tree?.leafOfPod(ns, n),
          authorize: webhookAuthorizer(root),
          logger: silentLogger(),
        });
        await startFakeLeafKubelet();
        await root.create(PODS, {
          apiVersion: "v1",
          kind: "Pod",
          metadata: {
            name: "talk",
            annotations: {
              "kosmos.io/cluster-selector": JSON.stringify({
                nodeSelector: { "kubernetes.io/hostname": "l1-b" },
              }),
            },
          },
          spec: { nodeName: "kosmos-leaf1", containers: [{ name: "c", image: "busybox" }] },
        });
        await until(
          async () => (await root.get<PodObject>(`${PODS}/talk`)).status?.phase === "Running",
          "talk Running on l1-b",
          60_000,
          200,
        );
        // the root API server's kubelet client (CN kube-apiserver-kubelet-client, O system:masters)
        const text = await root.request<string>("GET", `${PODS}/talk/log`, {
          query: { container: "c", tailLines: 3 },
        });
        expect(String(text)).toStartWith(`hello from l1-b /containerLogs/${NS}/talk/c?`);
        expect(await execThroughRoot("talk")).toBe("HTTP/1.1 101 Switching Protocols");
        expect(
          leafKubeletSaw.some((u) => u.startsWith(`/exec/${NS}/talk/c?`) && u.includes("command=hi")),
        ).toBe(true);
        // a verified certificate whose user has no RBAC on nodes/proxy
        const nobody = await clientCert("nobody");
        const [st, body] = await kubeletGet(`/containerLogs/${NS}/talk/c`, nobody.cert, nobody.key);
        expect([st, body]).toEqual([
          403,
          "Forbidden (user=nobody, verb=get, resource=nodes, subresource=proxy)",
        ]);
        // the same with a user given nodes/proxy on this node only
        await root.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "ClusterRole",
          metadata: { name: `kubelet-reader-${tag}` },
          rules: [
            { apiGroups: [""], resources: ["nodes/proxy"], resourceNames: ["kosmos-leaf1"], verbs: ["get"] },
          ],
        });
        await root.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "ClusterRoleBinding",
          metadata: { name: `kubelet-reader-${tag}` },
          roleRef: {
            apiGroup: "rbac.authorization.k8s.io",
            kind: "ClusterRole",
            name: `kubelet-reader-${tag}`,
          },
          subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "reader" }],
        });
        const reader = await clientCert("reader");
        await until(
          async () => (await kubeletGet(`/containerLogs/${NS}/talk/c`, reader.cert, reader.key))[0] === 200,
          "reader allowed once its RBAC is in the API server's cache",
          30_000,
          250,
        );
        const [st2, body2] = await kubeletGet(
          `/containerLogs/${NS}/talk/c?tailLines=1`,
          reader.cert,
          reader.key,
        );
        expect(st2).toBe(200);
        expect(body2).toStartWith(`hello from l1-b /containerLogs/${NS}/talk/c?`);
        await root.delete(`${PODS}/talk`, { gracePeriodSeconds: 0 });
        for (const k of ["clusterrolebindings", "clusterroles"])
          await root.delete(`/apis/rbac.authorization.k8s.io/v1/${k}/kubelet-reader-${tag}`);
      },
      T,
    );
  },
);

const readyOf = (n: NodeObject | undefined) => n?.status?.conditions?.find((c) => c.type === "Ready");
const vnode = () => root.get<NodeObject>("/api/v1/nodes/kosmos-leaf1");
const LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/kosmos-leaf1";

describe.skipIf(problem !== undefined)("ClusterTree: the opt-in NotReady mode", () => {
  test(
    "leaf API server stopped: the Lease is kept, the node turns Ready=False (not Unknown), its pods are evicted; back: Ready",
    async () => {
      await tree!.stop();
      tree = await start({ notReadyAfterMs: 8_000, recoverAfterMs: 1_000 });
      // A Ready node of the root's own beside the virtual one: with the virtual node alone NotReady, its
      // zone would be fully disrupted and the root's node-lifecycle controller would evict nothing.
      rootKubelet = await startKubeletStandIn(root, [{ name: "root-a", ip: "192.168.70.1" }]);
      await until(async () => readyOf(await vnode())?.status === "True", "kosmos-leaf1 Ready", 60_000, 200);
      await root.create(PODS, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "web" },
        spec: {
          nodeName: "kosmos-leaf1",
          terminationGracePeriodSeconds: 1,
          tolerations: [
            { key: "kosmos.io/node", operator: "Exists", effect: "NoSchedule" },
            {
              key: "node.kubernetes.io/not-ready",
              operator: "Exists",
              effect: "NoExecute",
              tolerationSeconds: 1,
            },
          ],
          containers: [{ name: "c", image: "busybox" }],
        },
      });
      await until(
        async () => (await root.get<PodObject>(`${PODS}/web`)).status?.phase === "Running",
        "web Running",
        60_000,
        200,
      );
      const stoppedAt = Date.now();
      await lab!.leaves[0]!.stopApiServer();
      await until(
        async () => readyOf(await vnode())?.reason === "ClusterNotReachable",
        "kosmos-leaf1 Ready=False ClusterNotReachable",
        90_000,
        250,
      );
      const n = await vnode();
      expect(readyOf(n)?.status).toBe("False");
      // the Lease is still renewed, so the root's node-lifecycle controller trusts False: not-ready taint
      await until(
        async () =>
          Date.parse((await root.get<{ spec: { renewTime: string } }>(LEASE)).spec.renewTime) > stoppedAt,
        "Lease renewed after the leaf stopped",
        30_000,
        250,
      );
      await until(
        async () =>
          ((await vnode()).spec?.taints ?? []).some((t) => t.key === "node.kubernetes.io/not-ready"),
        "not-ready taint on kosmos-leaf1",
        60_000,
        250,
      );
      expect(((await vnode()).spec?.taints ?? []).map((t) => t.key)).not.toContain(
        "node.kubernetes.io/unreachable",
      );
      expect(readyOf(await vnode())?.status).toBe("False"); // never Unknown while the Lease lives
      show("NotReady node", {
        ready: readyOf(await vnode()),
        taints: (await vnode()).spec?.taints,
        lease: (await root.get<{ spec: unknown }>(LEASE)).spec,
      });
      const ev = (
        await root.list<KubeObject & { reason: string; involvedObject: { name: string } }>(
          "/api/v1/namespaces/default/events",
        )
      ).items;
      expect(
        ev.some((e) => e.involvedObject.name === "kosmos-leaf1" && e.reason === "NodeStatusSetToNotReady"),
      ).toBe(true);
      await until(
        async () =>
          ((await vnode()).spec?.taints ?? []).some(
            (t) => t.key === "node.kubernetes.io/not-ready" && t.effect === "NoExecute",
          ),
        "not-ready NoExecute taint on kosmos-leaf1",
        60_000,
        250,
      );
      show("NotReady node taints", (await vnode()).spec?.taints);
      // web tolerates not-ready for 1 s: evicted by the root, Terminating while its leaf is unreachable
      await until(
        async () => Boolean((await maybe(root.get<PodObject>(`${PODS}/web`)))?.metadata.deletionTimestamp),
        "web evicted (Terminating)",
        60_000,
        250,
      );
      expect(await maybe(leaf.get(`${PODS}/web`))).toBeUndefined(); // leaf API server down: unreadable
      expect(await maybe(root.get<PodObject>(`${PODS}/web`))).toBeDefined();
      await lab!.leaves[0]!.restartApiServer();
      await until(
        async () => readyOf(await vnode())?.status === "True",
        "kosmos-leaf1 Ready again",
        90_000,
        250,
      );
      await until(
        async () =>
          (await maybe(root.get(`${PODS}/web`))) === undefined &&
          (await maybe(leaf.get(`${PODS}/web`))) === undefined,
        "web gone on both sides once the leaf answers",
        90_000,
        250,
      );
      await until(
        async () =>
          !((await vnode()).spec?.taints ?? []).some((t) => t.key === "node.kubernetes.io/not-ready"),
        "not-ready taint lifted",
        60_000,
        250,
      );
    },
    T,
  );
});
