import type { Logger } from "../observability/index.ts";
import type { HostState } from "../planner/hoststate.ts";
import { apply } from "./apply.ts";
import { conflicts, diff, uninstallChanges } from "./diff.ts";
import { readActual, readOptionsFor } from "./read.ts";
import type { Runner } from "./runner.ts";
import type { ActualState, ApplyReport, Change, ReconcileReport } from "./types.ts";

export interface ReconcilerOptions {
  runner: Runner;
  logger?: Logger;
  now?: () => number;
  /** Re-read after applying to count residual changes (default true). */
  verify?: boolean;
}

/**
 * Read actual → diff → apply minimal batch → (verify). Idempotent; converges after a crash at any
 * point because every pass starts from what the kernel really holds.
 */
export class Reconciler {
  private nftListing: string | undefined;
  private nftHash: string | undefined;
  private readonly sysctlSkip = new Set<string>();
  private readonly now: () => number;

  constructor(private readonly opts: ReconcilerOptions) {
    this.now = opts.now ?? (() => performance.now());
  }

  /** Changes needed to reach `desired` (no side effects besides reading). */
  async plan(desired: HostState): Promise<{ actual: ActualState; changes: Change[] }> {
    const actual = await readActual(this.opts.runner, readOptionsFor(desired));
    const memoListing =
      actual.nft.hash !== undefined && actual.nft.hash === this.nftHash ? this.nftListing : undefined;
    const changes = diff(desired, actual, {
      ...(memoListing !== undefined ? { nftListing: memoListing } : {}),
      sysctlSkip: this.sysctlSkip,
    });
    return { actual, changes };
  }

  async reconcile(desired: HostState): Promise<ReconcileReport> {
    const t0 = this.now();
    const { actual, changes } = await this.plan(desired);
    const report = await apply(this.opts.runner, changes, { now: this.now });
    this.remember(report, changes);
    for (const s of report.sysctlSkipped) this.sysctlSkip.add(s.key);
    let residual = 0;
    let after = actual;
    if (changes.length > 0 && this.opts.verify !== false) {
      const again = await this.plan(desired);
      residual = again.changes.length;
      after = again.actual;
    }
    if (desired.xfrm.states.length > 0 && report.ipsec.status === "unused") {
      report.ipsec = { status: after.xfrm.states.length >= desired.xfrm.states.length ? "ok" : "degraded" };
    }
    const out: ReconcileReport = {
      ...report,
      changes: changes.length,
      residual,
      conflicts: conflicts(desired, actual),
      durationMs: this.now() - t0,
    };
    if (changes.length > 0 || out.errors.length > 0) {
      this.opts.logger?.info(
        { counts: out.counts, errors: out.errors, residual, ipsec: out.ipsec, durationMs: out.durationMs },
        "dataplane reconciled",
      );
    }
    return out;
  }

  /** Remove everything Kosmos owns: devices, proto-75 routes, our rules, nft table, xfrm (reserved reqids). */
  async uninstall(opts: { reqids?: number[] } = {}): Promise<ApplyReport> {
    const actual = await readActual(this.opts.runner, { reqids: opts.reqids ?? [] });
    const report = await apply(this.opts.runner, uninstallChanges(actual), { now: this.now });
    this.nftListing = undefined;
    this.nftHash = undefined;
    return report;
  }

  private remember(report: ApplyReport, changes: Change[]): void {
    const nft = changes.find((c) => c.kind === "nft-apply");
    if (nft && nft.kind === "nft-apply" && report.nftListing !== undefined) {
      this.nftListing = report.nftListing;
      this.nftHash = nft.hash;
    }
  }
}
