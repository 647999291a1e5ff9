/**
 * The sweep of unconfirmed members (known from the replica, never heard from). Until some member is
 * alive, up to unconfirmedPingsPerSec of them are pinged (round robin, spread over the probe ticks)
 * to find one. Once one answered, its member list and the push-pulls that follow confirm the others
 * for free: the sweep holds while they do (a confirmation in the last anti-entropy interval), at
 * most until unconfirmedTimeoutMs, then gives each remaining one unconfirmedPings pings at the same
 * rate, 4 probe intervals apart. Once the timeout has passed, those that stayed silent after their
 * last ping are declared dead — locally, never gossiped (nobody else needs our guess).
 */
import type { GossipConfig } from "./config.ts";
import type { Member } from "./members.ts";
import { type Random, sample } from "./ports.ts";

type SweepConfig = Pick<
  GossipConfig,
  | "unconfirmedTimeoutMs"
  | "unconfirmedPings"
  | "unconfirmedPingsPerSec"
  | "probeIntervalMs"
  | "antiEntropyIntervalMs"
>;

/** What one sweep tick reads from, and does through, its node. */
export interface SweepTick {
  now: number;
  /** When the node started. */
  startedAt: number;
  /** When an unconfirmed member was last confirmed (the sweep holds while this keeps moving). */
  lastConfirm: number;
  liveCount(): number;
  /** The probe interval scaled by the local health (one tick). */
  tickMs: number;
  member(name: string): Member | undefined;
  /** Declare a silent unconfirmed member dead (locally). */
  declareDead(m: Member): void;
  /** Send a direct ping (m.pings and m.lastPing are already counted). */
  ping(m: Member): void;
}

/** Unconfirmed and not declared dead yet. */
const pending = (m: Member | undefined): m is Member => !!m && !m.confirmed && m.state !== "dead";

export class UnconfirmedSweep {
  /** Names in sweep order (lazily pruned: forgotten or confirmed names stay until the cursor wraps). */
  private names: string[] = [];
  private cursor = 0;

  constructor(private readonly cfg: SweepConfig) {}

  get size(): number {
    return this.names.length;
  }

  add(name: string): void {
    this.names.push(name);
  }

  /** Random sweep order (at construction, so that agents do not all ping the same members first). */
  shuffle(random: Random): void {
    this.names = sample(random, this.names, this.names.length);
  }

  tick(t: SweepTick): void {
    const c = this.cfg;
    if (t.now - t.startedAt >= c.unconfirmedTimeoutMs) this.declareSilentDead(t);
    // prune only when the cursor wraps, so that removals do not make it skip members
    if (this.cursor >= this.names.length) {
      // (a name forgotten and added back is listed twice until now: keep one)
      const seen = new Set<string>();
      this.names = this.names.filter((name) => {
        if (seen.has(name) || !pending(t.member(name))) return false;
        seen.add(name);
        return true;
      });
      this.cursor = 0;
    }
    const n = this.names.length;
    if (n === 0) return;
    // member lists are confirming members: let them (up to the timeout), ping only the leftovers
    const busy = t.now - t.lastConfirm < c.antiEntropyIntervalMs;
    if (t.liveCount() > 0 && busy && t.now - t.startedAt < c.unconfirmedTimeoutMs) return;
    const spacing = 4 * c.probeIntervalMs;
    const perTick = Math.max(1, Math.round((c.unconfirmedPingsPerSec * t.tickMs) / 1000));
    let sent = 0;
    // A tick stops at the end of the list; the next one prunes it and starts over (wrapping here
    // would leave the cursor wherever a tick began, so the list would never be pruned).
    for (let scanned = 0; scanned < n && sent < perTick && this.cursor < n; scanned++) {
      const m = t.member(this.names[this.cursor++]!);
      if (!pending(m) || m.pings >= c.unconfirmedPings || (m.pings > 0 && t.now - m.lastPing < spacing))
        continue;
      m.pings += 1;
      m.lastPing = t.now;
      sent += 1;
      t.ping(m);
    }
  }

  /** Past the timeout: members pinged enough, and silent since the last ping, are dead. */
  private declareSilentDead(t: SweepTick): void {
    const c = this.cfg;
    for (const name of this.names) {
      const m = t.member(name);
      if (!pending(m) || m.pings < c.unconfirmedPings || t.now - m.lastPing < c.probeIntervalMs) continue;
      // added after start (addMembers): its own timeout, counted from when it was added
      if (t.now - m.since < c.unconfirmedTimeoutMs) continue;
      t.declareDead(m);
    }
  }
}
