/** Node checks of validateTopology: names, clusters, addresses, pod CIDRs, gateways, overlay clashes. */
import { type AddressFamily, type Cidr, formatIp, overlayValue, tryParseIp } from "./cidr.ts";
import type { Cluster, Node } from "./model.ts";
import { add, type Checks, famName, familiesOf, type NodePod, parseCidrAt } from "./validate-context.ts";

const podPath = (x: { ni: number; j: number }) => `nodes[${x.ni}].podCIDRs[${x.j}]`;

/** Per node, in order: unique name, known cluster, underlay addresses, pod CIDRs, elastic IP. */
export function checkNodes(st: Checks): void {
  st.topo.nodes.forEach((n, ni) => {
    const p = `nodes[${ni}]`;
    const addrs: Partial<Record<AddressFamily, bigint>> = {};
    st.underlay.push(addrs);
    if (st.nodeIndex.has(n.name))
      add(st, `${p}.name`, `duplicate node name "${n.name}" (also nodes[${st.nodeIndex.get(n.name)}])`);
    else st.nodeIndex.set(n.name, ni);
    const ci = st.clusterIndex.get(n.cluster);
    const cluster = ci === undefined ? undefined : st.topo.clusters[ci];
    if (ci === undefined || !cluster) {
      add(st, `${p}.cluster`, `unknown cluster "${n.cluster}"`);
      return;
    }
    st.nodeCounts.set(ci, (st.nodeCounts.get(ci) ?? 0) + 1);
    if (n.gatewayCandidate) st.candidates.set(ci, (st.candidates.get(ci) ?? 0) + 1);
    const fams = familiesOf(cluster.ipFamily);
    checkUnderlay(st, n, ni, cluster, fams, addrs);
    checkNodePodCidrs(st, n, ni, cluster, fams, ci);
    checkElasticIp(st, n, ni, cluster, fams);
  });
}

/** ipv4/ipv6: required for the cluster's families, valid, of the right family; recorded in `addrs`. */
function checkUnderlay(
  st: Checks,
  n: Node,
  ni: number,
  cluster: Cluster,
  fams: AddressFamily[],
  addrs: Partial<Record<AddressFamily, bigint>>,
): void {
  const p = `nodes[${ni}]`;
  for (const [key, fam] of [
    ["ipv4", 4],
    ["ipv6", 6],
  ] as const) {
    const s = n[key];
    if (s === undefined) {
      if (fams.includes(fam))
        add(st, `${p}.${key}`, `required: cluster "${cluster.name}" is ${cluster.ipFamily}`);
      continue;
    }
    const ip = tryParseIp(s);
    if (!ip) add(st, `${p}.${key}`, `${JSON.stringify(s)} is not a valid IP address`);
    else if (ip.family !== fam) add(st, `${p}.${key}`, `${s} is not an ${famName(fam)} address`);
    else {
      addrs[fam] = ip.value;
      st.allUnderlay.push({ value: ip.value, family: fam, ni });
    }
  }
}

/** A node's pod CIDRs: valid, of the cluster's families, inside one of the cluster's pod CIDRs. */
function checkNodePodCidrs(
  st: Checks,
  n: Node,
  ni: number,
  cluster: Cluster,
  fams: AddressFamily[],
  ci: number,
): void {
  n.podCIDRs.forEach((s, j) => {
    const path = () => `nodes[${ni}].podCIDRs[${j}]`;
    const x = parseCidrAt(st, s, path, fams, "node pod CIDR");
    if (!x) return;
    const pods = st.podOf[ci] ?? [];
    if (!pods.some((pc) => pc.family === x.family && pc.base <= x.base && x.last <= pc.last)) {
      add(
        st,
        path(),
        `${x.text} is not inside any podCIDRs of cluster "${cluster.name}" (${pods.map((q) => q.text).join(", ") || "none"})`,
      );
      return;
    }
    const key = `${ci}/${x.family}`;
    let list = st.nodePods.get(key);
    if (!list) {
      list = [];
      st.nodePods.set(key, list);
    }
    list.push({ c: x, ni, j });
  });
}

/** elasticIP: a valid address of one of the cluster's families. */
function checkElasticIp(st: Checks, n: Node, ni: number, cluster: Cluster, fams: AddressFamily[]): void {
  if (n.elasticIP === undefined) return;
  const path = `nodes[${ni}].elasticIP`;
  const ip = tryParseIp(n.elasticIP);
  if (!ip) add(st, path, `${JSON.stringify(n.elasticIP)} is not a valid IP address`);
  else if (!fams.includes(ip.family)) {
    add(
      st,
      path,
      `${n.elasticIP} is ${famName(ip.family)} but cluster "${cluster.name}" is ${cluster.ipFamily} (elasticIP family mismatch)`,
    );
  }
}

/** Node pod CIDRs of one cluster must not overlap each other (sort + sweep). */
export function checkNodePodOverlaps(st: Checks): void {
  for (const list of st.nodePods.values()) {
    list.sort((a, b) => (a.c.base < b.c.base ? -1 : a.c.base > b.c.base ? 1 : 0));
    let maxEnd = -1n;
    let maxAt: NodePod | undefined;
    for (const x of list) {
      if (maxAt && x.c.base <= maxEnd)
        add(st, podPath(x), `${x.c.text} overlaps ${podPath(maxAt)} ${maxAt.c.text}`);
      if (x.c.last > maxEnd) {
        maxEnd = x.c.last;
        maxAt = x;
      }
    }
  }
}

/** Global CIDRs must not contain underlay addresses. */
export function checkGlobalsVsUnderlay(st: Checks): void {
  const allGlobals = st.globals.flat();
  if (allGlobals.length === 0) return;
  for (const u of st.allUnderlay) {
    for (const g of allGlobals) {
      if (g.value.family === u.family && g.value.base <= u.value && u.value <= g.value.last) {
        add(
          st,
          g.path,
          `global ${g.value.text} contains the underlay address nodes[${u.ni}].${u.family === 4 ? "ipv4" : "ipv6"} ${formatIp(u.family, u.value)}`,
        );
      }
    }
  }
}

/** Gateway clusters need a candidate (a gateway cluster with zero nodes is fine). */
export function checkGatewayCandidates(st: Checks): void {
  st.topo.clusters.forEach((c, ci) => {
    if (c.networkType === "gateway" && (st.nodeCounts.get(ci) ?? 0) > 0 && !st.candidates.get(ci)) {
      add(
        st,
        `clusters[${ci}].networkType`,
        `gateway cluster "${c.name}" has nodes but no gatewayCandidate node`,
      );
    }
  });
}

/**
 * Overlay address clashes: two nodes whose underlay addresses map to the same overlay address, on
 * vx-bridge (shared prefix; nodes that may hold vx-bridge) and on vx-local (per gateway cluster).
 */
export function checkOverlayClashes(st: Checks): void {
  const { topo } = st;
  for (const fam of [4, 6] as const) {
    const bridge = st.bridgeOf[0]?.[fam];
    if (bridge) {
      const seen = new Map<bigint, number>();
      topo.nodes.forEach((n, ni) => {
        const ci = st.clusterIndex.get(n.cluster);
        const c = ci === undefined ? undefined : topo.clusters[ci];
        if (!c || !familiesOf(c.ipFamily).includes(fam)) return;
        if (c.networkType === "p2p" || n.gatewayCandidate) checkClash(st, seen, ni, fam, bridge, "vx-bridge");
      });
    }
    const perCluster = new Map<number, Map<bigint, number>>();
    topo.nodes.forEach((n, ni) => {
      const ci = st.clusterIndex.get(n.cluster);
      if (ci === undefined) return;
      const c = topo.clusters[ci];
      const local = st.localOf[ci]?.[fam];
      if (c?.networkType !== "gateway" || !local || !familiesOf(c.ipFamily).includes(fam)) return;
      let seen = perCluster.get(ci);
      if (!seen) {
        seen = new Map();
        perCluster.set(ci, seen);
      }
      checkClash(st, seen, ni, fam, local, "vx-local");
    });
  }
}

/** Record node `ni`'s overlay address under `prefix` in `seen`, or an issue if another node has it. */
function checkClash(
  st: Checks,
  seen: Map<bigint, number>,
  ni: number,
  fam: AddressFamily,
  prefix: Cidr,
  what: string,
): void {
  const v = st.underlay[ni]?.[fam];
  if (v === undefined) return;
  const o = overlayValue(v, prefix);
  const prev = seen.get(o);
  const key = fam === 4 ? "ipv4" : "ipv6";
  if (prev !== undefined) {
    add(
      st,
      `nodes[${ni}].${key}`,
      `node "${st.topo.nodes[ni]?.name}" and node "${st.topo.nodes[prev]?.name}" (nodes[${prev}].${key}) map to the same ${what} overlay address ${formatIp(fam, o)} under ${prefix.text}: the /${prefix.len} keeps only the low ${(fam === 4 ? 32 : 128) - prefix.len} bits of the underlay address`,
    );
  } else seen.set(o, ni);
}
