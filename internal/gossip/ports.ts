/** Side effects enter the gossip core only through these interfaces. */

export interface Transport {
  /** Fire and forget; the transport may drop (bounded queues), the protocol repairs. */
  send(to: string, bytes: Uint8Array): void;
  /** Register the single inbound handler. */
  onMessage(cb: (bytes: Uint8Array) => void): void;
}

export type Cancel = () => void;

export interface Clock {
  /** Milliseconds (virtual in the simulator). */
  now(): number;
  setTimer(ms: number, cb: () => void): Cancel;
}

export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
}

/** Integer in [0, n). */
export function randInt(r: Random, n: number): number {
  return Math.floor(r.next() * n);
}

/** k distinct random elements of xs (partial Fisher-Yates on a copy). */
export function sample<T>(r: Random, xs: readonly T[], k: number): T[] {
  const a = xs.slice();
  const m = Math.min(k, a.length);
  for (let i = 0; i < m; i++) {
    const j = i + randInt(r, a.length - i);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a.slice(0, m);
}

/**
 * k distinct elements of xs, each drawn with probability proportional to weight(x) (weighted
 * sampling without replacement, Efraimidis–Spirakis with exponential keys: the k smallest
 * -ln(u) / w).
 */
export function weightedSample<T>(r: Random, xs: readonly T[], k: number, weight: (x: T) => number): T[] {
  const keyed = xs.map((x) => ({ x, key: -Math.log(1 - r.next()) / Math.max(weight(x), Number.MIN_VALUE) }));
  keyed.sort((a, b) => a.key - b.key);
  return keyed.slice(0, Math.min(k, keyed.length)).map((e) => e.x);
}

/** sfc32 seeded PRNG: deterministic, fast, good enough for simulation and jitter. */
export function seededRandom(seed: number): Random {
  let a = 0x9e3779b9 ^ seed;
  let b = 0x243f6a88 ^ (seed * 31);
  let c = 0xb7e15162;
  let d = seed | 0;
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return { next };
}

/** Production clock: wall time and real timers. */
export function realClock(): Clock {
  return {
    now: () => Date.now(),
    setTimer(ms, cb) {
      const t = setTimeout(cb, ms);
      return () => clearTimeout(t);
    },
  };
}

/** Production randomness (crypto-seeded Math.random is fine for peer selection and jitter). */
export function realRandom(): Random {
  return { next: () => Math.random() };
}
