/** Per-source token buckets (pure apart from the clock passed in): `qps` sustained, `burst` at once. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly qps: number,
    private readonly burst: number,
    private readonly maxSources = 65_536,
  ) {}

  /** Whether a query from `src` at time `now` (ms) may be answered. */
  allow(src: string, now: number): boolean {
    let b = this.buckets.get(src);
    if (!b) {
      if (this.buckets.size >= this.maxSources) this.sweep(now);
      b = { tokens: this.burst, at: now };
      this.buckets.set(src, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.qps);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Forget full buckets (sources quiet long enough to be back at `burst`). */
  private sweep(now: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.qps >= this.burst) this.buckets.delete(k);
    }
    if (this.buckets.size >= this.maxSources) this.buckets.clear();
  }
}
