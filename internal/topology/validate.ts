/**
 * Semantic validation of a topology: shapes via the zod schemas of model.ts, then every rule the
 * planner relies on (CIDR syntax, overlaps, global CIDR maps, overlay address clashes, gateways).
 * Returns a canonical copy (CIDRs and IPs in canonical text, host bits cleared).
 */
import type { z } from "zod";
import {
  type AddressFamily,
  type Cidr,
  canonicalIp,
  cidrOverlaps,
  formatIp,
  overlayValue,
  tryParseCidr,
  tryParseIp,
} from "./cidr.ts";
import { type Cluster, type IpFamily, type Node, type Topology, TopologySchema } from "./model.ts";

export interface TopologyIssue {
  /** Path of the offending field, e.g. `clusters[1].podCIDRs[0]` or `nodes[3].ipv4`. */
  path: string;
  message: string;
}

export class TopologyError extends Error {
  readonly code = "TOPOLOGY_INVALID";
  readonly hint: string;
  constructor(readonly issues: TopologyIssue[]) {
    const shown = issues.slice(0, 5).map((i) => `${i.path}: ${i.message}`);
    const more = issues.length > 5 ? ` (and ${issues.length - 5} more)` : "";
    super(`invalid topology: ${shown.join("; ")}${more}`);
    this.name = "TopologyError";
    this.hint = "fix the fields named in `issues` (each path points into the topology document)";
  }
}

export function familiesOf(ipFamily: IpFamily): AddressFamily[] {
  return ipFamily === "ipv4" ? [4] : ipFamily === "ipv6" ? [6] : [4, 6];
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else if (typeof p === "string" && /^[A-Za-z_$][\w$]*$/.test(p)) out += out ? `.${p}` : p;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out || "(root)";
}

function zodIssues(error: z.ZodError): TopologyIssue[] {
  return error.issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
}

const famName = (f: AddressFamily) => (f === 4 ? "IPv4" : "IPv6");

interface LabeledCidr {
  cidr: Cidr;
  path: string;
  /** Cluster index owning it (-1: none). */
  cluster: number;
  kind: "pod" | "service";
}

/**
 * Parse and check a topology. Throws TopologyError listing every issue found (each with a path).
 */
export function validateTopology(input: unknown): Topology {
  const parsed = TopologySchema.safeParse(input);
  if (!parsed.success) throw new TopologyError(zodIssues(parsed.error));
  const topo = parsed.data;
  const issues: TopologyIssue[] = [];
  const add = (path: string, message: string) => issues.push({ path, message });

  const clusterIndex = new Map<string, number>();
  const clusterCidrs: LabeledCidr[] = [];
  /** Canonical global CIDRs per cluster: key -> value (parsed). */
  const globals: Array<Array<{ key: Cidr; value: Cidr; path: string }>> = [];
  const bridgeOf: Array<Partial<Record<AddressFamily, Cidr>>> = [];
  const localOf: Array<Partial<Record<AddressFamily, Cidr>>> = [];
  const podOf: Cidr[][] = [];
  const reserved: Array<{ cidr: Cidr; path: string }> = [];

  /** `path` may be lazy: hot loops over 100k nodes should not build strings for valid fields. */
  const parseCidrAt = (
    s: string,
    pathOrFn: string | (() => string),
    fams: AddressFamily[] | undefined,
    what: string,
  ) => {
    const c = tryParseCidr(s);
    const path = () => (typeof pathOrFn === "string" ? pathOrFn : pathOrFn());
    if (!c) {
      add(path(), `${JSON.stringify(s)} is not a valid CIDR (expected e.g. 10.244.0.0/16 or fd10:1::/48)`);
      return undefined;
    }
    if (fams && !fams.includes(c.family)) {
      add(path(), `${what} ${c.text} is ${famName(c.family)} but the cluster's ipFamily does not include it`);
      return undefined;
    }
    return c;
  };

  topo.clusters.forEach((c, ci) => {
    const p = `clusters[${ci}]`;
    if (clusterIndex.has(c.name)) {
      add(`${p}.name`, `duplicate cluster name "${c.name}" (also clusters[${clusterIndex.get(c.name)}])`);
    } else clusterIndex.set(c.name, ci);
    const fams = familiesOf(c.ipFamily);
    const pods: Cidr[] = [];
    c.podCIDRs.forEach((s, j) => {
      const x = parseCidrAt(s, `${p}.podCIDRs[${j}]`, fams, "pod CIDR");
      if (x) {
        pods.push(x);
        clusterCidrs.push({ cidr: x, path: `${p}.podCIDRs[${j}]`, cluster: ci, kind: "pod" });
      }
    });
    podOf.push(pods);
    const svcs: LabeledCidr[] = [];
    c.serviceCIDRs.forEach((s, j) => {
      const x = parseCidrAt(s, `${p}.serviceCIDRs[${j}]`, fams, "service CIDR");
      if (x) {
        const l: LabeledCidr = { cidr: x, path: `${p}.serviceCIDRs[${j}]`, cluster: ci, kind: "service" };
        svcs.push(l);
        clusterCidrs.push(l);
      }
    });
    for (const s of svcs) {
      for (const [j, pc] of pods.entries()) {
        if (cidrOverlaps(s.cidr, pc))
          add(s.path, `service CIDR ${s.cidr.text} overlaps ${p}.podCIDRs[${j}] ${pc.text}`);
      }
    }
    const b: Partial<Record<AddressFamily, Cidr>> = {};
    const l: Partial<Record<AddressFamily, Cidr>> = {};
    for (const [obj, name, out] of [
      [c.bridgeCIDRs, "bridgeCIDRs", b],
      [c.localCIDRs, "localCIDRs", l],
    ] as const) {
      for (const [key, fam] of [
        ["ip", 4],
        ["ip6", 6],
      ] as const) {
        const x = parseCidrAt(obj[key], `${p}.${name}.${key}`, undefined, name);
        if (!x) continue;
        if (x.family !== fam) {
          add(`${p}.${name}.${key}`, `${x.text} must be an ${famName(fam)} CIDR`);
          continue;
        }
        out[fam] = x;
        reserved.push({ cidr: x, path: `${p}.${name}.${key}` });
      }
    }
    for (const fam of [4, 6] as const) {
      const bx = b[fam];
      const lx = l[fam];
      if (bx && lx && cidrOverlaps(bx, lx)) {
        add(
          `${p}.localCIDRs.${fam === 4 ? "ip" : "ip6"}`,
          `local CIDR ${lx.text} overlaps bridge CIDR ${bx.text}`,
        );
      }
    }
    bridgeOf.push(b);
    localOf.push(l);
    // The bridge prefix is shared by all clusters: every node's vx-bridge must be on one subnet.
    const first = bridgeOf[0];
    if (ci > 0 && first) {
      for (const [key, fam] of [
        ["ip", 4],
        ["ip6", 6],
      ] as const) {
        const x = b[fam];
        const y = first[fam];
        if (x && y && x.text !== y.text) {
          add(
            `${p}.bridgeCIDRs.${key}`,
            `${x.text} differs from clusters[0].bridgeCIDRs.${key} ${y.text}; all clusters must share the bridge CIDR`,
          );
        }
      }
    }
  });

  // Pod/service vs bridge/local CIDRs.
  for (const lc of clusterCidrs) {
    for (const r of reserved) {
      if (cidrOverlaps(lc.cidr, r.cidr))
        add(lc.path, `${lc.kind} CIDR ${lc.cidr.text} overlaps ${r.path} ${r.cidr.text}`);
    }
  }

  // Global CIDR maps: keys, values, lengths.
  topo.clusters.forEach((c, ci) => {
    const p = `clusters[${ci}].globalCIDRs`;
    const own = clusterCidrs.filter((x) => x.cluster === ci);
    const list: Array<{ key: Cidr; value: Cidr; path: string }> = [];
    for (const [k, v] of Object.entries(c.globalCIDRs)) {
      const path = `${p}[${JSON.stringify(k)}]`;
      const key = tryParseCidr(k);
      if (!key) {
        add(path, `key ${JSON.stringify(k)} is not a valid CIDR`);
        continue;
      }
      if (!own.some((o) => o.cidr.text === key.text)) {
        add(path, `key ${key.text} is not one of the cluster's podCIDRs/serviceCIDRs`);
        continue;
      }
      const value = tryParseCidr(v);
      if (!value) {
        add(path, `value ${JSON.stringify(v)} is not a valid CIDR`);
        continue;
      }
      if (value.family !== key.family) {
        add(
          path,
          `global ${value.text} is ${famName(value.family)} but ${key.text} is ${famName(key.family)}`,
        );
        continue;
      }
      if (value.len !== key.len) {
        add(
          path,
          `global ${value.text} has prefix length /${value.len}; it must equal the local /${key.len}`,
        );
        continue;
      }
      list.push({ key, value, path });
    }
    globals.push(list);
  });
  const allGlobals = globals.flat();
  allGlobals.forEach((g, i) => {
    for (const lc of clusterCidrs) {
      if (cidrOverlaps(g.value, lc.cidr))
        add(g.path, `global ${g.value.text} overlaps ${lc.path} ${lc.cidr.text}`);
    }
    for (let j = i + 1; j < allGlobals.length; j++) {
      const o = allGlobals[j];
      if (o && cidrOverlaps(g.value, o.value))
        add(o.path, `global ${o.value.text} overlaps ${g.path} ${g.value.text}`);
    }
    const seen = new Set<string>();
    for (const r of reserved) {
      if (seen.has(r.cidr.text)) continue;
      seen.add(r.cidr.text);
      if (cidrOverlaps(g.value, r.cidr))
        add(g.path, `global ${g.value.text} overlaps ${r.path} ${r.cidr.text}`);
    }
  });

  // Overlaps between clusters: allowed only when one side maps its CIDR to a global CIDR.
  const mapped = (x: LabeledCidr) => (globals[x.cluster] ?? []).some((g) => g.key.text === x.cidr.text);
  for (let i = 0; i < clusterCidrs.length; i++) {
    const a = clusterCidrs[i] as LabeledCidr;
    for (let j = i + 1; j < clusterCidrs.length; j++) {
      const b = clusterCidrs[j] as LabeledCidr;
      if (a.cluster === b.cluster || !cidrOverlaps(a.cidr, b.cidr)) continue;
      if (mapped(a) || mapped(b)) continue;
      const bn = topo.clusters[b.cluster]?.name;
      add(
        b.path,
        `${b.kind} CIDR ${b.cidr.text} overlaps ${a.path} ${a.cidr.text} (cluster "${topo.clusters[a.cluster]?.name}") of cluster "${bn}"; map one of them in globalCIDRs`,
      );
    }
  }

  // Nodes.
  const nodeIndex = new Map<string, number>();
  const underlay: Array<Partial<Record<AddressFamily, bigint>>> = [];
  const candidates = new Map<number, number>();
  const nodeCounts = new Map<number, number>();
  const allUnderlay: Array<{ value: bigint; family: AddressFamily; ni: number }> = [];
  const nodePods = new Map<string, Array<{ c: Cidr; ni: number; j: number }>>();
  const podPath = (x: { ni: number; j: number }) => `nodes[${x.ni}].podCIDRs[${x.j}]`;
  topo.nodes.forEach((n, ni) => {
    const p = `nodes[${ni}]`;
    const addrs: Partial<Record<AddressFamily, bigint>> = {};
    underlay.push(addrs);
    if (nodeIndex.has(n.name))
      add(`${p}.name`, `duplicate node name "${n.name}" (also nodes[${nodeIndex.get(n.name)}])`);
    else nodeIndex.set(n.name, ni);
    const ci = clusterIndex.get(n.cluster);
    const cluster = ci === undefined ? undefined : topo.clusters[ci];
    if (ci === undefined || !cluster) {
      add(`${p}.cluster`, `unknown cluster "${n.cluster}"`);
      return;
    }
    nodeCounts.set(ci, (nodeCounts.get(ci) ?? 0) + 1);
    if (n.gatewayCandidate) candidates.set(ci, (candidates.get(ci) ?? 0) + 1);
    const fams = familiesOf(cluster.ipFamily);
    for (const [key, fam] of [
      ["ipv4", 4],
      ["ipv6", 6],
    ] as const) {
      const s = n[key];
      if (s === undefined) {
        if (fams.includes(fam))
          add(`${p}.${key}`, `required: cluster "${cluster.name}" is ${cluster.ipFamily}`);
        continue;
      }
      const ip = tryParseIp(s);
      if (!ip) add(`${p}.${key}`, `${JSON.stringify(s)} is not a valid IP address`);
      else if (ip.family !== fam) add(`${p}.${key}`, `${s} is not an ${famName(fam)} address`);
      else {
        addrs[fam] = ip.value;
        allUnderlay.push({ value: ip.value, family: fam, ni });
      }
    }
    n.podCIDRs.forEach((s, j) => {
      const path = () => `${p}.podCIDRs[${j}]`;
      const x = parseCidrAt(s, path, fams, "node pod CIDR");
      if (!x) return;
      const pods = podOf[ci] ?? [];
      if (!pods.some((pc) => pc.family === x.family && pc.base <= x.base && x.last <= pc.last)) {
        add(
          path(),
          `${x.text} is not inside any podCIDRs of cluster "${cluster.name}" (${pods.map((q) => q.text).join(", ") || "none"})`,
        );
        return;
      }
      const key = `${ci}/${x.family}`;
      let list = nodePods.get(key);
      if (!list) {
        list = [];
        nodePods.set(key, list);
      }
      list.push({ c: x, ni, j });
    });
    if (n.elasticIP !== undefined) {
      const ip = tryParseIp(n.elasticIP);
      if (!ip) add(`${p}.elasticIP`, `${JSON.stringify(n.elasticIP)} is not a valid IP address`);
      else if (!fams.includes(ip.family)) {
        add(
          `${p}.elasticIP`,
          `${n.elasticIP} is ${famName(ip.family)} but cluster "${cluster.name}" is ${cluster.ipFamily} (elasticIP family mismatch)`,
        );
      }
    }
  });

  // Node pod CIDRs of one cluster must not overlap each other (sort + sweep).
  for (const list of nodePods.values()) {
    list.sort((a, b) => (a.c.base < b.c.base ? -1 : a.c.base > b.c.base ? 1 : 0));
    let maxEnd = -1n;
    let maxAt: { c: Cidr; ni: number; j: number } | undefined;
    for (const x of list) {
      if (maxAt && x.c.base <= maxEnd)
        add(podPath(x), `${x.c.text} overlaps ${podPath(maxAt)} ${maxAt.c.text}`);
      if (x.c.last > maxEnd) {
        maxEnd = x.c.last;
        maxAt = x;
      }
    }
  }

  // Global CIDRs must not contain underlay addresses.
  if (allGlobals.length > 0) {
    for (const u of allUnderlay) {
      for (const g of allGlobals) {
        if (g.value.family === u.family && g.value.base <= u.value && u.value <= g.value.last) {
          add(
            g.path,
            `global ${g.value.text} contains the underlay address nodes[${u.ni}].${u.family === 4 ? "ipv4" : "ipv6"} ${formatIp(u.family, u.value)}`,
          );
        }
      }
    }
  }

  // Gateway clusters need a candidate (a gateway cluster with zero nodes is fine).
  topo.clusters.forEach((c, ci) => {
    if (c.networkType === "gateway" && (nodeCounts.get(ci) ?? 0) > 0 && !candidates.get(ci)) {
      add(
        `clusters[${ci}].networkType`,
        `gateway cluster "${c.name}" has nodes but no gatewayCandidate node`,
      );
    }
  });

  // Overlay address clashes: vx-bridge (shared prefix, nodes that may hold vx-bridge) and
  // vx-local (per gateway cluster).
  const checkClash = (
    seen: Map<bigint, number>,
    ni: number,
    fam: AddressFamily,
    prefix: Cidr,
    what: string,
  ) => {
    const v = underlay[ni]?.[fam];
    if (v === undefined) return;
    const o = overlayValue(v, prefix);
    const prev = seen.get(o);
    const key = fam === 4 ? "ipv4" : "ipv6";
    if (prev !== undefined) {
      add(
        `nodes[${ni}].${key}`,
        `node "${topo.nodes[ni]?.name}" and node "${topo.nodes[prev]?.name}" (nodes[${prev}].${key}) map to the same ${what} overlay address ${formatIp(fam, o)} under ${prefix.text}: the /${prefix.len} keeps only the low ${(fam === 4 ? 32 : 128) - prefix.len} bits of the underlay address`,
      );
    } else seen.set(o, ni);
  };
  for (const fam of [4, 6] as const) {
    const bridge = bridgeOf[0]?.[fam];
    if (bridge) {
      const seen = new Map<bigint, number>();
      topo.nodes.forEach((n, ni) => {
        const ci = clusterIndex.get(n.cluster);
        const c = ci === undefined ? undefined : topo.clusters[ci];
        if (!c || !familiesOf(c.ipFamily).includes(fam)) return;
        if (c.networkType === "p2p" || n.gatewayCandidate) checkClash(seen, ni, fam, bridge, "vx-bridge");
      });
    }
    const perCluster = new Map<number, Map<bigint, number>>();
    topo.nodes.forEach((n, ni) => {
      const ci = clusterIndex.get(n.cluster);
      if (ci === undefined) return;
      const c = topo.clusters[ci];
      const local = localOf[ci]?.[fam];
      if (c?.networkType !== "gateway" || !local || !familiesOf(c.ipFamily).includes(fam)) return;
      let seen = perCluster.get(ci);
      if (!seen) {
        seen = new Map();
        perCluster.set(ci, seen);
      }
      checkClash(seen, ni, fam, local, "vx-local");
    });
  }

  if (issues.length > 0) throw new TopologyError(issues);
  return canonicalize(topo, globals);
}

function canonicalize(topo: Topology, globals: Array<Array<{ key: Cidr; value: Cidr }>>): Topology {
  const cidr = (s: string) => tryParseCidr(s)?.text ?? s;
  const clusters: Cluster[] = topo.clusters.map((c, ci) => ({
    ...c,
    podCIDRs: c.podCIDRs.map(cidr),
    serviceCIDRs: c.serviceCIDRs.map(cidr),
    globalCIDRs: Object.fromEntries((globals[ci] ?? []).map((g) => [g.key.text, g.value.text])),
    bridgeCIDRs: { ip: cidr(c.bridgeCIDRs.ip), ip6: cidr(c.bridgeCIDRs.ip6) },
    localCIDRs: { ip: cidr(c.localCIDRs.ip), ip6: cidr(c.localCIDRs.ip6) },
  }));
  const nodes: Node[] = topo.nodes.map((n) => {
    const out: Node = { ...n, podCIDRs: n.podCIDRs.map(cidr) };
    if (n.ipv4 !== undefined) out.ipv4 = canonicalIp(n.ipv4);
    if (n.ipv6 !== undefined) out.ipv6 = canonicalIp(n.ipv6);
    if (n.elasticIP !== undefined) out.elasticIP = canonicalIp(n.elasticIP);
    return out;
  });
  return { clusters, nodes };
}
