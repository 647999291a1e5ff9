/** Cluster checks of validateTopology: names, pod/service/bridge/local CIDRs, global CIDR maps, overlaps. */
import { type AddressFamily, type Cidr, cidrOverlaps, tryParseCidr } from "./cidr.ts";
import type { Cluster } from "./model.ts";
import {
  add,
  type Checks,
  famName,
  familiesOf,
  type GlobalEntry,
  type LabeledCidr,
  parseCidrAt,
} from "./validate-context.ts";

/** Per cluster, in order: unique name, pod and service CIDRs, bridge and local CIDRs, shared bridge. */
export function checkClusters(st: Checks): void {
  st.topo.clusters.forEach((c, ci) => {
    if (st.clusterIndex.has(c.name)) {
      add(
        st,
        `clusters[${ci}].name`,
        `duplicate cluster name "${c.name}" (also clusters[${st.clusterIndex.get(c.name)}])`,
      );
    } else st.clusterIndex.set(c.name, ci);
    checkPodServiceCidrs(st, c, ci);
    checkOverlayCidrs(st, c, ci);
    checkSharedBridge(st, ci);
  });
}

/** Pod and service CIDRs: valid, of the cluster's families; a service CIDR must not overlap a pod CIDR. */
function checkPodServiceCidrs(st: Checks, c: Cluster, ci: number): void {
  const p = `clusters[${ci}]`;
  const fams = familiesOf(c.ipFamily);
  const pods: Cidr[] = [];
  c.podCIDRs.forEach((s, j) => {
    const x = parseCidrAt(st, s, `${p}.podCIDRs[${j}]`, fams, "pod CIDR");
    if (x) {
      pods.push(x);
      st.clusterCidrs.push({ cidr: x, path: `${p}.podCIDRs[${j}]`, cluster: ci, kind: "pod" });
    }
  });
  st.podOf.push(pods);
  const svcs: LabeledCidr[] = [];
  c.serviceCIDRs.forEach((s, j) => {
    const x = parseCidrAt(st, s, `${p}.serviceCIDRs[${j}]`, fams, "service CIDR");
    if (x) {
      const l: LabeledCidr = { cidr: x, path: `${p}.serviceCIDRs[${j}]`, cluster: ci, kind: "service" };
      svcs.push(l);
      st.clusterCidrs.push(l);
    }
  });
  for (const s of svcs) {
    for (const [j, pc] of pods.entries()) {
      if (cidrOverlaps(s.cidr, pc))
        add(st, s.path, `service CIDR ${s.cidr.text} overlaps ${p}.podCIDRs[${j}] ${pc.text}`);
    }
  }
}

/** Bridge and local CIDRs: valid, of the right family each, not overlapping each other. */
function checkOverlayCidrs(st: Checks, c: Cluster, ci: number): void {
  const p = `clusters[${ci}]`;
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
      const x = parseCidrAt(st, obj[key], `${p}.${name}.${key}`, undefined, name);
      if (!x) continue;
      if (x.family !== fam) {
        add(st, `${p}.${name}.${key}`, `${x.text} must be an ${famName(fam)} CIDR`);
        continue;
      }
      out[fam] = x;
      st.reserved.push({ cidr: x, path: `${p}.${name}.${key}` });
    }
  }
  for (const fam of [4, 6] as const) {
    const bx = b[fam];
    const lx = l[fam];
    if (bx && lx && cidrOverlaps(bx, lx)) {
      add(
        st,
        `${p}.localCIDRs.${fam === 4 ? "ip" : "ip6"}`,
        `local CIDR ${lx.text} overlaps bridge CIDR ${bx.text}`,
      );
    }
  }
  st.bridgeOf.push(b);
  st.localOf.push(l);
}

/** The bridge prefix is shared by all clusters: every node's vx-bridge must be on one subnet. */
function checkSharedBridge(st: Checks, ci: number): void {
  const first = st.bridgeOf[0];
  const b = st.bridgeOf[ci];
  if (ci === 0 || !first || !b) return;
  for (const [key, fam] of [
    ["ip", 4],
    ["ip6", 6],
  ] as const) {
    const x = b[fam];
    const y = first[fam];
    if (x && y && x.text !== y.text) {
      add(
        st,
        `clusters[${ci}].bridgeCIDRs.${key}`,
        `${x.text} differs from clusters[0].bridgeCIDRs.${key} ${y.text}; all clusters must share the bridge CIDR`,
      );
    }
  }
}

/** Pod/service CIDRs must not overlap bridge/local CIDRs. */
export function checkReservedOverlaps(st: Checks): void {
  for (const lc of st.clusterCidrs) {
    for (const r of st.reserved) {
      if (cidrOverlaps(lc.cidr, r.cidr))
        add(st, lc.path, `${lc.kind} CIDR ${lc.cidr.text} overlaps ${r.path} ${r.cidr.text}`);
    }
  }
}

/** Global CIDR maps: keys are the cluster's own CIDRs, values valid CIDRs of the same family and length. */
export function checkGlobalMaps(st: Checks): void {
  st.topo.clusters.forEach((c, ci) => {
    const p = `clusters[${ci}].globalCIDRs`;
    const own = st.clusterCidrs.filter((x) => x.cluster === ci);
    const list: GlobalEntry[] = [];
    for (const [k, v] of Object.entries(c.globalCIDRs)) {
      const path = `${p}[${JSON.stringify(k)}]`;
      const key = tryParseCidr(k);
      if (!key) {
        add(st, path, `key ${JSON.stringify(k)} is not a valid CIDR`);
        continue;
      }
      if (!own.some((o) => o.cidr.text === key.text)) {
        add(st, path, `key ${key.text} is not one of the cluster's podCIDRs/serviceCIDRs`);
        continue;
      }
      const value = tryParseCidr(v);
      if (!value) {
        add(st, path, `value ${JSON.stringify(v)} is not a valid CIDR`);
        continue;
      }
      if (value.family !== key.family) {
        add(
          st,
          path,
          `global ${value.text} is ${famName(value.family)} but ${key.text} is ${famName(key.family)}`,
        );
        continue;
      }
      if (value.len !== key.len) {
        add(
          st,
          path,
          `global ${value.text} has prefix length /${value.len}; it must equal the local /${key.len}`,
        );
        continue;
      }
      list.push({ key, value, path });
    }
    st.globals.push(list);
  });
}

/** A global CIDR must not overlap any cluster CIDR, another global CIDR or a bridge/local CIDR. */
export function checkGlobalOverlaps(st: Checks): void {
  const allGlobals = st.globals.flat();
  allGlobals.forEach((g, i) => {
    for (const lc of st.clusterCidrs) {
      if (cidrOverlaps(g.value, lc.cidr))
        add(st, g.path, `global ${g.value.text} overlaps ${lc.path} ${lc.cidr.text}`);
    }
    for (let j = i + 1; j < allGlobals.length; j++) {
      const o = allGlobals[j];
      if (o && cidrOverlaps(g.value, o.value))
        add(st, o.path, `global ${o.value.text} overlaps ${g.path} ${g.value.text}`);
    }
    const seen = new Set<string>();
    for (const r of st.reserved) {
      if (seen.has(r.cidr.text)) continue;
      seen.add(r.cidr.text);
      if (cidrOverlaps(g.value, r.cidr))
        add(st, g.path, `global ${g.value.text} overlaps ${r.path} ${r.cidr.text}`);
    }
  });
}

/** CIDRs of different clusters may overlap only when one side maps its CIDR to a global CIDR. */
export function checkClusterOverlaps(st: Checks): void {
  const { clusterCidrs, topo } = st;
  const mapped = (x: LabeledCidr) => (st.globals[x.cluster] ?? []).some((g) => g.key.text === x.cidr.text);
  for (let i = 0; i < clusterCidrs.length; i++) {
    const a = clusterCidrs[i] as LabeledCidr;
    for (let j = i + 1; j < clusterCidrs.length; j++) {
      const b = clusterCidrs[j] as LabeledCidr;
      if (a.cluster === b.cluster || !cidrOverlaps(a.cidr, b.cidr)) continue;
      if (mapped(a) || mapped(b)) continue;
      const bn = topo.clusters[b.cluster]?.name;
      add(
        st,
        b.path,
        `${b.kind} CIDR ${b.cidr.text} overlaps ${a.path} ${a.cidr.text} (cluster "${topo.clusters[a.cluster]?.name}") of cluster "${bn}"; map one of them in globalCIDRs`,
      );
    }
  }
}
