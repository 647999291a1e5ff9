/**
 * Pure parts of the `mcs-lab` bench (test/bench/mcs-lab.ts): the address a backend pod must answer
 * with from each cluster, the line protocol of the per-node DNS pollers (mcs-lab-poller.ts), the
 * verdict on a poll's reply, and the figures from the trials.
 */
import * as dnsPacket from "dns-packet";
import { parseGlobals, reachableAddress } from "../../internal/mcs/index.ts";
import { type BenchResult, percentile } from "./lib.ts";

/**
 * The address of `podIp` (a pod of cluster `source`) in the answers of cluster `querying`: its own IP
 * in its own cluster, else translated through the source's global CIDRs when it maps them — what the
 * MCS controller writes into imported slices and each agent's zone computes (internal/dns/zone.ts).
 */
export function expectedAddress(
  podIp: string,
  source: string,
  querying: string,
  globalCIDRs: Record<string, Record<string, string>>,
): string {
  return querying === source ? podIp : reachableAddress(podIp, parseGlobals(globalCIDRs[source] ?? {}));
}

export type Want = "present" | "absent";
export type QType = "A" | "AAAA";

/** Parent → poller: poll `name` until `addr` is present in (or absent from) the NOERROR answer. */
export function watchLine(id: string, want: Want, qtype: QType, name: string, addr: string): string {
  return `watch ${id} ${want} ${qtype} ${name} ${addr}\n`;
}

export interface WatchCmd {
  id: string;
  want: Want;
  qtype: QType;
  name: string;
  addr: string;
}

export function parseWatch(line: string): WatchCmd | undefined {
  const m = /^watch (\S+) (present|absent) (A|AAAA) (\S+) (\S+)$/.exec(line.trim());
  return m ? { id: m[1]!, want: m[2] as Want, qtype: m[3] as QType, name: m[4]!, addr: m[5]! } : undefined;
}

/** Poller → parent: the condition held in the reply received at `atMs` (epoch ms, fractional). */
export interface Seen {
  id: string;
  atMs: number;
  polls: number;
}

export const seenLine = (s: Seen): string => `seen ${s.id} ${s.atMs.toFixed(3)} ${s.polls}\n`;

export function parseSeen(line: string): Seen | undefined {
  const m = /^seen (\S+) (\d+(?:\.\d+)?) (\d+)$/.exec(line.trim());
  return m ? { id: m[1]!, atMs: Number(m[2]), polls: Number(m[3]) } : undefined;
}

/** Whether a reply meets the watch: NOERROR, and `addr` among (present) or not among (absent) the answers. */
export function replyMeets(reply: Buffer, w: Pick<WatchCmd, "want" | "qtype" | "addr">): boolean {
  let p: dnsPacket.DecodedPacket;
  try {
    p = dnsPacket.decode(reply);
  } catch {
    return false;
  }
  const rcode = (p as dnsPacket.DecodedPacket & { rcode?: string }).rcode ?? "NOERROR";
  if (p.type !== "response" || rcode !== "NOERROR") return false;
  const has = (p.answers ?? []).some((a) => a.type === w.qtype && String(a.data) === w.addr);
  return w.want === "present" ? has : !has;
}

/** One trial: a backend pod became Ready in `source`; when each observer saw its address (epoch ms). */
export interface Trial {
  source: string;
  readyAtMs: number;
  /** The source cluster's own EndpointSlice listing the address ready (Kubernetes' local propagation). */
  localSliceAtMs?: number;
  /** Every other cluster: the imported EndpointSlice listing it ready (the MCS controller). */
  importedAtMs: Record<string, number | undefined>;
  /** Every node's agent DNS answering it. */
  dnsAtMs: Record<string, number | undefined>;
  /** Pod deleted → gone from every node's answer (epoch ms of the delete, and per node). */
  deletedAtMs?: number;
  goneAtMs: Record<string, number | undefined>;
}

/** The latest of `times` after `from` (ms), or NaN when any is missing (the trial missed). */
export function lastAfter(from: number, times: Array<number | undefined>): number {
  if (times.length === 0 || times.some((t) => t === undefined)) return Number.NaN;
  return Math.max(...(times as number[])) - from;
}

const finite = (xs: number[]): number[] => xs.filter((x) => Number.isFinite(x));

/** The figures of the bench from its trials (`nodes`: how many agents answered per trial). */
export function summarize(trials: Trial[], nodes: number): BenchResult[] {
  const all = finite(trials.map((t) => lastAfter(t.readyAtMs, Object.values(t.dnsAtMs))));
  const local = finite(trials.map((t) => (t.localSliceAtMs ?? Number.NaN) - t.readyAtMs));
  const imported = finite(trials.map((t) => lastAfter(t.readyAtMs, Object.values(t.importedAtMs))));
  const perNode = finite(
    trials.flatMap((t) => Object.values(t.dnsAtMs).map((x) => (x ?? Number.NaN) - t.readyAtMs)),
  );
  const gone = finite(
    trials.map((t) =>
      t.deletedAtMs === undefined ? Number.NaN : lastAfter(t.deletedAtMs, Object.values(t.goneAtMs)),
    ),
  );
  const missed = trials.length - all.length;
  const out: BenchResult[] = [];
  for (const q of [50, 99]) {
    out.push({
      name: `Ready → address answering from every node (${nodes} agents, 3 clusters), p${q} over ${all.length} trials`,
      value: percentile(all, q),
      unit: "ms",
      baseline: { name: "Ready → own cluster's EndpointSlice", value: percentile(local, q) },
    });
  }
  out.push(
    {
      name: "  Ready → imported EndpointSlice in both other clusters, p99",
      value: percentile(imported, 99),
      unit: "ms",
    },
    { name: "  per node: Ready → its agent answers, p99", value: percentile(perNode, 99), unit: "ms" },
    { name: "pod deleted → address gone from every node, p99", value: percentile(gone, 99), unit: "ms" },
    { name: "trials that missed a node or a slice (timeout)", value: missed, unit: "" },
  );
  return out;
}

/** One agent's failure-detector counters and event-loop lag, from its /metrics text. */
export interface DetectorFigures {
  probes: number;
  failed: number;
  suspicions: number;
  refutations: number;
  deaths: number;
  lagP99Ms: number;
}

export function detectorFigures(metrics: string): DetectorFigures {
  const v = (name: string): number => {
    const m = new RegExp(`^${name} ([0-9.e+-]+)$`, "m").exec(metrics);
    return m ? Number(m[1]) : Number.NaN;
  };
  return {
    probes: v("kosmos_gossip_probes_total"),
    failed: v("kosmos_gossip_probes_failed_total"),
    suspicions: v("kosmos_gossip_suspicions_total"),
    refutations: v("kosmos_gossip_refutations_total"),
    deaths: v("kosmos_gossip_deaths_declared_total"),
    lagP99Ms: v("kosmos_nodejs_eventloop_lag_p99_seconds") * 1000,
  };
}
