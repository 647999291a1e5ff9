/**
 * An informer: list, then watch from the list's resourceVersion, keeping a cache and telling handlers
 * about adds, updates and deletes (client-go's reflector + store, small). A watch the server ends
 * (every 5–10 min) is resumed from the last resourceVersion; 410 Gone relists at once (the cache is
 * diffed against the new list, so handlers see exactly what changed while we were away); any other
 * failure retries with exponential backoff and jitter. The backoff resets only after a watch has
 * delivered an event or stayed open for `healthyAfterMs` — a server that accepts the connection and
 * then fails does not turn the retries into a constant hammer.
 *
 * A watch that stays silent for `idleTimeoutMs` is abandoned and resumed from its resourceVersion on
 * a new request. A connection that died without a FIN or RST (a peer that vanished, a NAT entry
 * dropped, a proxy that hangs) would otherwise hold the informer deaf until the kernel's TCP
 * timeouts fire, many minutes later; client-go covers the same case with HTTP/2 pings, which an
 * HTTP/1.1 stream cannot carry. The API server sends a bookmark about once a minute on a watch that
 * asks for them, but only for a resource that changed at least once since it started: on such a
 * never-changed resource the watch is resumed every `idleTimeoutMs` (one cheap request; no relist —
 * the watch cache accepts any resourceVersion since its initial list).
 */
import type { Logger } from "../observability/index.ts";
import { errorStatus, KubeApiError } from "./errors.ts";
import type { KubeClient, Named, Query } from "./rest.ts";

export type InformerEvent = "add" | "update" | "delete";
/** Connected: listed and watching; failing: the last list/watch attempt failed. */
export type InformerHealth = "connecting" | "connected" | "failing";
type Handler<T> = (obj: T, old?: T) => void;

export interface InformerOptions {
  client: KubeClient;
  /** Collection path, e.g. `/api/v1/nodes` or `/apis/kosmos.io/v1alpha1/clusters`. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Name in logs. */
  name: string;
  logger?: Logger;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  healthyAfterMs?: number;
  /** Page size of the initial list (default 500). */
  pageSize?: number;
  /**
   * Resume a watch that delivered nothing (no event, no bookmark) for this long on a new request
   * (default 150 s: bookmarks come about every 60 s); a watch request the API server does not
   * accept within min(this, 30 s) is a failure (backoff, health "failing").
   */
  idleTimeoutMs?: number;
}

export const DEFAULT_WATCH_IDLE_TIMEOUT_MS = 150_000;
/** How long a watch request may wait for the API server's answer (its response headers). */
const OPEN_TIMEOUT_MS = 30_000;

export const objectKey = (o: Named): string =>
  o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;

export class Informer<T extends Named = Named> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: Record<InformerEvent, Handler<T>[]> = { add: [], update: [], delete: [] };
  private readonly syncWaiters: (() => void)[] = [];
  private synced = false;
  private stopped = false;
  private abort = new AbortController();
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private resourceVersion: string | undefined;
  /** Consecutive failures since the last healthy watch. */
  failures = 0;
  /** Completed full lists after the first one (after a 410 Gone, or a failure before any resourceVersion). */
  relists = 0;
  /** Watches the server refused or ended with 410 Gone (the resourceVersion was too old). */
  expired = 0;
  /** Watches abandoned because they stayed silent for `idleTimeoutMs` (see the class comment). */
  stalls = 0;
  lastError: string | undefined;
  private healthState: InformerHealth = "connecting";
  private readonly healthHandlers: ((h: InformerHealth) => void)[] = [];

  constructor(readonly o: InformerOptions) {}

  on(ev: InformerEvent, fn: Handler<T>): this {
    this.handlers[ev].push(fn);
    return this;
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  get(name: string, namespace?: string): T | undefined {
    return this.cache.get(namespace ? `${namespace}/${name}` : name);
  }

  hasSynced(): boolean {
    return this.synced;
  }

  health(): InformerHealth {
    return this.healthState;
  }

  /** Called when the health changes (connected ↔ failing). */
  onHealth(fn: (h: InformerHealth) => void): this {
    this.healthHandlers.push(fn);
    return this;
  }

  private setHealth(h: InformerHealth): void {
    if (h === this.healthState) return;
    this.healthState = h;
    for (const fn of this.healthHandlers) fn(h);
  }

  /** Resolves after the first successful list. */
  waitSynced(): Promise<void> {
    return this.synced || this.stopped ? Promise.resolve() : new Promise((r) => this.syncWaiters.push(r));
  }

  start(): this {
    this.loop ??= this.run();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.wake?.();
    await this.loop;
    for (const w of this.syncWaiters.splice(0)) w();
  }

  private emit(ev: InformerEvent, obj: T, old?: T): void {
    for (const h of this.handlers[ev]) {
      try {
        h(obj, old);
      } catch (e) {
        this.o.logger?.error({ informer: this.o.name, err: (e as Error).message }, "informer handler threw");
      }
    }
  }

  private query(): Query {
    return { labelSelector: this.o.labelSelector, fieldSelector: this.o.fieldSelector };
  }

  /** Full list (paged); the cache becomes the list, handlers see the difference. */
  private async relist(): Promise<void> {
    const fresh = new Map<string, T>();
    let cont: string | undefined;
    let rv: string | undefined;
    do {
      const page = await this.o.client.list<T>(this.o.path, {
        ...this.query(),
        limit: this.o.pageSize ?? 500,
        continue: cont,
      });
      for (const it of page.items) fresh.set(objectKey(it), it);
      cont = page.metadata.continue || undefined;
      rv = page.metadata.resourceVersion;
    } while (cont);
    for (const [k, old] of this.cache) {
      if (!fresh.has(k)) {
        this.cache.delete(k);
        this.emit("delete", old);
      }
    }
    for (const [k, obj] of fresh) {
      const old = this.cache.get(k);
      this.cache.set(k, obj);
      if (!old) this.emit("add", obj);
      else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.emit("update", obj, old);
    }
    this.resourceVersion = rv;
    this.setHealth("connected");
    if (this.synced) this.relists++;
    else {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private apply(type: string, obj: T): void {
    const k = objectKey(obj);
    const old = this.cache.get(k);
    if (type === "DELETED") {
      this.cache.delete(k);
      this.emit("delete", old ?? obj);
    } else {
      this.cache.set(k, obj);
      if (old) this.emit("update", obj, old);
      else this.emit("add", obj);
    }
  }

  /** Watch from the current resourceVersion until the server ends the stream or it fails. */
  private async watchOnce(): Promise<void> {
    const opened = Date.now();
    const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
    const idleMs = this.o.idleTimeoutMs ?? DEFAULT_WATCH_IDLE_TIMEOUT_MS;
    const watch = new AbortController();
    const onStop = (): void => watch.abort();
    this.abort.signal.addEventListener("abort", onStop, { once: true });
    if (this.abort.signal.aborted) watch.abort(); // stop() came first: do not wait on a new watch
    let silent = false;
    let open = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = (ms: number): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        silent = true;
        watch.abort();
      }, ms);
    };
    // until the API server accepts the watch: an ordinary request's patience
    arm(Math.min(idleMs, OPEN_TIMEOUT_MS));
    try {
      const events = this.o.client.watch<T>(
        this.o.path,
        { ...this.query(), resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds },
        watch.signal,
        () => {
          // accepted: the API server talks to us (health), though only events reset the backoff
          open = true;
          this.setHealth("connected");
          arm(idleMs);
        },
      );
      for await (const ev of events) {
        arm(idleMs);
        this.failures = 0;
        this.setHealth("connected");
        this.resourceVersion = ev.object.metadata.resourceVersion ?? this.resourceVersion;
        if (ev.type !== "BOOKMARK") this.apply(ev.type, ev.object);
      }
    } catch (e) {
      if (!silent) throw e;
    } finally {
      clearTimeout(timer);
      this.abort.signal.removeEventListener("abort", onStop);
    }
    // no answer to the request: a failure like any other (backoff, health "failing")
    if (silent && !open && !this.stopped)
      throw new KubeApiError(0, `watch not accepted within ${OPEN_TIMEOUT_MS} ms`, undefined, {
        unreachable: true,
      });
    if (silent && !this.stopped) {
      // accepted, then silent: a dead connection or just a quiet resource; resume at once on a new
      // request, which fails above if the server is gone
      this.stalls++;
      this.o.logger?.debug({ informer: this.o.name, silentMs: idleMs }, "silent watch resumed");
    }
    if (Date.now() - opened >= (this.o.healthyAfterMs ?? 10_000)) this.failures = 0;
    // A stream that ends at once without events is a failure in disguise (e.g. a proxy closing it).
    else if (!this.stopped && !silent)
      throw new KubeApiError(0, "watch ended at once", undefined, { unreachable: true });
  }

  private async run(): Promise<void> {
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) await this.relist();
        needList = false;
        await this.watchOnce();
      } catch (e) {
        if (this.stopped) break;
        if (errorStatus(e) === 410) {
          this.expired++;
          needList = true; // too old: relist at once, no backoff
          continue;
        }
        this.failures++;
        this.setHealth("failing");
        needList ||= !this.resourceVersion;
        const min = this.o.minBackoffMs ?? 200;
        const base = Math.min(this.o.maxBackoffMs ?? 30_000, min * 2 ** (this.failures - 1));
        const delay = Math.round(base * (0.8 + Math.random() * 0.4));
        this.lastError = (e as Error).message;
        // First failure and then every doubling step are logged; the retries in between are quiet.
        if (this.failures === 1 || Number.isInteger(Math.log2(this.failures)))
          this.o.logger?.warn(
            { informer: this.o.name, err: this.lastError, failures: this.failures, retryInMs: delay },
            "watch failed, retrying",
          );
        await this.sleep(delay);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}
