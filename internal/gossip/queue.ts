/**
 * Transmit-limited broadcast queue (memberlist's TransmitLimitedQueue): each item is sent at most
 * `limit` times, least-transmitted first; a newer item with the same id replaces the older one.
 * Bounded: on overflow the most-transmitted items are dropped (anti-entropy will repair them).
 */
export class BroadcastQueue<T> {
  private readonly items = new Map<string, { item: T; tx: number }>();
  dropped = 0;

  constructor(private readonly max: number) {}

  get size(): number {
    return this.items.size;
  }

  push(id: string, item: T, alreadySent = 0): void {
    this.items.delete(id);
    this.items.set(id, { item, tx: alreadySent });
    if (this.items.size > this.max) {
      let worstId: string | undefined;
      let worstTx = -1;
      for (const [k, v] of this.items) {
        if (v.tx > worstTx) {
          worstTx = v.tx;
          worstId = k;
        }
      }
      if (worstId !== undefined) this.items.delete(worstId);
      this.dropped += 1;
    }
  }

  /** Take up to `count` items (and at most `budget` by `cost`), counting one transmission each. */
  take(count: number, limit: number, cost?: (t: T) => number, budget = Number.POSITIVE_INFINITY): T[] {
    if (this.items.size === 0 || count <= 0) return [];
    const entries = [...this.items.entries()].sort((a, b) => a[1].tx - b[1].tx);
    const out: T[] = [];
    let used = 0;
    for (const [id, e] of entries) {
      if (out.length >= count) break;
      const c = cost ? cost(e.item) : 0;
      if (out.length > 0 && used + c > budget) break;
      used += c;
      out.push(e.item);
      e.tx += 1;
      if (e.tx >= limit) this.items.delete(id);
    }
    return out;
  }

  /** Drop an item (its subject is gone: a forgotten member). */
  delete(id: string): boolean {
    return this.items.delete(id);
  }

  /** Count extra transmissions of an item that was sent outside take() (eager push). */
  bump(id: string, n: number, limit: number): void {
    const e = this.items.get(id);
    if (!e) return;
    e.tx += n;
    if (e.tx >= limit) this.items.delete(id);
  }
}
