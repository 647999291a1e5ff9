/**
 * The agent's control loop: replica snapshot -> plan (pure) -> reconcile (kernel).
 * Triggered by replica changes (debounced), membership changes, kernel events about objects the
 * agent owns (tamper repair at once; see internal/dataplane/watch.ts) and a periodic resync (the
 * safety net); runs are serialized, and a trigger during a run schedules exactly one more run.
 */
import { createHash } from "node:crypto";
import type { Capabilities, KernelEvent, ReconcileReport, Reconciler } from "../dataplane/index.ts";
import { Counter, Gauge, Histogram, type Logger, type Registry } from "../observability/index.ts";
import { type HostState, PlanError, plan } from "../planner/index.ts";
import { NftTrust } from "./nft-trust.ts";
import type { Store } from "../store/index.ts";
import type { MemberState } from "../topology/index.ts";

export interface LoopStatus {
  /** A plan was reconciled with no residual changes at least once since start. */
  applied: boolean;
  lastRunAt?: number;
  lastError?: string;
  lastReport?: ReconcileReport;
  plan?: HostState;
  planHash?: string;
  /** Why there is nothing to apply (e.g. this node is not in the topology yet). */
  waiting?: string;
  runs: number;
  /** Kernel events about owned objects received / passes they triggered. */
  kernelEvents: number;
  kernelPasses: number;
}

/** What the loop needs of a kernel watcher (internal/dataplane/watch.ts KernelWatcher). */
export interface KernelWatch {
  start(): void;
  stop(): Promise<void>;
  /** When the running monitor of a source started (see NftTrust); undefined: none runs, or unknown. */
  since?(source: "nft"): number | undefined;
}

export interface LoopDeps {
  node: string;
  store: Store;
  reconciler: Reconciler;
  capabilities: Capabilities;
  logger: Logger;
  registry: Registry;
  members: () => Record<string, MemberState>;
  /** Gateway claims from the replica (node_status rows). */
  gatewayClaims?: () => Array<{ node: string; cluster: string; since: number }>;
  /** Called after every successful reconcile with the plan (the agent publishes its gateway claim). */
  onApplied?: (plan: HostState) => void;
  /** Liveness for elections (default: members). */
  electionMembers?: () => Record<string, MemberState>;
  ipsecSecret?: Uint8Array;
  debounceMs: number;
  resyncMs: number;
  /**
   * Builds the kernel watcher (given the loop's event handler); none: tampering waits for the
   * resync. Started with the loop, stopped (children killed) with it.
   */
  kernelWatch?: (onEvent: (ev: KernelEvent) => void) => KernelWatch;
  /** Debounce of kernel events (a burst, e.g. a device deleted with its routes, is one pass). */
  kernelDebounceMs?: number;
  /**
   * Kernel events arriving while a pass runs, or within this long after it, are the pass's own
   * changes (or are repaired by it) and are ignored.
   */
  kernelQuietMs?: number;
  /** At most one kernel-triggered pass per this interval (a bound, should anything keep flapping). */
  kernelMinIntervalMs?: number;
  now?: () => number;
}

/** Pass reasons that reconcile even when the plan is unchanged (tamper repair, explicit requests). */
const ALWAYS_RECONCILE = new Set(["start", "resync", "api", "kernel"]);

export function hashPlan(p: HostState): string {
  return createHash("sha256").update(JSON.stringify(p)).digest("hex").slice(0, 16);
}

/**
 * The plan without its IPsec keys: as stored on disk (keys are re-derived at start, never written)
 * and as served on /v1/plan.
 */
export function redactPlanKeys(p: HostState): HostState {
  return {
    ...p,
    xfrm: { ...p.xfrm, states: p.xfrm.states.map((s) => ({ ...s, aeadKeyHex: "<derived>" })) },
  };
}

export class ControlLoop {
  readonly status: LoopStatus = { applied: false, runs: 0, kernelEvents: 0, kernelPasses: 0 };
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Reason of the pending timer (an always-reconcile trigger upgrades a pending event pass). */
  private timerReason = "";
  private againReason: string | undefined;
  /** A plan was applied (no residual) at least once: only then do kernel events trigger passes. */
  private everApplied = false;
  /** performance.now() until which kernel events are ignored (a pass runs or has just ended). */
  private quietUntil = 0;
  private lastKernelPass = Number.NEGATIVE_INFINITY;
  private watch: KernelWatch | undefined;
  private resync: ReturnType<typeof setInterval> | undefined;
  private running: Promise<void> | undefined;
  private halted = false;
  private gateways: Record<string, string> = {};
  private savedHash: string | undefined;
  /** Bumped on every replica change: the plan is a pure function of (replica, membership, claims, gateways). */
  private generation = 0;
  private unsubscribe: (() => void) | undefined;
  /** The last plan and the inputs it was computed from (a resync with the same inputs reuses it). */
  private memo: { key: string; desired: HostState; hash: string } | undefined;
  private readonly m;
  /** Whether a resync may skip listing the nft table (nft-trust.ts). */
  private readonly nftTrust = new NftTrust();

  constructor(private readonly deps: LoopDeps) {
    this.unsubscribe = deps.store.onChange(() => {
      this.generation++;
    });
    const r = deps.registry;
    this.m = {
      runs: new Counter({
        name: "kosmos_reconcile_total",
        help: "Reconcile runs by result",
        labelNames: ["result"],
        registers: [r],
      }),
      duration: new Histogram({
        name: "kosmos_reconcile_duration_seconds",
        help: "Plan + reconcile duration",
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
        registers: [r],
      }),
      changes: new Counter({
        name: "kosmos_reconcile_changes_total",
        help: "Kernel changes applied",
        registers: [r],
      }),
      errors: new Counter({
        name: "kosmos_reconcile_errors_total",
        help: "Failed kernel commands",
        registers: [r],
      }),
      routes: new Gauge({ name: "kosmos_plan_routes", help: "Routes in the current plan", registers: [r] }),
      peers: new Gauge({
        name: "kosmos_plan_fdb_entries",
        help: "FDB entries in the current plan",
        registers: [r],
      }),
      applied: new Gauge({
        name: "kosmos_topology_applied",
        help: "1 when the current plan is applied",
        registers: [r],
      }),
      kernelEvents: new Counter({
        name: "kosmos_kernel_events_total",
        help: "Kernel events about objects the agent owns (tamper detection), by kind and whether they triggered a pass",
        labelNames: ["kind", "action"],
        registers: [r],
      }),
      kernelPasses: new Counter({
        name: "kosmos_kernel_event_passes_total",
        help: "Reconcile passes triggered by kernel events",
        registers: [r],
      }),
      nftReads: new Counter({
        name: "kosmos_reconcile_nft_reads_total",
        help: "How reconcile passes saw the nft table: listed (read), trusted (as last verified, nft monitor healthy), memory (from the last plan)",
        labelNames: ["how"],
        registers: [r],
      }),
      ipsec: new Gauge({
        name: "kosmos_ipsec_degraded",
        help: "1 when IPsec states could not be installed (policies are, traffic is blocked: fail closed)",
        registers: [r],
      }),
    };
  }

  start(): void {
    const last = this.deps.store.loadApplied();
    const g = (last?.plan as HostState | undefined)?.gateways;
    if (g) this.gateways = { ...g };
    this.savedHash = last?.planHash;
    this.trigger("start", 0);
    this.resync = setInterval(() => this.trigger("resync", 0), this.deps.resyncMs);
    if (this.deps.kernelWatch && !this.watch) {
      this.watch = this.deps.kernelWatch((ev) => this.kernelEvent(ev));
      this.watch.start();
    }
  }

  /**
   * A kernel event about an owned object: schedule a pass that reads the kernel (debounced), unless
   * nothing was ever applied (an unseeded agent touches nothing) or a pass is running or has just
   * ended (its own changes come back as events).
   */
  kernelEvent(ev: KernelEvent): void {
    if (this.halted) return;
    this.status.kernelEvents++;
    const t = performance.now();
    if (!this.kernelArmed) {
      this.m.kernelEvents.inc({ kind: ev.kind, action: "ignored" });
      if (ev.kind === "nft") this.nftTrust.ignoredEvent();
      return;
    }
    this.m.kernelEvents.inc({ kind: ev.kind, action: "triggered" });
    const debounce = this.deps.kernelDebounceMs ?? 150;
    const spacing = this.lastKernelPass + (this.deps.kernelMinIntervalMs ?? 500) - t;
    this.trigger("kernel", Math.max(debounce, spacing));
  }

  async stop(): Promise<void> {
    this.halted = true;
    this.unsubscribe?.();
    if (this.timer) clearTimeout(this.timer);
    if (this.resync) clearInterval(this.resync);
    await this.watch?.stop();
    this.watch = undefined;
    await this.running;
  }

  /** stop() was called (an uninstall stops the loop): nothing schedules passes any more. */
  get stopped(): boolean {
    return this.halted;
  }

  /**
   * No pass is running, scheduled or queued. With every kernel event up to now handled (tests: a
   * marker line of each monitor seen), nothing more runs until a new trigger.
   */
  get idle(): boolean {
    return this.timer === undefined && this.running === undefined && this.againReason === undefined;
  }

  /**
   * A kernel event about an owned object would schedule a pass now: a plan was applied, and no
   * pass runs or ended less than `kernelQuietMs` ago (events then are its own changes).
   */
  get kernelArmed(): boolean {
    return this.everApplied && !this.running && performance.now() >= this.quietUntil;
  }

  /** Schedule a run (debounced). */
  trigger(reason: string, delayMs = this.deps.debounceMs): void {
    if (this.halted) return;
    if (this.running) {
      // one more pass after this one; a reason that must read the kernel wins over a plain one
      this.againReason = ALWAYS_RECONCILE.has(reason) ? reason : (this.againReason ?? "coalesced");
      return;
    }
    if (this.timer) {
      if (ALWAYS_RECONCILE.has(reason)) this.timerReason = reason;
      return;
    }
    this.timerReason = reason;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.runNow(this.timerReason);
    }, delayMs);
  }

  /** Run one plan+reconcile pass now (serialized with any other). */
  async runNow(reason: string): Promise<LoopStatus> {
    while (this.running) await this.running;
    if (reason === "kernel") {
      this.status.kernelPasses++;
      this.m.kernelPasses.inc();
      this.lastKernelPass = performance.now();
    }
    this.running = this.pass(reason).finally(() => {
      this.running = undefined;
      this.quietUntil = performance.now() + (this.deps.kernelQuietMs ?? 250);
      const next = this.againReason;
      this.againReason = undefined;
      if (next !== undefined && !this.halted) {
        this.trigger(next);
      }
    });
    await this.running;
    return this.status;
  }

  private async pass(reason: string): Promise<void> {
    const { deps } = this;
    const now = deps.now ?? Date.now;
    const t0 = performance.now();
    this.status.runs++;
    this.status.lastRunAt = now();
    const planned = this.desiredPlan(reason);
    if (!planned) return;
    const { desired, hash } = planned;
    this.status.waiting = undefined;
    // Membership churn and gossip mostly leave this node's plan as it was: the kernel already holds
    // it (the last pass converged), so reading the kernel again would only compete for CPU with the
    // pass that matters (a gateway failover). Tampering is repaired by the kernel-event, resync and API passes,
    // which always reconcile.
    if (!ALWAYS_RECONCILE.has(reason) && this.status.applied && hash === this.status.planHash) {
      this.m.runs.inc({ result: "unchanged" });
      deps.onApplied?.(desired);
      return;
    }
    try {
      // Event passes diff against the last converged plan (one kernel read less before the change
      // lands: that read was most of a failover pass's time); start/resync/API passes read first.
      const monitorSince = this.watch?.since?.("nft");
      const startedAt = Date.now();
      const report = await deps.reconciler.reconcile(desired, {
        fromLast: !ALWAYS_RECONCILE.has(reason),
        trustNft: this.nftTrust.decide(reason, monitorSince),
      });
      this.nftTrust.record(report.nftRead, monitorSince, startedAt);
      if (report.nftRead) this.m.nftReads.inc({ how: report.nftRead });
      this.recordReport(reason, planned, report, { t0, now });
      deps.onApplied?.(desired);
    } catch (e) {
      this.status.lastError = (e as Error).message;
      this.m.runs.inc({ result: "error" });
      deps.logger.error({ err: e, reason }, "reconcile failed");
    } finally {
      this.m.duration.observe((performance.now() - t0) / 1000);
    }
  }

  /**
   * The plan for this pass and its hash (memoized while the inputs are unchanged); undefined when
   * there is none (this node not in the topology yet, or planning failed: status and metrics say so).
   */
  private desiredPlan(reason: string): { desired: HostState; hash: string } | undefined {
    const { deps } = this;
    const members = deps.members();
    const electionMembers = deps.electionMembers?.();
    const gatewayClaims = deps.gatewayClaims?.();
    // Periodic resyncs (tamper repair) mostly find the inputs unchanged: reuse the plan and its hash
    // instead of re-reading the replica and re-planning every peer (that garbage dominated an idle
    // agent's memory with 1,000 peers). Any replica change bumps the generation.
    const key = JSON.stringify([
      this.generation,
      members,
      electionMembers ?? null,
      gatewayClaims ?? null,
      this.gateways,
    ]);
    if (this.memo?.key === key) return this.memo;
    this.memo = undefined;
    let desired: HostState;
    try {
      desired = plan({
        topology: deps.store.snapshot(),
        self: deps.node,
        members,
        electionMembers,
        gatewayClaims,
        gateways: this.gateways,
        ipsecSecret: deps.ipsecSecret,
      });
    } catch (e) {
      if (e instanceof PlanError && e.code === "PLAN_SELF_UNKNOWN") {
        this.status.waiting = `node ${deps.node} is not in the topology yet (waiting for the controller or a peer)`;
        this.m.runs.inc({ result: "waiting" });
        return undefined;
      }
      this.status.lastError = (e as Error).message;
      this.m.runs.inc({ result: "plan_error" });
      deps.logger.error({ err: e, reason }, "planning failed; keeping the current kernel state");
      return undefined;
    }
    const hash = hashPlan(desired);
    this.memo = { key, desired, hash };
    return this.memo;
  }

  /** Record a reconcile's outcome: status, metrics, a log line, and the applied plan in the store. */
  private recordReport(
    reason: string,
    planned: { desired: HostState; hash: string },
    report: ReconcileReport,
    since: { t0: number; now: () => number },
  ): void {
    const { deps } = this;
    const { desired, hash } = planned;
    const { t0, now } = since;
    this.gateways = { ...desired.gateways };
    this.status.plan = desired;
    this.status.planHash = hash;
    this.status.lastReport = report;
    // IPsec states cannot be installed on kernels without ESP: that is reported (degraded, fail
    // closed), not counted as "not applied".
    const hard = report.errors.filter((e) => !e.change?.startsWith("xfrm"));
    this.status.applied = hard.length === 0 && (report.residual === 0 || report.ipsec.status === "degraded");
    if (this.status.applied) this.everApplied = true;
    this.status.lastError = report.errors.length ? report.errors.map((e) => e.message).join("; ") : undefined;
    this.m.changes.inc(report.changes);
    this.m.errors.inc(report.errors.length);
    this.m.routes.set(desired.routes.length);
    this.m.peers.set(desired.fdb.length);
    this.m.applied.set(this.status.applied ? 1 : 0);
    this.m.ipsec.set(report.ipsec.status === "degraded" ? 1 : 0);
    this.m.runs.inc({ result: report.errors.length ? "partial" : "ok" });
    if (report.changes > 0 || report.errors.length > 0) {
      deps.logger.info(
        {
          reason,
          changes: report.changes,
          residual: report.residual,
          errors: report.errors.length,
          ipsec: report.ipsec.status,
          ms: Math.round(performance.now() - t0),
        },
        "reconciled",
      );
    }
    // Persist whenever the plan differs from the stored one (not only when the kernel changed: a
    // replica rebuilt from peers finds the kernel already right, and a restart must still find
    // the last plan and its gateways).
    if (hash !== this.savedHash || report.changes > 0 || report.errors.length > 0) {
      deps.store.saveApplied({
        plan: redactPlanKeys(desired),
        planHash: hash,
        appliedAt: now(),
        report: {
          changes: report.changes,
          residual: report.residual,
          errors: report.errors,
          ipsec: report.ipsec,
        },
        capabilities: deps.capabilities,
      });
      this.savedHash = hash;
    }
  }
}
