/**
 * SWIM probing with Lifeguard (docs/gossip.md, "Probe cycle"): the direct ping of the next member,
 * the indirect probes through helpers, the nacks, the buddy system and the verdict; and the other
 * side, an indirect probe asked of us. It owns the ids of pings in flight and what their ack or nack
 * does. GossipNode drives it from its probe tick and hands it acks, nacks and pingReqs.
 */
import type { Awareness } from "./awareness.ts";
import type { GossipConfig } from "./config.ts";
import { isLive, toWire } from "./members.ts";
import type { Membership } from "./membership.ts";
import type { Message } from "./messages.ts";
import { type Cancel, type Random, sample } from "./ports.ts";
import type { GossipStats } from "./stats.ts";

/** A helper nacks after this fraction of its probe timeout (the Lifeguard paper uses 80%). */
const NACK_RATIO = 0.8;

export interface ProberHost {
  name: string;
  random: Random;
  send(addr: string, m: Message): void;
  after(ms: number, fn: () => void): Cancel;
  isRunning(): boolean;
}

export class Prober {
  private readonly pending = new Map<number, () => void>();
  private readonly nackHandlers = new Map<number, () => void>();
  private nextId = 1;
  /** Which members reach which (GossipNode.setReach); undefined: all. */
  reach: ((a: string, b: string) => boolean) | undefined;

  constructor(
    private readonly cfg: GossipConfig,
    private readonly stats: GossipStats,
    private readonly members: Membership,
    private readonly health: Awareness,
    private readonly host: ProberHost,
  ) {}

  /** A fresh ping id (also for pings whose ack nobody waits for: sweep, reconnect). */
  id(): number {
    return this.nextId++;
  }

  onAck(id: number): void {
    const cb = this.pending.get(id);
    if (cb) {
      this.pending.delete(id);
      cb();
    }
  }

  onNack(id: number): void {
    this.nackHandlers.get(id)?.();
  }

  clear(): void {
    this.pending.clear();
    this.nackHandlers.clear();
  }

  /**
   * SWIM probe of the next member: a direct ping; no ack within the (scaled) probe timeout →
   * pingReq to indirectChecks alive helpers that reach the target, asking for nacks; no ack by the
   * end of the interval → suspect. The helpers' answers (or silence) move our own local health.
   */
  probe(): void {
    const tgt = this.members.table.nextProbeTarget();
    if (!tgt) return;
    const { cfg, host } = this;
    const lifeguard = cfg.lifeguard;
    const interval = this.health.scale(cfg.probeIntervalMs);
    const timeout = this.health.scale(cfg.probeTimeoutMs);
    this.stats.probes += 1;
    const id = this.nextId++;
    let acked = false;
    let nacks = 0;
    let expectedNacks = 0;
    this.pending.set(id, () => {
      if (acked) return;
      acked = true;
      this.members.applyHealth(-1);
    });
    let m = this.members.piggyback();
    if (lifeguard && tgt.state === "suspect") {
      // buddy system: tell the suspect directly, so it refutes now instead of when gossip reaches it
      const { name, addr, incarnation } = tgt;
      const buddy = toWire({ name, addr, incarnation, state: "suspect", from: host.name });
      m = [buddy, ...(m ?? []).filter((u) => u.n !== tgt.name)];
    }
    host.send(tgt.addr, { t: "ping", id, to: tgt.name, m });
    host.after(timeout, () => {
      if (acked || !host.isRunning()) return;
      const helpers = this.helpers(tgt.name);
      if (lifeguard && helpers.length > 0) {
        expectedNacks = helpers.length;
        this.nackHandlers.set(id, () => {
          nacks += 1;
          this.stats.nacksReceived += 1;
          // every helper reports silence too: the same verdict the deadline would give, sooner
          if (nacks >= expectedNacks) conclude();
        });
      }
      for (const h of helpers) {
        host.send(h.addr, {
          t: "pingReq",
          id,
          target: tgt.name,
          addr: tgt.addr,
          nack: lifeguard || undefined,
        });
      }
    });
    let concluded = false;
    const conclude = (): void => {
      if (concluded) return;
      concluded = true;
      this.pending.delete(id);
      this.nackHandlers.delete(id);
      if (acked || !host.isRunning()) return;
      this.stats.probesFailed += 1;
      // Lifeguard: helpers that answered neither ack nor nack point at us (slow, cut off), not at
      // the target; with no helper to ask, any failed probe counts against our own health.
      this.members.applyHealth(expectedNacks > 0 ? expectedNacks - Math.min(nacks, expectedNacks) : 1);
      const cur = this.members.table.get(tgt.name);
      // a failed probe of a suspect counts as an independent confirmation (Lifeguard)
      if (!cur || !isLive(cur)) return;
      this.stats.suspicionsRaised += 1;
      const { name, addr, incarnation } = cur;
      this.members.apply(toWire({ name, addr, incarnation, state: "suspect", from: host.name }), false);
    };
    host.after(Math.max(timeout + 1, interval - 1), conclude);
  }

  /** Up to indirectChecks alive members we reach that reach the target (one that cannot would only nack). */
  private helpers(target: string): ReturnType<Membership["table"]["reachable"]> {
    const reach = this.reach;
    return sample(
      this.host.random,
      this.members.table
        .reachable()
        .filter((x) => x.name !== target && x.state === "alive" && (!reach || reach(x.name, target))),
      this.cfg.indirectChecks,
    );
  }

  /** An indirect probe asked by `asker`: ping the target, relay its ack, or nack when asked to. */
  probeFor(asker: string, askId: number, target: string, targetAddr: string, nack: boolean): void {
    const { host } = this;
    this.stats.indirectProbes += 1;
    const id = this.nextId++;
    let acked = false;
    this.pending.set(id, () => {
      acked = true;
      host.send(asker, { t: "ack", id: askId });
    });
    host.after(this.cfg.probeIntervalMs, () => this.pending.delete(id));
    host.send(targetAddr, { t: "ping", id, to: target });
    if (!nack) return;
    // Lifeguard: the asker waits (its probe interval - its probe timeout); answer well before
    host.after(Math.max(1, Math.floor(this.cfg.probeTimeoutMs * NACK_RATIO)), () => {
      if (acked || !host.isRunning()) return;
      this.stats.nacksSent += 1;
      host.send(asker, { t: "nack", id: askId });
    });
  }
}
