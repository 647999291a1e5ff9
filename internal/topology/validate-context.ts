/**
 * What the checks of validate.ts share: the parsed topology, the issues found so far, and what
 * earlier checks parsed for later ones (cluster CIDRs, global maps, underlay addresses, ...).
 */
import { type AddressFamily, type Cidr, tryParseCidr } from "./cidr.ts";
import type { IpFamily, Topology } from "./model.ts";

export interface TopologyIssue {
  /** Path of the offending field, e.g. `clusters[1].podCIDRs[0]` or `nodes[3].ipv4`. */
  path: string;
  message: string;
}

export function familiesOf(ipFamily: IpFamily): AddressFamily[] {
  return ipFamily === "ipv4" ? [4] : ipFamily === "ipv6" ? [6] : [4, 6];
}

export const famName = (f: AddressFamily) => (f === 4 ? "IPv4" : "IPv6");

export interface LabeledCidr {
  cidr: Cidr;
  path: string;
  /** Cluster index owning it (-1: none). */
  cluster: number;
  kind: "pod" | "service";
}

export interface GlobalEntry {
  key: Cidr;
  value: Cidr;
  path: string;
}

/** A node's pod CIDR (node index, index in its podCIDRs). */
export interface NodePod {
  c: Cidr;
  ni: number;
  j: number;
}

export interface Checks {
  topo: Topology;
  issues: TopologyIssue[];
  // Filled by the cluster checks.
  clusterIndex: Map<string, number>;
  /** Valid pod and service CIDRs of every cluster. */
  clusterCidrs: LabeledCidr[];
  /** Valid global CIDR maps per cluster index. */
  globals: GlobalEntry[][];
  bridgeOf: Array<Partial<Record<AddressFamily, Cidr>>>;
  localOf: Array<Partial<Record<AddressFamily, Cidr>>>;
  podOf: Cidr[][];
  /** Bridge and local CIDRs (no pod, service or global CIDR may overlap them). */
  reserved: Array<{ cidr: Cidr; path: string }>;
  // Filled by the node checks.
  nodeIndex: Map<string, number>;
  /** Valid underlay addresses per node index. */
  underlay: Array<Partial<Record<AddressFamily, bigint>>>;
  candidates: Map<number, number>;
  nodeCounts: Map<number, number>;
  allUnderlay: Array<{ value: bigint; family: AddressFamily; ni: number }>;
  /** Node pod CIDRs per `${cluster index}/${family}`. */
  nodePods: Map<string, NodePod[]>;
}

export function newChecks(topo: Topology): Checks {
  return {
    topo,
    issues: [],
    clusterIndex: new Map(),
    clusterCidrs: [],
    globals: [],
    bridgeOf: [],
    localOf: [],
    podOf: [],
    reserved: [],
    nodeIndex: new Map(),
    underlay: [],
    candidates: new Map(),
    nodeCounts: new Map(),
    allUnderlay: [],
    nodePods: new Map(),
  };
}

export function add(st: Checks, path: string, message: string): void {
  st.issues.push({ path, message });
}

/**
 * Parse a CIDR, recording an issue when it is invalid or (with `fams`) of a family the cluster does
 * not use. `path` may be lazy: hot loops over 100k nodes should not build strings for valid fields.
 */
export function parseCidrAt(
  st: Checks,
  s: string,
  pathOrFn: string | (() => string),
  fams: AddressFamily[] | undefined,
  what: string,
): Cidr | undefined {
  const c = tryParseCidr(s);
  const path = () => (typeof pathOrFn === "string" ? pathOrFn : pathOrFn());
  if (!c) {
    add(st, path(), `${JSON.stringify(s)} is not a valid CIDR (expected e.g. 10.244.0.0/16 or fd10:1::/48)`);
    return undefined;
  }
  if (fams && !fams.includes(c.family)) {
    add(
      st,
      path(),
      `${what} ${c.text} is ${famName(c.family)} but the cluster's ipFamily does not include it`,
    );
    return undefined;
  }
  return c;
}
