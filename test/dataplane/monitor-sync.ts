/**
 * Synchronising tests with a KernelWatcher's monitors without sleeps. A `MonitorTap` receives every
 * line the monitors print (KernelWatcher's `onLine`). `syncMonitors` makes a foreign change that
 * each monitor reports (a veth with an FDB entry, an nft table, an xfrm policy without reqid: none
 * of them owned, so none is a kernel event) and waits until each monitor has printed its marker
 * line. Once it returns, every monitor is subscribed, and every line about a change made before
 * the call has been read and classified (a monitor prints in kernel order).
 */
import type { MonitorSource } from "../../internal/dataplane/watch.ts";
import type { Netns } from "../helpers/netns.ts";

interface Waiter {
  source: MonitorSource;
  needle: string;
  resolve: (seen: boolean) => void;
}

export class MonitorTap {
  private readonly waiters = new Set<Waiter>();
  /** Every line seen, per source (tests assert that a foreign change was seen and ignored). */
  readonly lines: Record<MonitorSource, string[]> = { ip: [], bridge: [], nft: [], xfrm: [] };

  readonly onLine = (source: MonitorSource, line: string): void => {
    this.lines[source].push(line);
    for (const w of this.waiters) {
      if (w.source === source && line.includes(w.needle)) {
        this.waiters.delete(w);
        w.resolve(true);
      }
    }
  };

  saw(source: MonitorSource, needle: string): boolean {
    return this.lines[source].some((l) => l.includes(needle));
  }

  /** Resolves true once `source` prints a line containing `needle`, false after `ms`. */
  next(source: MonitorSource, needle: string, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const w: Waiter = {
        source,
        needle,
        resolve: (seen) => {
          clearTimeout(t);
          resolve(seen);
        },
      };
      const t = setTimeout(() => {
        this.waiters.delete(w);
        resolve(false);
      }, ms);
      this.waiters.add(w);
    });
  }
}

export const ALL_MONITORS: MonitorSource[] = ["ip", "bridge", "nft", "xfrm"];

let markers = 0;

/** The commands that make `source` print a line containing the returned needle. */
function marker(source: MonitorSource, id: string, n: number): { script: string; needle: string } {
  switch (source) {
    case "ip":
      return { script: `ip link add ${id} type veth peer name ${id}p; ip link del ${id}`, needle: id };
    case "bridge":
      return {
        script: `ip link add ${id}b type veth peer name ${id}q; bridge fdb add 02:00:00:00:00:01 dev ${id}b; ip link del ${id}b`,
        needle: `dev ${id}b`,
      };
    case "nft":
      return { script: `nft add table inet ${id}; nft delete table inet ${id}`, needle: `table inet ${id}` };
    case "xfrm": {
      const sel = `src 10.254.${(n >> 8) & 255}.${n & 255}/32 dst 10.253.0.1/32`;
      return {
        script: `ip xfrm policy add ${sel} dir out; ip xfrm policy delete ${sel} dir out`,
        needle: sel,
      };
    }
  }
}

/**
 * Wait until each monitor of `sources` has printed a marker line made now (retrying with a new
 * marker every `retryMs` while a monitor is not subscribed yet), or throw after `timeoutMs`.
 */
export async function syncMonitors(
  ns: Netns,
  tap: MonitorTap,
  sources: MonitorSource[] = ALL_MONITORS,
  { retryMs = 1000, timeoutMs = 20_000 } = {},
): Promise<void> {
  const pending = new Set(sources);
  const end = Date.now() + timeoutMs;
  while (pending.size > 0 && Date.now() < end) {
    const n = markers++;
    const id = `ktmk${process.pid.toString(36)}${n.toString(36)}`; // ≤ 12 characters with its suffix
    const marks = [...pending].map((source) => ({ source, ...marker(source, id, n) }));
    const seen = marks.map((m) =>
      tap.next(m.source, m.needle, retryMs).then((ok) => {
        if (ok) pending.delete(m.source);
      }),
    );
    await ns.sh(marks.map((m) => m.script).join("\n"));
    await Promise.all(seen);
  }
  if (pending.size > 0) throw new Error(`monitors ${[...pending].join(", ")} printed no marker line`);
}
