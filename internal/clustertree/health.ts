/**
 * The opt-in NotReady mode (upstream `--Update-RootNode-Status-Notready`, clustertree.md §1.8), the
 * pure part: a leaf's virtual nodes say Ready=False only once the leaf has failed the probe for
 * `notReadyAfterMs` (upstream: 30 min), and Ready=True again once it has answered for `recoverAfterMs`
 * (upstream: 5 s). Meanwhile clustertree keeps renewing the nodes' Leases — it is their kubelet and it
 * is alive — so the root's node-lifecycle controller trusts what is written instead of turning the
 * nodes Unknown after 40 s (upstream stops the Lease at once: quirk 6 of §1.8, fixed).
 */
export interface HealthThresholds {
  notReadyAfterMs: number;
  recoverAfterMs: number;
}

export interface LeafHealth {
  /** The virtual nodes say Ready=False (ClusterNotReachable). */
  notReady: boolean;
  /** Since when the probe result has been what it is now (ms epoch), and what it is. */
  since: number;
  answering: boolean;
}

export const DEFAULT_THRESHOLDS: HealthThresholds = { notReadyAfterMs: 30 * 60_000, recoverAfterMs: 5_000 };

/** The next state after one probe; `changed` says the nodes' Ready must be written. */
export function nextHealth(
  prev: LeafHealth | undefined,
  answering: boolean,
  now: number,
  th: HealthThresholds,
): { health: LeafHealth; changed: boolean } {
  const since = prev && prev.answering === answering ? prev.since : now;
  const was = prev?.notReady ?? false;
  let notReady = was;
  if (!answering && !was && now - since >= th.notReadyAfterMs) notReady = true;
  if (answering && was && now - since >= th.recoverAfterMs) notReady = false;
  return { health: { notReady, since, answering }, changed: notReady !== was };
}
