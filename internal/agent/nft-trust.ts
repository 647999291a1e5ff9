/**
 * When a periodic resync may skip listing the nft table (pure bookkeeping; loop.ts uses it).
 *
 * A resync exists to repair tampering the kernel watcher did not report. For the nft table the
 * watcher's `nft monitor` reports every change to `table inet kosmos`, and listing the table is the
 * dearest part of a resync (about 0.7 s of CPU at 1,000 imports, every 10 s). So a resync takes the
 * table as last verified (Reconciler `trustNft`) when all of these hold:
 * - the same `nft monitor` process has run since before the last full listing, with a second to
 *   subscribe before it (a monitor started later may have missed a change in between);
 * - no nft event was ignored since that listing (events during or just after a pass are taken as
 *   the pass's own and ignored: they might have been someone else's);
 * - fewer than FULL_NFT_EVERY - 1 resyncs in a row trusted it: every FULL_NFT_EVERY-th resync lists
 *   the table anyway (the safety net under the safety net).
 * Any other pass (start, API, kernel event) lists the table as before.
 */

/** Every this many resyncs, one lists the nft table whatever the monitor says. */
export const FULL_NFT_EVERY = 6;
/** A monitor started less than this before a listing may not have subscribed when it ran. */
export const SUBSCRIBE_GRACE_MS = 1000;

export class NftTrust {
  /** The monitor's start time (KernelWatcher.since) when the last full listing began, and when that was. */
  private listed: { monitorSince: number | undefined; at: number } | undefined;
  private trustedInARow = 0;
  private doubt = false;

  /** Whether this pass may take the table as last verified. `monitorSince`: the watcher's since("nft"). */
  decide(reason: string, monitorSince: number | undefined): boolean {
    const l = this.listed;
    if (reason !== "resync" || this.doubt || !l || monitorSince === undefined) return false;
    if (l.monitorSince !== monitorSince) return false; // restarted (or replaced) since the listing
    if (l.at - monitorSince < SUBSCRIBE_GRACE_MS) return false;
    return this.trustedInARow < FULL_NFT_EVERY - 1;
  }

  /** A pass read the kernel: `nftRead` as the reconciler reported it, `startedAt` when the pass began. */
  record(
    nftRead: "listed" | "trusted" | "memory" | undefined,
    monitorSince: number | undefined,
    startedAt: number,
  ): void {
    if (nftRead === "listed") {
      this.listed = { monitorSince, at: startedAt };
      this.trustedInARow = 0;
      this.doubt = false;
    } else if (nftRead === "trusted") this.trustedInARow++;
  }

  /** An nft event the loop ignored (it came during or just after a pass): list at the next resync. */
  ignoredEvent(): void {
    this.doubt = true;
  }
}
