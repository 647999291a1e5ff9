/**
 * Leader election with a coordination.k8s.io/v1 Lease, with client-go's semantics and defaults: a
 * candidate takes the Lease when it is free or its holder has not renewed for `leaseDurationSeconds`
 * (15 s); the leader renews every `retryPeriodMs` (2 s) and steps down when it could not renew for
 * `renewDeadlineMs` (10 s), so two leaders never overlap while clocks agree. Times are written as
 * MicroTime: RFC 3339 with exactly six fractional digits, the only form the API server accepts.
 */
import type { Logger } from "../observability/index.ts";
import { errorStatus } from "./errors.ts";
import type { KubeClient, KubeObject } from "./rest.ts";

/** A Kubernetes MicroTime: `2026-12-02T09:54:23.362000Z`. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

type Lease = KubeObject & { spec?: LeaseSpec };

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  logger: Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  now?: () => Date;
}

export interface LeaderElector {
  isLeader(): boolean;
  /** The election loop talks to the API server (it holds the Lease or sees a live holder). */
  healthy(): boolean;
  /** Identity of the current holder as last seen. */
  holder(): string | undefined;
  stop(): Promise<void>;
}

const leasePath = (ns: string, name?: string): string =>
  `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases${name ? `/${name}` : ""}`;

/**
 * One attempt: take or renew the Lease. Returns whether we hold it afterwards and who does. Throws on
 * API errors other than a lost race (404 on create → retry, 409 → someone else wrote first).
 */
export async function tryAcquireOrRenew(
  client: KubeClient,
  o: { namespace: string; name: string; identity: string; leaseDurationSeconds: number; now: Date },
): Promise<{ held: boolean; holder?: string }> {
  const now = microTime(o.now);
  let lease: Lease;
  try {
    lease = await client.get<Lease>(leasePath(o.namespace, o.name));
  } catch (e) {
    if (errorStatus(e) !== 404) throw e;
    const spec: LeaseSpec = {
      holderIdentity: o.identity,
      leaseDurationSeconds: o.leaseDurationSeconds,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: 0,
    };
    try {
      await client.create(leasePath(o.namespace), {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: o.name, namespace: o.namespace },
        spec,
      });
      return { held: true, holder: o.identity };
    } catch (e2) {
      if (errorStatus(e2) === 409) return { held: false };
      throw e2;
    }
  }
  const s = lease.spec ?? {};
  const holder = s.holderIdentity || undefined;
  const renewed = s.renewTime ? Date.parse(s.renewTime) : 0;
  const duration = (s.leaseDurationSeconds ?? o.leaseDurationSeconds) * 1000;
  if (holder && holder !== o.identity && renewed + duration > o.now.getTime()) return { held: false, holder };
  const mine = holder === o.identity;
  const spec: LeaseSpec = {
    ...s,
    holderIdentity: o.identity,
    leaseDurationSeconds: o.leaseDurationSeconds,
    renewTime: now,
    acquireTime: mine ? (s.acquireTime ?? now) : now,
    leaseTransitions: (s.leaseTransitions ?? 0) + (mine || !holder ? 0 : 1),
  };
  try {
    await client.replace(leasePath(o.namespace, o.name), { ...lease, spec });
    return { held: true, holder: o.identity };
  } catch (e) {
    if (errorStatus(e) === 409) return { held: false, holder }; // someone else wrote first
    throw e;
  }
}

export function startLeaderElection(o: LeaderElectionOptions): LeaderElector {
  const duration = o.leaseDurationSeconds ?? 15;
  const renewDeadline = o.renewDeadlineMs ?? 10_000;
  const retry = o.retryPeriodMs ?? 2_000;
  const now = o.now ?? (() => new Date());
  let leader = false;
  let stopped = false;
  let lastRenew = 0;
  let lastContact = 0;
  let holder: string | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let lastErr: string | undefined;
  let current: Promise<void> = Promise.resolve();

  const tick = async (): Promise<void> => {
    let held = false;
    let lostRace = false;
    try {
      const r = await tryAcquireOrRenew(o.client, {
        namespace: o.namespace,
        name: o.name,
        identity: o.identity,
        leaseDurationSeconds: duration,
        now: now(),
      });
      held = r.held;
      lostRace = !r.held;
      holder = r.holder;
      lastContact = Date.now();
      lastErr = undefined;
      if (held) lastRenew = Date.now();
    } catch (e) {
      const msg = (e as Error).message;
      if (msg !== lastErr) o.logger.warn({ lease: o.name, err: msg }, "lease acquire/renew failed");
      lastErr = msg;
    }
    if (stopped) return;
    if (held && !leader) {
      leader = true;
      o.logger.info({ identity: o.identity, lease: `${o.namespace}/${o.name}` }, "became leader");
      o.onStartedLeading();
    } else if (leader && !held && (lostRace || Date.now() - lastRenew >= renewDeadline)) {
      // Another holder wrote the Lease, or we could not renew within the deadline: step down.
      leader = false;
      o.logger.warn({ identity: o.identity, holder }, "lost leadership");
      o.onStoppedLeading();
    }
    timer = setTimeout(() => {
      current = tick();
    }, retry);
  };
  current = tick();

  return {
    isLeader: () => leader,
    healthy: () => Date.now() - lastContact < Math.max(renewDeadline, retry * 3),
    holder: () => holder,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await current;
      if (!leader) return;
      leader = false;
      o.onStoppedLeading();
      // Release (client-go's ReleaseOnCancel): another replica takes over at once, not after 15 s.
      try {
        const lease = await o.client.get<Lease>(leasePath(o.namespace, o.name));
        if (lease.spec?.holderIdentity === o.identity) {
          await o.client.replace(leasePath(o.namespace, o.name), {
            ...lease,
            spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: microTime(now()) },
          });
        }
      } catch (e) {
        o.logger.warn({ err: (e as Error).message }, "could not release the lease");
      }
    },
  };
}
