/**
 * The per-leaf connection registry: what a leaf's informers queue (handlers), the heartbeat (GET
 * /version, then a Lease per virtual node — what a kubelet does), and connecting / disconnecting.
 */

import type { KubeClient } from "../kube/index.ts";
import { objectKey } from "../kube/index.ts";
import { nodeEvent } from "./events.ts";
import { DEFAULT_THRESHOLDS, nextHealth } from "./health.ts";
import { Leaf, type LeafHandlers } from "./leaf.ts";
import { markNotReady, ownedBy, renewLease } from "./nodes.ts";
import { enqueueCopiesOf, type Tree } from "./tree.ts";
import {
  type DataObject,
  type LeafCopyKind,
  POD_LABEL,
  type PodObject,
  ROOT_UID_ANNOTATION,
} from "./types.ts";
import { leafVolumeKeys } from "./volumes.ts";

/** A leaf pod changed: Kosmos' own pods go to the pod queue; others change the leaf's free capacity. */
function onLeafPod(
  t: Tree,
  cluster: string,
  p: PodObject,
  old: PodObject | undefined,
  deleted: boolean,
): void {
  const key = objectKey(p);
  if (p.metadata.labels?.[POD_LABEL] === "true") {
    if (deleted) {
      const r = t.inf.pods.get(p.metadata.name, p.metadata.namespace);
      if (
        r &&
        !r.metadata.deletionTimestamp &&
        r.metadata.uid === p.metadata.annotations?.[ROOT_UID_ANNOTATION]
      )
        t.leafGone.set(key, r.metadata.uid!);
      enqueueCopiesOf(t, cluster, p.metadata.namespace);
    }
    t.q.enqueuePod(key);
    return;
  }
  // A pod Kosmos did not make changes the leaf's free capacity when it runs, moves or goes.
  const shape = (x: PodObject | undefined): string => JSON.stringify([x?.spec?.nodeName, x?.status?.phase]);
  if (deleted || !old || shape(p) !== shape(old)) t.q.clusters.addAfter(cluster, 500);
}

function leafHandlers(t: Tree): LeafHandlers {
  return {
    onNodes: (c: string) => t.q.clusters.add(c),
    onPod: (c, p, old, deleted) => onLeafPod(t, c, p, old, deleted),
    onCopy: (c: string, kind: LeafCopyKind, obj: DataObject) =>
      t.q.copies.add(`${c}/${kind}/${obj.metadata.namespace}/${obj.metadata.name}`),
    onHealth: (c: string) => t.q.clusters.add(c),
    onVolume: (c, kind, obj) => {
      for (const k of leafVolumeKeys(c, kind, obj)) t.q.volumes.add(k);
    },
  };
}

async function probe(leaf: Leaf): Promise<boolean> {
  try {
    const v = await leaf.client.request<{ gitVersion?: string }>("GET", "/version", { timeoutMs: 5_000 });
    leaf.kubeletVersion = v.gitVersion ?? leaf.kubeletVersion;
    leaf.lastProbeError = undefined;
    return true;
  } catch (e) {
    leaf.lastProbeError = `the leaf API server does not answer: ${(e as Error).message}`;
    return false;
  }
}

/** Opt-in NotReady mode: move the leaf's health on; write Ready=False, or queue the Ready=True write. */
async function updateHealth(t: Tree, leaf: Leaf): Promise<void> {
  if (!t.o.notReady) return;
  const th = { ...DEFAULT_THRESHOLDS, ...t.o.notReady };
  const { health, changed } = nextHealth(leaf.health, leaf.answering, Date.now(), th);
  leaf.health = health;
  if (!changed) return;
  t.log.info({ cluster: leaf.name, notReady: health.notReady }, "leaf health changed");
  if (!health.notReady || !t.leader) {
    t.q.clusters.add(leaf.name); // applyNode writes the healthy conditions
    return;
  }
  const message = `leaf cluster ${leaf.name} has not answered for ${Math.round((Date.now() - health.since) / 1000)} s: ${leaf.lastProbeError ?? ""}`;
  for (const d of t.plans.get(leaf.name)?.nodes ?? []) {
    const n = t.inf.vnodes.get(d.name);
    if (!n || ownedBy(n) !== leaf.name) continue;
    await markNotReady(t.root, d.name, message);
    await nodeEvent(
      t.root,
      t.log,
      { name: d.name, uid: n.metadata.uid },
      "Warning",
      "NodeStatusSetToNotReady",
      message,
    );
  }
}

/**
 * Probe a leaf; while this process leads, renew its virtual nodes' Leases — while the leaf answers,
 * or always in the opt-in NotReady mode (then the nodes' Ready condition says what is known).
 */
export async function heartbeat(t: Tree, leaf: Leaf): Promise<void> {
  const was = leaf.answering;
  leaf.answering = await probe(leaf);
  if (was !== leaf.answering) {
    t.log.info(
      { cluster: leaf.name, answering: leaf.answering, err: leaf.lastProbeError },
      "leaf heartbeat changed",
    );
    t.q.clusters.add(leaf.name);
  }
  await updateHealth(t, leaf).catch((e) =>
    t.log.warn({ cluster: leaf.name, err: (e as Error).message }, "could not write the nodes' Ready"),
  );
  if (!t.leader || (!leaf.answering && !t.o.notReady)) return; // the root's node-lifecycle controller takes over
  for (const d of t.plans.get(leaf.name)?.nodes ?? []) {
    const n = t.inf.vnodes.get(d.name);
    if (n && ownedBy(n) === leaf.name)
      await renewLease(t.root, n).catch((e) =>
        t.log.warn({ node: d.name, err: (e as Error).message }, "lease renewal failed"),
      );
  }
}

/** The one timer: every `periodMs`, a heartbeat to all leaves (skipped while the last still runs). */
export function startHeartbeat(t: Tree, periodMs: number): ReturnType<typeof setInterval> {
  let beating = false;
  return setInterval(() => {
    if (beating) return;
    beating = true;
    void Promise.all([...t.leaves.values()].map((l) => heartbeat(t, l))).finally(() => {
      beating = false;
    });
  }, periodMs);
}

export async function stopLeaf(t: Tree, name: string): Promise<void> {
  const l = t.leaves.get(name);
  t.leaves.delete(name);
  await l?.stop();
}

/** Start a connection to a leaf (replacing none: the caller stopped the old one). */
export function connectLeaf(t: Tree, name: string, yaml: string, client: KubeClient): Leaf {
  const leaf = new Leaf(name, yaml, client, leafHandlers(t), { logger: t.log, ...t.backoff });
  t.leaves.set(name, leaf);
  leaf.start();
  t.log.info({ cluster: name, server: client.server.origin }, "connecting to leaf");
  void heartbeat(t, leaf);
  return leaf;
}
