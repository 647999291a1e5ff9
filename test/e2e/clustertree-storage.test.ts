/**
 * ClusterTree PV/PVC sync against real control planes: a root and one leaf, each with its real
 * kube-controller-manager (PV binder, pvc/pv-protection) and scheduler. A root PVC goes to the leaf
 * with the pod that uses it; the leaf's PV controller binds it to a static PV we create there; that PV
 * comes up to the root pre-bound to the root PVC, and the root's PV controller binds the root pair.
 * Deletions both ways; a pod whose PVC does not exist gets an Event.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  type PodObject,
  type PvcObject,
  type PvObject,
  type RunningClusterTree,
  startClusterTree,
} from "../../internal/clustertree/index.ts";
import { assetsProblem } from "../../internal/controlplane/index.ts";
import type { KubeClient, KubeObject } from "../../internal/kube/index.ts";
import { createLogger } from "../../internal/observability/index.ts";
import { clusterObject, startTreeLab, type TreeLab } from "../helpers/tree-lab.ts";
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
const tag = process.pid.toString(36);
const pvData = `pv-data-${tag}`;
const pvLogs = `pv-logs-${tag}`;

const maybe = async <X>(p: Promise<X>): Promise<X | undefined> => p.catch(() => undefined);
const events = async (pod: string) =>
  (
    await root.list<KubeObject & { reason: string; message: string; involvedObject: { name: string } }>(
      `/api/v1/namespaces/${NS}/events`,
    )
  ).items.filter((e) => e.involvedObject.name === pod);

function claim(name: string): unknown {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name, labels: { app: "db" } },
    spec: {
      accessModes: ["ReadWriteOnce"],
      storageClassName: "",
      resources: { requests: { storage: "1Gi" } },
    },
  };
}

/** A static PV in the leaf, on leaf node l1-a (a local-style node affinity). */
function leafVolume(name: string): unknown {
  return {
    apiVersion: "v1",
    kind: "PersistentVolume",
    metadata: { name },
    spec: {
      capacity: { storage: "2Gi" },
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
  tree = await startClusterTree({
    kubeconfig: lab.root.kubeconfig(),
    leaderElection: false,
    nodeAddress: "127.0.0.1",
    kubeletPort: 10250,
    heartbeatMs: 2_000,
    minBackoffMs: 100,
    maxBackoffMs: 2_000,
    ...(process.env.CT_LOG
      ? { logger: createLogger({ component: "clustertree", level: process.env.CT_LOG }) }
      : {}),
  });
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
  await lab?.stop();
}, T);

describe.skipIf(problem !== undefined)("ClusterTree: PV/PVC between a root and a leaf", () => {
  test(
    "a pod's PVCs go to the leaf, the leaf binds them to static PVs, the PVs come up and the root binds",
    async () => {
      for (const c of ["data", "logs"]) await root.create(PVCS, claim(c));
      await leaf.create(PVS, leafVolume(pvData));
      await leaf.create(PVS, leafVolume(pvLogs));
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
