/**
 * Leader election on the `kosmos-clustertree` Lease: only the holder works (its queues run), and
 * readiness (root informers synced and watching, the Lease loop healthy).
 */
import { type LeaderElector, startLeaderElection } from "../kube/index.ts";
import { ownedBy } from "./nodes.ts";
import type { Tree } from "./tree.ts";

/** Wait for the root caches, then lead: queue every Cluster (and owners of orphan nodes), resume. */
function lead(t: Tree, elector: () => LeaderElector | undefined): Promise<void> {
  return Promise.all(t.inf.all.map((i) => i.waitSynced())).then(() => {
    const e = elector();
    if (e && !e.isLeader()) return;
    t.leader = true;
    for (const c of t.inf.clusters.list()) t.q.clusters.add(c.metadata.name);
    // virtual nodes of Clusters deleted while no clustertree ran
    for (const n of t.inf.vnodes.list()) {
      const c = ownedBy(n);
      if (c && !t.inf.clusters.get(c)) t.q.clusters.add(c);
    }
    for (const q of t.q.all) q.resume();
  });
}

/** Lead right away (leader election off), or take part in the Lease; the elector, if any. */
export function startTreeElection(t: Tree): LeaderElector | undefined {
  const o = t.o;
  if (o.leaderElection === false) {
    void lead(t, () => undefined);
    return undefined;
  }
  const elector: LeaderElector = startLeaderElection({
    client: t.root,
    namespace: t.namespace,
    name: "kosmos-clustertree",
    identity: o.identity ?? `${process.env.HOSTNAME ?? "clustertree"}-${crypto.randomUUID().slice(0, 8)}`,
    leaseDurationSeconds: o.leaseDurationSeconds,
    renewDeadlineMs: o.renewDeadlineMs,
    retryPeriodMs: o.retryPeriodMs,
    logger: t.log,
    onStartedLeading: () => void lead(t, () => elector),
    onStoppedLeading: () => {
      t.leader = false;
      for (const q of t.q.all) q.pause();
    },
  });
  return elector;
}

/** RunningClusterTree.ready: root caches synced and watching, and the Lease loop healthy. */
export function readiness(t: Tree, elector: LeaderElector | undefined): { ready: boolean; reason: string } {
  const notSynced = t.inf.all.find((i) => !i.hasSynced());
  if (notSynced)
    return {
      ready: false,
      reason: `informer ${notSynced.o.name} not synced: ${notSynced.lastError ?? "listing"}`,
    };
  const failing = t.inf.all.find((i) => i.health() === "failing");
  if (failing) return { ready: false, reason: `cannot watch ${failing.o.name}: ${failing.lastError}` };
  if (elector && !elector.healthy()) return { ready: false, reason: "the Lease cannot be read or written" };
  return { ready: true, reason: t.leader ? "leader" : `standby (leader: ${elector?.holder() ?? "?"})` };
}
