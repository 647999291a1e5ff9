/**
 * Resource arithmetic for virtual-node capacity: Kubernetes quantities parsed into exact milli-units
 * (bigint, so `8Gi` and `250m` add and subtract without rounding), pod requests by the kubelet's rule,
 * and upstream's aggregation formula (clustertree.md §1.6). Pure.
 */
import type { NodeObject, PodObject, Quantities } from "./types.ts";

const BINARY: Record<string, bigint> = {
  Ki: 1n << 10n,
  Mi: 1n << 20n,
  Gi: 1n << 30n,
  Ti: 1n << 40n,
  Pi: 1n << 50n,
  Ei: 1n << 60n,
};
const DECIMAL: Record<string, number> = { n: -9, u: -6, m: -3, "": 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/** A quantity in milli-units (`1` → 1000n, `250m` → 250n, `1Ki` → 1024000n); throws on nonsense. */
export function parseQuantity(q: string): bigint {
  const m = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei)|([eE][+-]?\d+)|(n|u|m|k|M|G|T|P|E)?)$/.exec(
    q.trim(),
  );
  if (!m) throw new Error(`not a quantity: ${JSON.stringify(q)}`);
  const [, sign, num, bin, exp, dec] = m;
  const [int, frac = ""] = num!.split(".");
  // value = digits × 10^(-frac.length) × multiplier, in milli-units: shift by 3.
  let digits = BigInt((int || "0") + frac);
  let pow10 = 3 - frac.length;
  let mult = 1n;
  if (bin) mult = BINARY[bin]!;
  else if (exp) pow10 += Number(exp.slice(1));
  else pow10 += DECIMAL[dec ?? ""]!;
  digits *= mult;
  const v = pow10 >= 0 ? digits * 10n ** BigInt(pow10) : ceilDiv(digits, 10n ** BigInt(-pow10));
  return sign === "-" ? -v : v;
}

const ceilDiv = (a: bigint, b: bigint): bigint => (a + b - 1n) / b;

/** Milli-units back to a quantity string: whole numbers plain, fractions in `m`. */
export function formatQuantity(milli: bigint): string {
  return milli % 1000n === 0n ? String(milli / 1000n) : `${milli}m`;
}

export type ResourceList = Map<string, bigint>;

export function toList(q: Quantities | undefined): ResourceList {
  const out: ResourceList = new Map();
  for (const [k, v] of Object.entries(q ?? {})) {
    try {
      out.set(k, parseQuantity(v));
    } catch {
      // an unparsable quantity counts as absent rather than poisoning the whole sum
    }
  }
  return out;
}

export function fromList(l: ResourceList): Quantities {
  return Object.fromEntries(
    [...l].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, formatQuantity(v)]),
  );
}

function addInto(into: ResourceList, l: ResourceList): void {
  for (const [k, v] of l) into.set(k, (into.get(k) ?? 0n) + v);
}

/** A pod's effective requests: max(sum of containers, each init container) + overhead (kubelet's rule). */
export function podRequests(p: PodObject): ResourceList {
  const sum: ResourceList = new Map();
  for (const c of p.spec.containers ?? []) addInto(sum, toList(c.resources?.requests));
  for (const c of p.spec.initContainers ?? []) {
    for (const [k, v] of toList(c.resources?.requests)) if (v > (sum.get(k) ?? 0n)) sum.set(k, v);
  }
  addInto(sum, toList(p.spec.overhead));
  return sum;
}

export const isReady = (n: NodeObject): boolean =>
  n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

/** A leaf node that can take pods: Ready and not cordoned. */
export const isAvailable = (n: NodeObject): boolean => !n.spec?.unschedulable && isReady(n);

export const isKosmosPod = (p: PodObject, podLabel: string): boolean =>
  p.metadata.labels?.[podLabel] === "true";

/**
 * Capacity of a virtual node standing for `nodes`: the allocatable of the available ones, minus the
 * requests (and the pod count) of the Running pods on them that Kosmos did not put there — Kosmos'
 * own leaf pods are already counted by the root scheduler against the virtual node. Subtraction
 * applies only to resources the nodes have. Pods on nodes outside `nodes` never count (upstream
 * counted every pod of the cluster in party mode: clustertree.md quirk 4, fixed).
 */
export function aggregate(
  nodes: NodeObject[],
  podsByNode: (node: string) => PodObject[],
  podLabel: string,
): Quantities {
  const base: ResourceList = new Map();
  let podsUsed = 0n;
  const used: ResourceList = new Map();
  for (const n of nodes) {
    if (!isAvailable(n)) continue;
    addInto(base, toList(n.status?.allocatable));
    for (const p of podsByNode(n.metadata.name)) {
      if (p.status?.phase !== "Running" || isKosmosPod(p, podLabel)) continue;
      addInto(used, podRequests(p));
      podsUsed += 1000n;
    }
  }
  used.set("pods", (used.get("pods") ?? 0n) + podsUsed);
  for (const [k, v] of used) {
    const b = base.get(k);
    if (b === undefined) continue;
    base.set(k, b - v > 0n ? b - v : 0n);
  }
  return fromList(base);
}
