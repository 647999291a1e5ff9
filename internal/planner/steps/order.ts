/**
 * Deterministic order: every list of the HostState sorted (IPv4 addresses and CIDRs in numeric
 * order, IPv6 in text order), so equal inputs give deep-equal plans and a plan can be hashed.
 */
import {
  type FdbEntry,
  type HostState,
  KOSMOS_ROUTE_TABLE,
  type Neighbor,
  type PolicyRule,
  type Sysctl,
  type VxlanDevice,
} from "../../dataplane/index.ts";
import { cmp, type PlanContext } from "../context.ts";
import type { NftParts } from "./nft.ts";
import type { PeerGroup } from "./peers.ts";
import type { RouteRec } from "./routes.ts";
import type { XfrmParts } from "./xfrm.ts";

const ZERO_MAC = "00:00:00:00:00:00";

/** What the steps produced, in the order they produced it. */
export interface PlanParts {
  devices: VxlanDevice[];
  peers: Map<string, PeerGroup>;
  routes: RouteRec[];
  rules: PolicyRule[];
  nft: NftParts;
  xfrm: XfrmParts;
  sysctls: Sysctl[];
}

/** Sort every part (in place) and assemble the HostState. */
export function orderHostState(ctx: PlanContext, p: PlanParts): HostState {
  const { devices, nft, xfrm, sysctls } = p;
  const warnings = ctx.warnings;
  devices.sort((a, b) => cmp(a.name, b.name));
  const deviceNames = devices.map((d) => d.name);
  p.routes.sort((a, b) => a.r.family - b.r.family || a.k - b.k || cmp(a.r.dst, b.r.dst));
  const routes = p.routes.map((x) => x.r);
  const v4: string[] = [];
  const v6: string[] = [];
  for (const r of routes) (r.family === 4 ? v4 : v6).push(r.dst);
  const { fdb, neighbors } = peerEntries(p.peers);
  nft.globalMaps.sort((a, b) => a.family - b.family || cmp(a.local, b.local));
  nft.masquerade.sort((a, b) => a.family - b.family || cmp(a.oif, b.oif));
  xfrm.policies.sort(
    (a, b) => cmp(a.src, b.src) || cmp(a.dst, b.dst) || cmp(a.dir, b.dir) || cmp(a.tmplDst, b.tmplDst),
  );
  xfrm.states.sort((a, b) => cmp(a.src, b.src) || cmp(a.dst, b.dst) || a.spi - b.spi);
  sysctls.sort((a, b) => cmp(a.key, b.key));
  warnings.sort(cmp);
  return {
    node: ctx.selfName,
    cluster: ctx.selfCtx.cluster.name,
    table: KOSMOS_ROUTE_TABLE,
    devices,
    routes,
    rules: p.rules,
    fdb,
    neighbors,
    nft: {
      overlayDevices: deviceNames,
      mssClampDevices: [...deviceNames],
      globalMaps: nft.globalMaps,
      masquerade: nft.masquerade,
      noMasqueradeDst: { v4, v6 },
      ...(nft.serviceVips ? { serviceVips: nft.serviceVips } : {}),
    },
    xfrm: { policies: xfrm.policies, states: xfrm.states },
    sysctls,
    gateways: ctx.gateways,
    serviceNodes: ctx.serviceNodes,
    warnings,
  };
}

/** Per device (by name): FDB entries (all-zero + MAC) by underlay address, neighbours by overlay address. */
function peerEntries(peers: Map<string, PeerGroup>): { fdb: FdbEntry[]; neighbors: Neighbor[] } {
  const fdb: FdbEntry[] = [];
  const neighbors: Neighbor[] = [];
  for (const dev of [...peers.keys()].sort(cmp)) {
    const { family, recs } = peers.get(dev) as PeerGroup;
    const v4 = family === 4;
    recs.sort((a, b) => (v4 ? a.dstN - b.dstN : cmp(a.dst, b.dst)) || cmp(a.mac, b.mac));
    for (const p of recs) fdb.push({ dev, mac: ZERO_MAC, dst: p.dst }, { dev, mac: p.mac, dst: p.dst });
    recs.sort((a, b) => (v4 ? a.ipN - b.ipN : cmp(a.ip, b.ip)) || cmp(a.mac, b.mac));
    for (const p of recs) neighbors.push({ dev, ip: p.ip, mac: p.mac, family });
  }
  return { fdb, neighbors };
}
