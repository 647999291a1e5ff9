/**
 * Kernel watcher: long-lived `ip monitor` / `bridge monitor fdb` / `nft monitor` /
 * `ip xfrm monitor` processes whose
 * one-line events are filtered down to what Kosmos owns, so the agent can repair tampering at once
 * instead of on the next periodic resync.
 *
 * The filter (`classifyLine`) is pure; `KernelWatcher` holds the side effects (spawning, restarts
 * with backoff, stopping the children). The watcher never throws into its owner.
 */
import { KOSMOS_NFT_TABLE, KOSMOS_ROUTE_PROTO } from "./hoststate.ts";
import { KOSMOS_DEVICES } from "./normalize.ts";
import { KOSMOS_REQID_MAX, KOSMOS_REQID_MIN } from "./read.ts";
import { redactKeys } from "./redact.ts";

export type KernelEventKind = "link" | "addr" | "route" | "rule" | "neigh" | "fdb" | "nft" | "xfrm";
export type MonitorSource = "ip" | "bridge" | "nft" | "xfrm";

export interface KernelEvent {
  kind: KernelEventKind;
  /** The monitor line (trimmed). */
  line: string;
}

/** Lines longer than this are dropped (no monitor prints one for an object Kosmos owns). */
export const MAX_LINE = 4096;

const OWNED_DEVICES = new Set<string>(KOSMOS_DEVICES);

/** Devices the agent owns: the planner's names and anything named `vx-*`. */
export function ownedDevice(name: string | undefined): boolean {
  return name !== undefined && (OWNED_DEVICES.has(name) || name.startsWith("vx-"));
}

const PROTO_RE = new RegExp(`(?:^|\\s)proto ${KOSMOS_ROUTE_PROTO}(?:\\s|$)`);
const NFT_RE = new RegExp(`(?:^|\\s)inet ${KOSMOS_NFT_TABLE}(?:\\s|$)`);
const LABEL_RE = /^\[(LINK|ADDR|ROUTE|RULE|NEIGH)\]/;
const DEV_RE = /(?:^|\s)dev (\S+)/;
const REQID_RE = /(?:^|\s)reqid (\d+)(?:\s|$)/;

/** "Deleted 4: vx-bridge: <...>" / "6: foo0@foo1: <...>" / "4: vx-bridge    inet ..." -> device. */
function ifName(body: string): string | undefined {
  const m = /^\d+:\s+([^\s:@]+)/.exec(body);
  return m?.[1];
}

/**
 * Decide whether one monitor line concerns something the agent owns; undefined when it does not.
 * `ip` lines come from `ip -o -N monitor label link address route neigh rule` (labelled, numeric
 * protocols), `bridge` from `bridge monitor fdb`, `nft` from `nft monitor`.
 *
 * - link/addr: the device is owned (KOSMOS_DEVICES or `vx-*`);
 * - route/rule: `proto 75` (KOSMOS_ROUTE_PROTO), in any table;
 * - neigh/fdb: on an owned device, and permanent (what the agent installs) or a deletion (a
 *   deleted permanent neighbour is reported as FAILED); dynamic entries changing state are not;
 * - nft: anything in `table inet kosmos`;
 * - xfrm (`ip -o xfrm monitor nokeys policy SA`): a policy or state whose reqid lies in the
 *   reserved range (KOSMOS_REQID_MIN..MAX, what the planner allocates), and any flush (it may have
 *   removed ours). The line is kept without anything that looks like key material.
 */
export function classifyLine(source: MonitorSource, raw: string): KernelEvent | undefined {
  if (raw.length > MAX_LINE) return undefined;
  const line = raw.trim();
  if (!line) return undefined;
  if (source === "nft") {
    if (line.startsWith("#")) return undefined;
    return NFT_RE.test(line) ? { kind: "nft", line } : undefined;
  }
  if (source === "xfrm") {
    if (line.startsWith("Flushed ")) return { kind: "xfrm", line };
    const reqid = Number(REQID_RE.exec(line)?.[1] ?? Number.NaN);
    if (!(reqid >= KOSMOS_REQID_MIN && reqid <= KOSMOS_REQID_MAX)) return undefined;
    // the monitor runs with `nokeys`; redacting anyway is the second belt
    return { kind: "xfrm", line: redactKeys(line) };
  }
  if (source === "bridge") {
    const body = line.replace(/^Deleted\s+/, "");
    if (!ownedDevice(DEV_RE.exec(body)?.[1])) return undefined;
    const deleted = body !== line;
    return deleted || /(?:^|\s)permanent(?:\s|$)/.test(body) ? { kind: "fdb", line } : undefined;
  }
  const label = LABEL_RE.exec(line)?.[1];
  if (!label) return undefined;
  const rest = line.slice(label.length + 2);
  const deleted = rest.startsWith("Deleted ");
  const body = deleted ? rest.slice("Deleted ".length) : rest;
  switch (label) {
    case "LINK":
      return ownedDevice(ifName(body)) ? { kind: "link", line } : undefined;
    case "ADDR":
      return ownedDevice(ifName(body)) ? { kind: "addr", line } : undefined;
    case "ROUTE":
      return PROTO_RE.test(body) ? { kind: "route", line } : undefined;
    case "RULE":
      return PROTO_RE.test(body) ? { kind: "rule", line } : undefined;
    case "NEIGH": {
      if (!ownedDevice(DEV_RE.exec(body)?.[1])) return undefined;
      return deleted || /(?:^|\s)PERMANENT(?:\s|$)/.test(body) ? { kind: "neigh", line } : undefined;
    }
    default:
      return undefined;
  }
}

/**
 * Splits a byte stream into lines, dropping any line longer than `max` (the rest of such a line is
 * skipped up to the next newline, so memory stays bounded whatever the child prints).
 */
export class LineSplitter {
  private buf = "";
  private skipping = false;
  constructor(private readonly max = MAX_LINE) {}

  push(chunk: string, onLine: (line: string) => void): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf("\n", start);
      if (nl < 0) break;
      const piece = chunk.slice(start, nl);
      if (this.skipping) this.skipping = false;
      else if (this.buf.length + piece.length <= this.max) onLine(this.buf + piece);
      this.buf = "";
      start = nl + 1;
    }
    if (start < chunk.length && !this.skipping) {
      this.buf += chunk.slice(start);
      if (this.buf.length > this.max) {
        this.buf = "";
        this.skipping = true;
      }
    }
  }
}

export interface MonitorSpec {
  source: MonitorSource;
  argv: string[];
}

/**
 * The monitors the agent runs: `nft` only when nftables is usable, `xfrm` only when xfrm policies
 * are (and its SA events only when ESP states can be installed at all).
 */
export function monitorSpecs(
  opts: { nft?: boolean; xfrm?: boolean; xfrmStates?: boolean } = {},
): MonitorSpec[] {
  const specs: MonitorSpec[] = [
    {
      source: "ip",
      argv: ["ip", "-o", "-N", "monitor", "label", "link", "address", "route", "neigh", "rule"],
    },
    { source: "bridge", argv: ["bridge", "monitor", "fdb"] },
  ];
  if (opts.nft !== false) specs.push({ source: "nft", argv: ["nft", "monitor"] });
  if (opts.xfrm !== false) {
    const objects = opts.xfrmStates === false ? ["policy"] : ["policy", "SA"];
    specs.push({ source: "xfrm", argv: ["ip", "-o", "xfrm", "monitor", "nokeys", ...objects] });
  }
  return specs;
}

export interface WatcherLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface KernelWatcherOptions {
  /** Called for every line about an owned object. Exceptions are swallowed. */
  onEvent: (ev: KernelEvent) => void;
  /**
   * Called for every line a monitor prints, before filtering (tracing; tests use a line they
   * provoked as the signal that a monitor is subscribed and has delivered everything before it).
   * Exceptions are swallowed.
   */
  onLine?: (source: MonitorSource, line: string) => void;
  /** Argv prefix of every monitor (e.g. `ip netns exec NS` in tests); default: this namespace. */
  prefix?: string[];
  specs?: MonitorSpec[];
  logger?: WatcherLogger;
  /** First restart delay; doubles per consecutive quick exit up to `maxBackoffMs`. */
  backoffMs?: number;
  maxBackoffMs?: number;
}

interface Child {
  kill(sig?: number): void;
  exited: Promise<number>;
}

/**
 * Monitors die with the agent even when it is killed without a chance to stop them (SIGKILL, OOM):
 * `setpriv --pdeathsig KILL` (util-linux, in the image and the lab) sets the parent-death signal and
 * execs the monitor. Without setpriv, an agent killed that way leaves its monitors running until
 * its namespace or container goes away.
 */
const DIE_WITH_PARENT: string[] = Bun.which("setpriv") ? ["setpriv", "--pdeathsig", "KILL", "--"] : [];

/** Runs the monitors, restarts any that exits (with backoff) and kills them on `stop()`. */
export class KernelWatcher {
  private stopped = true;
  private readonly children = new Set<Child>();
  /** Pending restart delays (stop() wakes them). */
  private readonly timers = new Set<() => void>();
  private readonly loops: Promise<void>[] = [];
  /** Restarts per source (for tests and status). */
  readonly restarts: Record<string, number> = {};
  /** When the running monitor of each source was started (Date.now()); absent while none runs. */
  private readonly startedAt = new Map<MonitorSource, number>();

  constructor(private readonly opts: KernelWatcherOptions) {}

  /**
   * When the monitor of `source` now running was started (Date.now()), or undefined while none runs.
   * The same value twice means the same process, so no event of that source was lost in between.
   */
  since(source: MonitorSource): number | undefined {
    return this.startedAt.get(source);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    for (const spec of this.opts.specs ?? monitorSpecs()) this.loops.push(this.supervise(spec));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const wake of [...this.timers]) wake();
    for (const c of this.children) {
      try {
        c.kill(15);
      } catch {
        /* already gone */
      }
    }
    await Promise.all(this.loops.splice(0));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(t);
        this.timers.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      this.timers.add(wake);
    });
  }

  private async supervise(spec: MonitorSpec): Promise<void> {
    const base = this.opts.backoffMs ?? 500;
    const max = this.opts.maxBackoffMs ?? 30_000;
    let delay = base;
    while (!this.stopped) {
      const t0 = Date.now();
      let why: string;
      try {
        why = await this.runOnce(spec);
      } catch (e) {
        why = (e as Error).message;
      }
      if (this.stopped) return;
      // A monitor that ran for a while before exiting starts again at the base delay.
      if (Date.now() - t0 > max) delay = base;
      this.restarts[spec.source] = (this.restarts[spec.source] ?? 0) + 1;
      this.opts.logger?.warn(
        { monitor: spec.source, reason: why, retryMs: delay },
        "kernel monitor exited; restarting",
      );
      await this.sleep(delay);
      delay = Math.min(delay * 2, max);
    }
  }

  /** Run one monitor until it exits; resolves with why it ended. */
  private async runOnce(spec: MonitorSpec): Promise<string> {
    const argv = [...DIE_WITH_PARENT, ...(this.opts.prefix ?? []), ...spec.argv];
    const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    this.children.add(proc);
    this.startedAt.set(spec.source, Date.now());
    try {
      if (this.stopped) proc.kill(15);
      const split = new LineSplitter();
      const onLine = (line: string): void => {
        try {
          this.opts.onLine?.(spec.source, line);
        } catch {
          /* a tracer's problem, never the watcher's */
        }
        const ev = classifyLine(spec.source, line);
        if (!ev) return;
        this.opts.logger?.debug({ monitor: spec.source, kind: ev.kind, line: ev.line }, "kernel event");
        try {
          this.opts.onEvent(ev);
        } catch {
          /* the owner's problem, never the watcher's */
        }
      };
      const decoder = new TextDecoder();
      const stderr = new Response(proc.stderr as ReadableStream).text().catch(() => "");
      for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
        split.push(decoder.decode(chunk, { stream: true }), onLine);
      }
      const code = await proc.exited;
      const err = (await stderr).trim().slice(0, 200);
      return `exit ${code}${err ? `: ${err}` : ""}`;
    } finally {
      this.children.delete(proc);
      this.startedAt.delete(spec.source);
    }
  }
}
