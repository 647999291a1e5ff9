/**
 * Session glue shared by all endpoints: concurrency limit, session + idle timeouts (the process
 * group gets SIGTERM, then SIGKILL after a grace), byte counting and the audit record.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "../observability/index.ts";
import {
  type Counter,
  type Gauge,
  Gauge as GaugeCtor,
  Counter as CounterCtor,
  type Registry,
} from "../observability/index.ts";
import type { AuditSink } from "./audit.ts";
import {
  type ExitResult,
  type OutputSink,
  type ProcessSpec,
  type RunningProcess,
  startProcess,
} from "./process.ts";

export interface ExecLimits {
  maxSessions: number;
  /** whole-session limit (0 = none) */
  sessionTimeoutMs: number;
  /** no input/output for this long ends the session (0 = none) */
  idleTimeoutMs: number;
  maxUploadBytes: number;
  /** SIGTERM → SIGKILL grace */
  killGraceMs: number;
  /** after exit, wait this long for background children holding stdout */
  drainGraceMs: number;
}

export const DEFAULT_LIMITS: ExecLimits = {
  maxSessions: 128,
  sessionTimeoutMs: 3_600_000,
  idleTimeoutMs: 600_000,
  maxUploadBytes: 8 * 1024 * 1024 * 1024,
  killGraceMs: 2000,
  drainGraceMs: 2000,
};

export interface SessionInfo {
  principal: string;
  endpoint: string;
  remote: string;
}

export interface SessionResult extends ExitResult {
  timedOut: "session" | "idle" | null;
}

export interface Session {
  readonly id: string;
  readonly proc: RunningProcess;
  /** record activity (resets the idle timer) and count input bytes */
  input(bytes: number): void;
  /** client went away: kill the group */
  abort(reason: string): void;
  readonly done: Promise<SessionResult>;
}

interface Metrics {
  active: Gauge;
  total: Counter;
  bytes: Counter;
}

export class SessionManager {
  active = 0;
  readonly limits: ExecLimits;
  private readonly metrics: Metrics | null;

  constructor(
    private readonly deps: {
      audit: AuditSink;
      logger: Logger;
      registry?: Registry;
      limits?: Partial<ExecLimits>;
    },
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...deps.limits };
    const reg = deps.registry;
    this.metrics = reg
      ? {
          active: new GaugeCtor({
            name: "kosmos_exec_sessions_active",
            help: "running exec sessions",
            registers: [reg],
          }),
          total: new CounterCtor({
            name: "kosmos_exec_sessions_total",
            help: "finished exec sessions",
            labelNames: ["endpoint", "result"],
            registers: [reg],
          }),
          bytes: new CounterCtor({
            name: "kosmos_exec_bytes_total",
            help: "bytes moved by exec sessions",
            labelNames: ["direction"],
            registers: [reg],
          }),
        }
      : null;
  }

  /** Reserve a slot; false when the limit is reached. Pair with `release`. */
  tryAcquire(): boolean {
    if (this.active >= this.limits.maxSessions) return false;
    this.active++;
    this.metrics?.active.set(this.active);
    return true;
  }

  release(): void {
    this.active = Math.max(0, this.active - 1);
    this.metrics?.active.set(this.active);
  }

  /** Audit a non-process session (upload, check); returns a finisher. */
  record(
    info: SessionInfo,
    command: string[],
  ): (end: { exitCode: number | null; bytesIn?: number; error?: string | null }) => void {
    const id = randomUUID();
    const startedAt = Date.now();
    this.deps.audit.start({ id, ...info, command, startedAt });
    return (end) => {
      this.deps.audit.finish(id, {
        endedAt: Date.now(),
        exitCode: end.exitCode,
        signal: null,
        bytesIn: end.bytesIn ?? 0,
        bytesOut: 0,
        error: end.error ?? null,
      });
      this.metrics?.bytes.inc({ direction: "in" }, end.bytesIn ?? 0);
      this.metrics?.total.inc({ endpoint: info.endpoint, result: end.exitCode === 0 ? "ok" : "error" });
    };
  }

  /** Start a process session (the caller already holds a slot; it is released when done). */
  start(info: SessionInfo, spec: ProcessSpec, sink: OutputSink, timeoutMs?: number): Session {
    const id = randomUUID();
    const startedAt = Date.now();
    const limits = this.limits;
    let bytesIn = 0;
    let bytesOut = 0;
    let timedOut: "session" | "idle" | null = null;
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    this.deps.audit.start({ id, ...info, command: spec.argv, startedAt });
    const log = this.deps.logger.child({ session: id, endpoint: info.endpoint });
    log.debug({ argv: spec.argv, principal: info.principal }, "session start");

    const terminate = (why: string) => {
      log.info({ why }, "terminating process group");
      proc.killSession("SIGTERM");
      killTimer ??= setTimeout(() => proc.killSession("SIGKILL"), limits.killGraceMs);
    };
    const armIdle = () => {
      if (!limits.idleTimeoutMs) return;
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        timedOut ??= "idle";
        terminate("idle timeout");
      }, limits.idleTimeoutMs);
    };
    const counting: OutputSink = {
      stdout: (c) => {
        bytesOut += c.byteLength;
        armIdle();
        return sink.stdout(c);
      },
      stderr: (c) => {
        bytesOut += c.byteLength;
        armIdle();
        return sink.stderr(c);
      },
    };
    const proc = startProcess(spec, counting, { drainGraceMs: limits.drainGraceMs });
    const total = timeoutMs ?? limits.sessionTimeoutMs;
    const sessionTimer = total
      ? setTimeout(() => {
          timedOut ??= "session";
          terminate("session timeout");
        }, total)
      : undefined;
    armIdle();
    const done = proc.result.then((r) => {
      clearTimeout(sessionTimer);
      clearTimeout(idleTimer);
      clearTimeout(killTimer);
      // nothing of the session may outlive it (jobs in groups of their own included)
      proc.killSession("SIGKILL");
      this.release();
      this.deps.audit.finish(id, {
        endedAt: Date.now(),
        exitCode: r.exitCode,
        signal: r.signal,
        bytesIn,
        bytesOut,
        error: timedOut ? `${timedOut} timeout` : null,
      });
      this.metrics?.bytes.inc({ direction: "in" }, bytesIn);
      this.metrics?.bytes.inc({ direction: "out" }, bytesOut);
      this.metrics?.total.inc({ endpoint: info.endpoint, result: r.exitCode === 0 ? "ok" : "error" });
      log.debug({ exitCode: r.exitCode, signal: r.signal, timedOut }, "session end");
      return { ...r, timedOut };
    });
    return {
      id,
      proc,
      done,
      input(n) {
        bytesIn += n;
        armIdle();
      },
      abort(reason) {
        terminate(reason);
      },
    };
  }
}
