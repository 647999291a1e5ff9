/**
 * A rate-limited work queue (client-go's workqueue, small): keys are deduplicated, a key is never
 * processed by two workers at once (added again while running, it runs once more afterwards), and a
 * failing key is retried with per-key exponential backoff until it succeeds.
 */
import type { Logger } from "../observability/index.ts";

export interface WorkQueueOptions {
  name: string;
  process: (key: string) => Promise<void>;
  logger?: Logger;
  /** Parallel workers (default 1). */
  workers?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Called when a key failed (metrics). */
  onError?: (key: string, err: unknown) => void;
}

export class WorkQueue {
  private readonly queue = new Set<string>();
  private readonly running = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();
  private idleWaiters: (() => void)[] = [];
  private active = 0;
  private stopped = false;
  private paused = false;

  constructor(private readonly o: WorkQueueOptions) {}

  add(key: string): void {
    if (this.stopped) return;
    if (this.running.has(key)) {
      this.dirty.add(key);
      return;
    }
    this.queue.add(key);
    this.pump();
  }

  /** Add after a delay (a retry or a periodic re-check); an earlier pending delay for the key wins. */
  addAfter(key: string, ms: number): void {
    if (this.stopped || this.timers.has(key)) return;
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        this.add(key);
      }, ms),
    );
  }

  /** Hold processing (e.g. while not leader); keys still collect. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.pump();
  }

  get length(): number {
    return this.queue.size + this.running.size;
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Resolves once nothing is queued, running or waiting for a retry. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private isIdle(): boolean {
    return this.queue.size === 0 && this.running.size === 0 && this.timers.size === 0;
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.queue.clear();
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private pump(): void {
    while (!this.stopped && !this.paused && this.active < (this.o.workers ?? 1) && this.queue.size > 0) {
      const key = this.queue.values().next().value as string;
      this.queue.delete(key);
      this.running.add(key);
      this.active++;
      void this.work(key);
    }
    if (this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
  }

  private async work(key: string): Promise<void> {
    try {
      await this.o.process(key);
      this.failures.delete(key);
    } catch (e) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      const delay = Math.min(this.o.maxBackoffMs ?? 30_000, (this.o.minBackoffMs ?? 200) * 2 ** (n - 1));
      this.o.onError?.(key, e);
      this.o.logger?.warn(
        { queue: this.o.name, key, err: (e as Error).message, failures: n, retryInMs: delay },
        "work item failed, retrying",
      );
      this.addAfter(key, delay);
    } finally {
      this.running.delete(key);
      this.active--;
      if (this.dirty.delete(key)) this.queue.add(key);
      this.pump();
    }
  }
}
