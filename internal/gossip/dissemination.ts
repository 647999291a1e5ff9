/**
 * Row rumors: rows a node wrote, or learned from a push, go to `fanout` random live peers at once
 * (eager) and stay in a transmit-limited queue, resent on each gossip round (with the membership
 * updates waiting for a ride) until sent retransmitMult·ceil(log10(n + 1)) times. Change sets above
 * bulkThreshold are not pushed: anti-entropy with `fanout` peers carries them instead (push digest,
 * pull data), so a bulk seed travels once per peer.
 */
import type { ReplicaPort, ReplicatedRow } from "./replicated.ts";
import { chunk, rowCost, rowId } from "./chunk.ts";
import type { GossipConfig } from "./config.ts";
import type { Member } from "./members.ts";
import type { MemberUpdate, Message } from "./messages.ts";
import { BroadcastQueue } from "./queue.ts";
import type { GossipStats } from "./stats.ts";

export type RowsListener = (rows: ReplicatedRow[], from: string) => void;

/** What dissemination uses of its node. */
export interface DisseminationPort {
  /** Live members (gossip targets). */
  live(): readonly Member[];
  /** k targets out of xs (uniform, or weighted by reach: MemberTable.pick). */
  pick(xs: readonly Member[], k: number): Member[];
  retransmitLimit(): number;
  send(addr: string, m: Message): void;
  /** Membership updates waiting to be sent, and taking some for a frame. */
  membersPending(): number;
  piggyback(): MemberUpdate[] | undefined;
  /** A change set too big to push row by row: start anti-entropy with `fanout` peers. */
  bulk(exclude: string | undefined): void;
}

type DisseminationConfig = Pick<
  GossipConfig,
  | "fanout"
  | "maxQueuedRows"
  | "maxRowsPerPush"
  | "chunkBytes"
  | "eagerPush"
  | "bulkThreshold"
  | "rebroadcastRepairedMax"
>;

export class Dissemination {
  readonly queue: BroadcastQueue<ReplicatedRow>;
  /** Called with the rows from peers that changed the local replica. */
  readonly listeners: RowsListener[] = [];

  constructor(
    private readonly cfg: DisseminationConfig,
    private readonly replica: ReplicaPort,
    private readonly stats: GossipStats,
    private readonly port: DisseminationPort,
  ) {
    this.queue = new BroadcastQueue(cfg.maxQueuedRows);
  }

  /** The periodic gossip round: queued rows and membership updates to `fanout` random peers. */
  round(): void {
    if (this.queue.size === 0 && this.port.membersPending() === 0) return;
    const peers = this.port.pick(this.port.live(), this.cfg.fanout);
    const limit = this.port.retransmitLimit();
    for (const p of peers) {
      const rows = this.queue.take(this.cfg.maxRowsPerPush, limit, rowCost, this.cfg.chunkBytes);
      const m = this.port.piggyback();
      if (rows.length === 0 && !m) break;
      this.port.send(p.addr, { t: "push", rows, m });
    }
  }

  /** Spread rows that changed the replica (`from`: the peer they came from, not sent back to it). */
  disseminate(rows: ReplicatedRow[], from: string | undefined): void {
    if (rows.length > this.cfg.bulkThreshold) {
      this.port.bulk(from);
      return;
    }
    for (const r of rows) this.queue.push(rowId(r), r);
    if (this.cfg.eagerPush) this.eager(rows, from);
  }

  /** Rows a peer pushed: merged, and what changed is spread further. */
  onPush(rows: ReplicatedRow[], from: string): void {
    const changed = this.merge(rows, from);
    if (changed.length > 0) this.disseminate(changed, from);
  }

  /** Rows anti-entropy brought: merged; a few are re-gossiped, a bulk starts anti-entropy rounds. */
  onRepair(rows: ReplicatedRow[], from: string): void {
    const changed = this.merge(rows, from);
    if (changed.length > this.cfg.bulkThreshold) this.port.bulk(from);
    else if (changed.length > 0 && changed.length <= this.cfg.rebroadcastRepairedMax) {
      for (const r of changed) this.queue.push(rowId(r), r);
    }
  }

  private eager(rows: ReplicatedRow[], exclude: string | undefined): void {
    const peers = this.port.pick(
      this.port.live().filter((m) => m.name !== exclude),
      this.cfg.fanout,
    );
    if (peers.length === 0) return;
    const limit = this.port.retransmitLimit();
    const chunks = chunk(rows, rowCost, this.cfg.maxRowsPerPush, this.cfg.chunkBytes);
    for (const p of peers)
      for (const c of chunks) this.port.send(p.addr, { t: "push", rows: c, m: undefined });
    for (const r of rows) this.queue.bump(rowId(r), peers.length, limit);
  }

  private merge(rows: ReplicatedRow[], from: string): ReplicatedRow[] {
    this.stats.rowsReceived += rows.length;
    const changed = this.replica.merge(rows);
    if (changed.length > 0) {
      this.stats.rowsChanged += changed.length;
      for (const cb of this.listeners) cb(changed, from);
    }
    return changed;
  }
}
