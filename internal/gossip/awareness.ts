/**
 * Lifeguard's local health (memberlist awareness.go): a score in [0, max - 1], 0 = healthy. A node
 * that misses acks because *it* is slow sees its probe helpers answer neither ack nor nack; the
 * score then rises and stretches its own probe interval, probe timeout and unconfirmed suspicions,
 * so it slows down instead of accusing healthy members. Pure state, no clock.
 */
export class Awareness {
  private health = 0;
  /** Highest score reached (a statistic). */
  peak = 0;

  /**
   * @param max the score stays below this (memberlist's awarenessMaxMultiplier, 8)
   * @param enabled false (classic SWIM): the score stays 0
   */
  constructor(
    private readonly max: number,
    private readonly enabled: boolean,
  ) {}

  get score(): number {
    return this.health;
  }

  /** Add `delta` (a failed probe: +, a successful one: -1, having to refute: +1), clamped. */
  apply(delta: number): void {
    if (!this.enabled || delta === 0) return;
    this.health = Math.max(0, Math.min(this.max - 1, this.health + delta));
    if (this.health > this.peak) this.peak = this.health;
  }

  /** A probe duration scaled by the score: ms · (score + 1). */
  scale(ms: number): number {
    return ms * (this.health + 1);
  }
}
