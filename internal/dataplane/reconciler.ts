import type { Logger } from "../observability/index.ts";
import type { HostState } from "./hoststate.ts";
import { apply } from "./apply.ts";
import { actualOf, conflicts, diff, uninstallChanges } from "./diff.ts";
import { readActual, readOptionsFor } from "./read.ts";
import type { Runner } from "../sys/index.ts";
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
export interface ReconcileOptions {
  /**
   * Diff against the plan of the last pass that converged (verified, no errors, no residual)
   * instead of reading the kernel first: an event-driven pass (membership, gossip) then applies
   * its changes one kernel read earlier. Changes are still verified by a read afterwards; without
   * a converged pass to start from, the kernel is read. Tampering in between is not seen (the
   * periodic resync, which reads, repairs it).
   */
  fromLast?: boolean;
  /**
   * The caller knows the nft table is unchanged since the last verified read (a healthy `nft
   * monitor` reported nothing about it; internal/agent/nft-trust.ts): the plan's read takes it as
   * that listing instead of listing it (at 1,000 imports the listing costs about 0.7 s of CPU).
   * Only honoured when the last pass converged; everything else is read as usual.
   */
  trustNft?: boolean;
}

export class Reconciler {
  /** The plan the kernel was last verified to hold (cleared by any doubt). */
  private converged: HostState | undefined;
  private nftListing: string | undefined;
  private nftHash: string | undefined;
  private readonly sysctlSkip = new Set<string>();
  private readonly now: () => number;

  constructor(private readonly opts: ReconcilerOptions) {
    this.now = opts.now ?? (() => performance.now());
  }

  /** Changes needed to reach `desired` (no side effects besides reading). */
  async plan(
    desired: HostState,
    opts: { nft?: ActualState["nft"] } = {},
  ): Promise<{ actual: ActualState; changes: Change[] }> {
    const actual = await readActual(this.opts.runner, { ...readOptionsFor(desired), nft: opts.nft });
    const memoListing =
      actual.nft.hash !== undefined && actual.nft.hash === this.nftHash ? this.nftListing : undefined;
    const changes = diff(desired, actual, {
      ...(memoListing !== undefined ? { nftListing: memoListing } : {}),
      sysctlSkip: this.sysctlSkip,
    });
    return { actual, changes };
  }

  async reconcile(desired: HostState, opts: ReconcileOptions = {}): Promise<ReconcileReport> {
    const t0 = this.now();
    const last = opts.fromLast ? this.converged : undefined;
    const trusted = !last && opts.trustNft === true ? this.trustedNft() : undefined;
    const trust = trusted !== undefined;
    const { actual, changes } = last
      ? this.planFrom(last, desired)
      : await this.plan(desired, { nft: trusted });
    const tRead = this.now();
    if (!last && !trust) this.adoptReference(actual, changes);
    const verify = changes.length > 0 && this.opts.verify !== false;
    // the verifying read lists the nft table anyway: no separate read-back after the apply
    const report = await apply(this.opts.runner, changes, { now: this.now, readBackNft: !verify });
    const tApply = this.now();
    this.remember(changes, report.nftListing);
    for (const s of report.sysctlSkipped) this.sysctlSkip.add(s.key);
    let residual = 0;
    let after = actual;
    if (verify) {
      const again = await this.plan(desired);
      residual = again.changes.length;
      after = again.actual;
      const nft = again.actual.nft;
      this.remember(changes, nft.present ? nft.listing : undefined, nft.hash ?? "");
    }
    if (desired.xfrm.states.length > 0 && report.ipsec.status === "unused") {
      report.ipsec = { status: after.xfrm.states.length >= desired.xfrm.states.length ? "ok" : "degraded" };
    }
    const tEnd = this.now();
    const out: ReconcileReport = {
      ...report,
      changes: changes.length,
      residual,
      conflicts: conflicts(desired, actual),
      durationMs: tEnd - t0,
      phasesMs: { plan: tRead - t0, apply: tApply - tRead, verify: tEnd - tApply },
      nftRead: last ? "memory" : trust ? "trusted" : "listed",
    };
    // What the kernel holds now, as far as this pass knows: `desired` when it read (or verified)
    // the kernel and found nothing left to do; unchanged after a no-op pass from memory.
    const clean = out.errors.length === 0 && residual === 0 && out.conflicts.length === 0;
    if (changes.length > 0) this.converged = verify && clean ? desired : undefined;
    else if (!last) this.converged = clean ? desired : undefined;
    if (changes.length > 0 || out.errors.length > 0) {
      this.opts.logger?.info(
        {
          from: last ? "last plan" : "kernel",
          counts: out.counts,
          errors: out.errors,
          residual,
          ipsec: out.ipsec,
          durationMs: out.durationMs,
          // read + diff, apply (the kernel has the change from here), verify (re-read)
          phasesMs: [tRead - t0, tApply - tRead, tEnd - tApply].map((x) => Math.round(x)),
          nftRead: out.nftRead,
        },
        "dataplane reconciled",
      );
    }
    return out;
  }

  /**
   * A table of the wanted hash that this reconciler never applied (it found it at start, after a
   * restart): its listing becomes the tamper reference, as one recorded after an apply would be.
   * Tampering before the restart is no more visible than without a reference (only the hash is).
   */
  private adoptReference(actual: ActualState, changes: Change[]): void {
    const nft = actual.nft;
    if (!nft.present || nft.hash === undefined || nft.hash === this.nftHash) return;
    if (changes.some((c) => c.kind === "nft-apply" || c.kind === "nft-delete")) return;
    this.nftListing = nft.listing;
    this.nftHash = nft.hash;
  }

  /** The nft table as last verified, when the last pass converged (what a trusted read takes). */
  private trustedNft(): ActualState["nft"] | undefined {
    if (!this.converged || this.nftListing === undefined || this.nftHash === undefined) return undefined;
    return { present: true, hash: this.nftHash, listing: this.nftListing };
  }

  /** Changes from the converged plan `last` to `desired` (no kernel read). */
  private planFrom(last: HostState, desired: HostState): { actual: ActualState; changes: Change[] } {
    const actual = actualOf(last, this.nftListing);
    return { actual, changes: diff(desired, actual, { sysctlSkip: this.sysctlSkip }) };
  }

  /** Remove everything Kosmos owns: devices, proto-75 routes, our rules, nft table, xfrm (reserved reqids). */
  async uninstall(opts: { reqids?: number[] } = {}): Promise<ApplyReport> {
    this.converged = undefined;
    const actual = await readActual(this.opts.runner, { reqids: opts.reqids ?? [] });
    const report = await apply(this.opts.runner, uninstallChanges(actual), { now: this.now });
    this.nftListing = undefined;
    this.nftHash = undefined;
    return report;
  }

  /**
   * The tamper check's reference after an nft-apply: the listing of the table just applied, from
   * apply's read-back or from the verifying read (`hash`: the hash that read found; another table
   * there is no reference).
   */
  private remember(changes: Change[], listing: string | undefined, hash?: string): void {
    const nft = changes.find((c) => c.kind === "nft-apply");
    if (nft?.kind !== "nft-apply" || listing === undefined) return;
    if (hash !== undefined && hash !== nft.hash) return;
    this.nftListing = listing;
    this.nftHash = nft.hash;
  }
}
