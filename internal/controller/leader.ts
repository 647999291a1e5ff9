/** Leader election with a coordination.k8s.io/v1 Lease (client-go semantics: acquire when free or expired). */
import { CoordinationV1Api, type KubeConfig, type V1Lease } from "@kubernetes/client-node";
import { errorCode } from "../kube/index.ts";
import type { Logger } from "../observability/index.ts";

export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  logger: Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  now?: () => Date;
}

export interface LeaderElector {
  isLeader(): boolean;
  stop(): Promise<void>;
}

/** Try to acquire or renew once. Returns whether we hold the lease afterwards. Exported for tests. */
export async function tryAcquireOrRenew(
  api: CoordinationV1Api,
  o: { namespace: string; name: string; identity: string; leaseDurationSeconds: number; now: Date },
): Promise<boolean> {
  const spec = {
    holderIdentity: o.identity,
    leaseDurationSeconds: o.leaseDurationSeconds,
    renewTime: o.now,
  };
  let lease: V1Lease;
  try {
    lease = await api.readNamespacedLease({ name: o.name, namespace: o.namespace });
  } catch (e) {
    if (errorCode(e) !== 404) throw e;
    try {
      await api.createNamespacedLease({
        namespace: o.namespace,
        body: { metadata: { name: o.name }, spec: { ...spec, acquireTime: o.now, leaseTransitions: 0 } },
      });
      return true;
    } catch (e2) {
      if (errorCode(e2) === 409) return false;
      throw e2;
    }
  }
  const holder = lease.spec?.holderIdentity;
  const renew = lease.spec?.renewTime ? new Date(lease.spec.renewTime).getTime() : 0;
  const duration = (lease.spec?.leaseDurationSeconds ?? o.leaseDurationSeconds) * 1000;
  const expired = renew + duration < o.now.getTime();
  if (holder && holder !== o.identity && !expired) return false;
  const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === o.identity ? 0 : 1);
  try {
    await api.replaceNamespacedLease({
      name: o.name,
      namespace: o.namespace,
      body: {
        ...lease,
        spec: {
          ...lease.spec,
          ...spec,
          leaseTransitions: transitions,
          ...(holder === o.identity ? {} : { acquireTime: o.now }),
        },
      },
    });
    return true;
  } catch (e) {
    if (errorCode(e) === 409) return false; // someone else renewed first
    throw e;
  }
}

export function startLeaderElection(o: LeaderElectionOptions): LeaderElector {
  const api = o.kubeConfig.makeApiClient(CoordinationV1Api);
  const duration = o.leaseDurationSeconds ?? 15;
  let leader = false;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = async (): Promise<void> => {
    let ok = false;
    try {
      ok = await tryAcquireOrRenew(api, {
        namespace: o.namespace,
        name: o.name,
        identity: o.identity,
        leaseDurationSeconds: duration,
        now: (o.now ?? (() => new Date()))(),
      });
    } catch (e) {
      o.logger.warn({ err: (e as Error).message }, "lease renewal failed");
    }
    if (stopped) return;
    if (ok && !leader) {
      leader = true;
      o.logger.info({ identity: o.identity }, "became leader");
      o.onStartedLeading();
    } else if (!ok && leader) {
      leader = false;
      o.logger.warn({ identity: o.identity }, "lost leadership");
      o.onStoppedLeading();
    }
    // Renew at a third of the lease; candidates retry at the same pace.
    timer = setTimeout(tick, (duration * 1000) / 3);
  };
  void tick();
  return {
    isLeader: () => leader,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (leader) {
        leader = false;
        o.onStoppedLeading();
        // Release: let another replica take over at once.
        try {
          const lease = await api.readNamespacedLease({ name: o.name, namespace: o.namespace });
          if (lease.spec?.holderIdentity === o.identity) {
            await api.replaceNamespacedLease({
              name: o.name,
              namespace: o.namespace,
              body: { ...lease, spec: { ...lease.spec, holderIdentity: undefined, renewTime: new Date(0) } },
            });
          }
        } catch {
          /* best effort */
        }
      }
    },
  };
}
