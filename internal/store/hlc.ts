/**
 * Hybrid logical clock (Kulkarni et al.), packed into one safe JS integer:
 *   version = physicalMillis * 1024 + logical   (logical in 0..1023)
 * Milliseconds since the epoch fit in 41 bits, so versions stay below 2^51 (< 2^53): they compare
 * as plain numbers, store as SQLite INTEGER, and survive JSON.
 * When more than 1024 events happen in one millisecond the clock borrows the next millisecond.
 */
export const HLC_LOGICAL_BITS = 1024;

export function packHlc(physicalMs: number, logical: number): number {
  return physicalMs * HLC_LOGICAL_BITS + logical;
}

export function unpackHlc(version: number): { physicalMs: number; logical: number } {
  const logical = version % HLC_LOGICAL_BITS;
  return { physicalMs: (version - logical) / HLC_LOGICAL_BITS, logical };
}

/** Maximum accepted skew of a remote version ahead of our wall clock (rejects absurd clocks). */
export const HLC_MAX_DRIFT_MS = 60_000;

export class HybridClock {
  private last = 0;
  constructor(private readonly now: () => number = Date.now) {}

  /** A new version for a local event, strictly greater than every version seen so far. */
  tick(): number {
    const wall = packHlc(Math.floor(this.now()), 0);
    this.last = wall > this.last ? wall : this.last + 1;
    return this.last;
  }

  /**
   * Merge a remote version (on receive). Returns false, and ignores it, when the remote clock is
   * more than HLC_MAX_DRIFT_MS ahead of our wall clock.
   */
  observe(remote: number): boolean {
    if (!Number.isSafeInteger(remote) || remote < 0) return false;
    const { physicalMs } = unpackHlc(remote);
    if (physicalMs > this.now() + HLC_MAX_DRIFT_MS) return false;
    if (remote > this.last) this.last = remote;
    return true;
  }

  /** The highest version issued or observed. */
  current(): number {
    return this.last;
  }
}
