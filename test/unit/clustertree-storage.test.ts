/** PV/PVC planning of ClusterTree (internal/clustertree/storage.ts): pure functions, no cluster. */
import { describe, expect, test } from "bun:test";
import {
  leafPvc,
  mirrorOwner,
  pvcStatusPatch,
  resizePatch,
  rewriteTerms,
  rootPv,
} from "../../internal/clustertree/storage.ts";
import { nextHealth } from "../../internal/clustertree/health.ts";
import type { PvcObject, PvObject } from "../../internal/clustertree/types.ts";

const claim = (): PvcObject => ({
  apiVersion: "v1",
  kind: "PersistentVolumeClaim",
  metadata: {
    name: "data",
    namespace: "shop",
    uid: "root-uid",
    resourceVersion: "7",
    labels: { app: "db" },
    annotations: {
      note: "x",
      "pv.kubernetes.io/bind-completed": "yes",
      "volume.kubernetes.io/selected-node": "kosmos-leaf1",
      "volume.beta.kubernetes.io/storage-provisioner": "p",
    },
    finalizers: ["kubernetes.io/pvc-protection"],
  },
  spec: {
    accessModes: ["ReadWriteOnce"],
    resources: { requests: { storage: "1Gi" } },
    storageClassName: "",
    volumeName: "root-pv",
  },
  status: { phase: "Pending" },
});

const leafVolume = (): PvObject => ({
  apiVersion: "v1",
  kind: "PersistentVolume",
  metadata: {
    name: "pv-a",
    uid: "leaf-pv-uid",
    annotations: { "pv.kubernetes.io/bound-by-controller": "yes" },
  },
  spec: {
    capacity: { storage: "2Gi" },
    hostPath: { path: "/data" },
    persistentVolumeReclaimPolicy: "Delete",
    claimRef: { kind: "PersistentVolumeClaim", namespace: "shop", name: "data", uid: "leaf-copy-uid" },
    nodeAffinity: {
      required: {
        nodeSelectorTerms: [
          {
            matchExpressions: [
              { key: "kubernetes.io/hostname", operator: "In", values: ["l1-a", "l1-b"] },
              { key: "zone", operator: "In", values: ["l1-a"] },
            ],
          },
        ],
      },
    },
  },
});

describe("ClusterTree storage planning", () => {
  test("the leaf copy of a PVC: spec without the binding, marked, without the root's binding annotations", () => {
    const c = leafPvc(claim());
    expect(c.ok).toBe(true);
    if (!c.ok) return;
    expect(c.pvc.metadata).toEqual({
      name: "data",
      namespace: "shop",
      labels: { app: "db", "kosmos.io/synced": "true" },
      annotations: { note: "x", "kosmos.io/global": "true", "kosmos.io/source-uid": "root-uid" },
    });
    expect(c.pvc.spec).toEqual({
      accessModes: ["ReadWriteOnce"],
      resources: { requests: { storage: "1Gi" } },
      storageClassName: "",
    });
    expect(c.pvc.status).toBeUndefined();
  });

  test("a PVC populated from a data source is refused, naming the field", () => {
    const r = claim();
    r.spec.dataSource = { kind: "VolumeSnapshot", name: "snap" };
    const c = leafPvc(r);
    expect(!c.ok && c.field).toBe("spec.dataSource");
    expect(!c.ok && c.message).toContain("VolumeSnapshot snap");
  });

  test("the root mirror of a leaf PV: pre-bound to the root claim, Retain, hostnames → virtual node", () => {
    const pv = rootPv(leafVolume(), claim(), "leaf1", (n) =>
      n.startsWith("l1-") ? "kosmos-leaf1" : undefined,
    );
    expect(pv.spec.claimRef).toEqual({
      kind: "PersistentVolumeClaim",
      apiVersion: "v1",
      namespace: "shop",
      name: "data",
      uid: "root-uid",
    });
    expect(pv.spec.persistentVolumeReclaimPolicy).toBe("Retain");
    expect(pv.spec.nodeAffinity!.required!.nodeSelectorTerms[0]!.matchExpressions).toEqual([
      { key: "kubernetes.io/hostname", operator: "In", values: ["kosmos-leaf1"] },
      { key: "zone", operator: "In", values: ["l1-a"] }, // not a hostname key: kept
    ]);
    expect(pv.metadata.annotations).toEqual({
      "kosmos.io/global": "true",
      "kosmos-io/cluster-owners": "leaf1",
      "kosmos.io/source-uid": "leaf-pv-uid",
    });
    expect(mirrorOwner(pv)).toBe("leaf1");
    expect(
      mirrorOwner({ ...pv, metadata: { name: "x", annotations: pv.metadata.annotations } }),
    ).toBeUndefined();
    expect(leafVolume().spec.persistentVolumeReclaimPolicy).toBe("Delete"); // input untouched
  });

  test("node names with no virtual node are kept", () => {
    const t = rewriteTerms(
      [{ matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: ["x"] }] }],
      () => undefined,
    );
    expect(t[0]!.matchExpressions![0]!.values).toEqual(["x"]);
  });

  test("status up only between bound claims, without the phase; resize down", () => {
    const root = claim();
    const leaf = claim();
    leaf.status = { phase: "Bound", capacity: { storage: "2Gi" }, conditions: [{ type: "Resizing" }] };
    expect(pvcStatusPatch(leaf, root)).toBeUndefined(); // root not bound yet: its PV controller binds first
    root.status = { phase: "Bound", capacity: { storage: "2Gi" } };
    expect(pvcStatusPatch(leaf, root)).toEqual({ conditions: [{ type: "Resizing" }] });
    root.status.conditions = [{ type: "Resizing" }];
    expect(pvcStatusPatch(leaf, root)).toBeUndefined();
    expect(resizePatch(root, leaf)).toBeUndefined();
    root.spec.resources = { requests: { storage: "3Gi" } };
    expect(resizePatch(root, leaf)).toEqual({ spec: { resources: { requests: { storage: "3Gi" } } } });
  });
});

describe("ClusterTree opt-in NotReady hysteresis", () => {
  const th = { notReadyAfterMs: 30_000, recoverAfterMs: 5_000 };
  test("NotReady only after the leaf failed for the threshold; Ready after it answered for the recovery time", () => {
    let h = nextHealth(undefined, true, 0, th);
    expect(h).toEqual({ health: { notReady: false, since: 0, answering: true }, changed: false });
    h = nextHealth(h.health, false, 1_000, th);
    expect(h.changed).toBe(false);
    h = nextHealth(h.health, false, 30_999, th);
    expect(h.health.notReady).toBe(false);
    h = nextHealth(h.health, false, 31_000, th);
    expect(h).toEqual({ health: { notReady: true, since: 1_000, answering: false }, changed: true });
    h = nextHealth(h.health, true, 40_000, th); // answers again: not yet
    expect(h.health.notReady).toBe(true);
    h = nextHealth(h.health, false, 42_000, th); // a blip resets the recovery clock
    h = nextHealth(h.health, true, 43_000, th);
    h = nextHealth(h.health, true, 47_999, th);
    expect(h.health.notReady).toBe(true);
    h = nextHealth(h.health, true, 48_000, th);
    expect(h).toEqual({ health: { notReady: false, since: 43_000, answering: true }, changed: true });
  });
  test("a leaf down from the start turns NotReady after the threshold too", () => {
    const h = nextHealth(undefined, false, 0, th);
    expect(h.health.notReady).toBe(false);
    expect(nextHealth(h.health, false, 30_000, th).changed).toBe(true);
  });
});
