/**
 * Log lines for gossip membership changes, bounded in volume: members known only from the replica
 * (never heard from) come and go in bulk — at start every reachable peer is confirmed, and a
 * topology listing 1,000 nodes that run no agent yields 1,000 "dead" verdicts within about a minute.
 * Those are logged at debug and summarised in at most one info line per kind every 10 s; every
 * other change gets its own line. Membership changes that follow the topology (members added or
 * forgotten) get one line per change of the replica's nodes.
 */
import type { MemberInfo } from "../gossip/index.ts";
import type { Logger } from "../observability/index.ts";
import type { MemberState } from "../topology/index.ts";

export interface MemberEventLogOptions {
  logger: Logger;
  /** Names of the replica-derived members the gossip node started with (unconfirmed). */
  unconfirmed: Iterable<string>;
  /** Summary delay after the first event of a burst (ms, default 10 s). */
  flushMs?: number;
  setTimer?: (ms: number, fn: () => void) => void;
}

const SAMPLE = 10;

export class MemberEventLog {
  private readonly pendingConfirm = new Set<string>();
  private readonly answered: string[] = [];
  private readonly silent: string[] = [];
  private scheduled = false;
  private readonly flushMs: number;
  private readonly setTimer: (ms: number, fn: () => void) => void;

  constructor(private readonly o: MemberEventLogOptions) {
    for (const n of o.unconfirmed) this.pendingConfirm.add(n);
    this.flushMs = o.flushMs ?? 10_000;
    this.setTimer = o.setTimer ?? ((ms, fn) => void setTimeout(fn, ms));
  }

  record(name: string, state: MemberState, info: MemberInfo): void {
    const { logger } = this.o;
    const fields = { member: name, state, incarnation: info.incarnation, confirmed: info.confirmed };
    if (!info.confirmed && state === "dead") {
      logger.debug(fields, `member ${name} never answered: dead`);
      this.silent.push(name);
      this.schedule();
      return;
    }
    if (this.pendingConfirm.delete(name) && state === "alive") {
      logger.debug(fields, `member ${name} answered`);
      this.answered.push(name);
      this.schedule();
      return;
    }
    logger.info(fields, `member ${name} is ${state}`);
  }

  /**
   * Membership followed the topology: `added` (nodes added to it, or back: unconfirmed members,
   * summarised like those of the start once they answer) and `forgotten` (members no longer in it,
   * dead, left or never heard from). One info line for both, with at most 10 names of each.
   */
  topologyChanged(added: readonly string[], forgotten: readonly string[]): void {
    if (added.length === 0 && forgotten.length === 0) return;
    for (const n of added) this.pendingConfirm.add(n);
    for (const n of forgotten) this.pendingConfirm.delete(n);
    this.o.logger.info(
      {
        added: added.length,
        forgotten: forgotten.length,
        addedMembers: added.slice(0, SAMPLE),
        forgottenMembers: forgotten.slice(0, SAMPLE),
      },
      `membership follows the topology: ${added.length} node(s) added (unconfirmed), ${forgotten.length} member(s) no longer in it forgotten`,
    );
  }

  /** Write the pending summaries now (also called by the timer). */
  flush(): void {
    this.scheduled = false;
    const { logger } = this.o;
    if (this.answered.length > 0) {
      const n = this.answered.length;
      logger.info(
        { count: n, members: this.answered.slice(0, SAMPLE) },
        `${n} replica member(s) answered: alive`,
      );
      this.answered.length = 0;
    }
    if (this.silent.length > 0) {
      const n = this.silent.length;
      logger.info(
        { count: n, members: this.silent.slice(0, SAMPLE) },
        `${n} replica member(s) never answered: dead (no agent running there?)`,
      );
      this.silent.length = 0;
    }
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.setTimer(this.flushMs, () => this.flush());
  }
}
