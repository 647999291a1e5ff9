/**
 * Lifeguard's suspicion timer (memberlist suspicion.go). A suspicion starts at the maximum timeout
 * and shrinks towards the minimum as independent confirmations (suspicions of the same incarnation
 * from other members) arrive. The timeout arithmetic is pure; the Suspicion object only keeps the
 * confirmations and the expiry timer the node arms for it.
 */
import type { GossipConfig } from "./config.ts";
import type { Cancel } from "./ports.ts";

type SuspicionConfig = Pick<
  GossipConfig,
  "suspicionMult" | "suspicionMaxMult" | "suspicionK" | "probeIntervalMs" | "lifeguard"
>;

/** Confirmations that bring the timeout to its minimum: k, capped by the members that could confirm (n minus us and the suspect). */
export function confirmationsWanted(cfg: SuspicionConfig, clusterSize: number): number {
  return Math.min(cfg.suspicionK, clusterSize - 2);
}

/**
 * The suspicion timeout after `confirmations` independent confirmations, in a cluster of
 * `clusterSize` (live members and us). min = suspicionMult·max(1, log10 n)·probe interval, max =
 * suspicionMaxMult·min; timeout = max − (max − min)·log(c + 1)/log(k + 1), at least min. Without
 * Lifeguard (or with no member that could confirm): a fixed timeout, the minimum (classic SWIM).
 */
export function suspicionTimeout(cfg: SuspicionConfig, clusterSize: number, confirmations: number): number {
  const min = cfg.suspicionMult * Math.max(1, Math.log10(clusterSize)) * cfg.probeIntervalMs;
  const max = min * cfg.suspicionMaxMult;
  const k = confirmationsWanted(cfg, clusterSize);
  if (!cfg.lifeguard || k < 1 || max <= min) return min;
  const frac = Math.log(confirmations + 1) / Math.log(k + 1);
  return Math.max(min, max - (max - min) * frac);
}

/**
 * How likely a member that learns of someone else's suspicion probes the suspect itself at its next
 * tick: ~2k/n, so that about 2k members check it within a probe interval (a dead member collects its
 * k confirmations quickly; a live one acks). 0 when no member could confirm.
 */
export function reprobeProbability(cfg: SuspicionConfig, clusterSize: number): number {
  const k = confirmationsWanted(cfg, clusterSize);
  const others = Math.max(1, clusterSize - 2);
  return k >= 1 ? Math.min(1, (2 * k) / others) : 0;
}

/** One suspicion of one member: who asserted it, since when, and its expiry timer. */
export class Suspicion {
  private readonly confirmations = new Set<string>();
  private timer: Cancel = () => {};

  /** `from`: the first suspecter (not counted as an independent confirmation). */
  constructor(
    readonly start: number,
    from: string | undefined,
  ) {
    if (from) this.confirmations.add(from);
  }

  /** Record a suspicion of the same incarnation by `from`; true when `from` is new. */
  confirm(from: string): boolean {
    if (this.confirmations.has(from)) return false;
    this.confirmations.add(from);
    return true;
  }

  /** Confirmations by members other than the first suspecter. */
  get independentConfirmations(): number {
    return Math.max(0, this.confirmations.size - 1);
  }

  /** Replace the expiry timer: the running one is cancelled, `setTimer` starts the next. */
  rearm(setTimer: () => Cancel): void {
    this.timer();
    this.timer = setTimer();
  }

  cancel(): void {
    this.timer();
  }
}
