/**
 * HostState: the whole desired kernel configuration of one node, as computed by the planner
 * and applied by the dataplane reconciler (like Tailscale's router Config). Pure data, JSON-safe,
 * deterministic ordering (the planner sorts every list) so two plans can be compared by value.
 *
 * The type lives here, beside the code that applies it, as Tailscale's wgengine/router owns its
 * Config: the dataplane defines what it can enforce, the planner (and anything else that builds a
 * desired state, e.g. tests) imports it from dataplane/index.ts, and the dataplane depends on no
 * planner.
 *
 * Everything described here is owned by Kosmos; the reconciler removes owned objects that are
 * no longer desired and never touches anything else.
 */

export type Family = 4 | 6;

export interface VxlanDevice {
  /** vx-bridge | vx-local | vx-bridge-6 | vx-local-6 */
  name: string;
  family: Family;
  vni: number;
  /** UDP destination port. */
  port: number;
  /** Underlay source address (VTEP), this node's underlay IP of `family`. */
  local: string;
  /** Underlay NIC to bind to (undefined: let the kernel route). */
  parent?: string;
  mtu: number;
  /** Stable locally-administered unicast MAC, lowercase "aa:bb:..". */
  mac: string;
  /** Overlay address with prefix, e.g. "220.168.1.7/8" or "9480::a8:107/16". */
  address: string;
}

export interface Route {
  /** Destination CIDR (canonical form). */
  dst: string;
  /** Next hop (an overlay address of a peer). */
  via: string;
  dev: string;
  family: Family;
  /** Routing table number (see HostState.table). */
  table: number;
  /** Preferred source address (optional). */
  src?: string;
  /** Human note: which peer/cluster this route leads to (not applied; for inspect/diagnosis). */
  peer?: string;
}

export interface FdbEntry {
  dev: string;
  /** "00:00:00:00:00:00" for the flood entry, or the peer VTEP MAC. */
  mac: string;
  /** Peer underlay IP. */
  dst: string;
}

export interface Neighbor {
  dev: string;
  /** Peer overlay IP (no prefix). */
  ip: string;
  mac: string;
  family: Family;
}

export interface PolicyRule {
  family: Family;
  priority: number;
  table: number;
}

/** 1:1 prefix mapping between a local CIDR and its global CIDR (same prefix length). */
export interface PrefixMap {
  local: string;
  global: string;
  family: Family;
}

/**
 * Intent for the single nftables table owned by Kosmos (`inet kosmos`). The dataplane renders it
 * to an `nft -f` script deterministically; lookups are nft sets/maps (O(1) per packet).
 */
export interface NftIntent {
  /** Overlay devices on this node (for MSS clamping and NAT matching). */
  overlayDevices: string[];
  /** Devices on which to clamp TCP MSS to the path MTU (forwarded and locally sent SYNs). */
  mssClampDevices: string[];
  /**
   * Outbound: source in `local` leaving via vx-bridge* -> SNAT prefix to `global`.
   * Inbound: destination in `global` arriving on vx-bridge* -> DNAT prefix to `local`.
   */
  globalMaps: PrefixMap[];
  /**
   * Masquerade (gateway nodes of gateway clusters): traffic whose source is in one of these CIDRs
   * leaving through `oif` is masqueraded.
   */
  masquerade: Array<{
    srcCIDRs: string[];
    /** Output device name, or "*" for any device (then see exceptOif). */
    oif: string;
    family: Family;
    /** Additive: when set, packets leaving through one of these devices are NOT masqueraded. */
    exceptOif?: string[];
  }>;
  /**
   * Remote CIDRs (pod/service/global of other clusters): traffic to them must not be masqueraded
   * by the CNI (a null SNAT binding in a chain that runs before the CNI's NAT).
   */
  noMasqueradeDst: { v4: string[]; v6: string[] };
  /**
   * Additive: multi-cluster ClusterSetIPs (docs/services.md). Traffic to `vip:port/protocol`, from
   * pods (prerouting) or the node itself (output), is DNATed to one of the ready endpoints, chosen
   * at random per connection (sticky per client address when `affinitySeconds` is set).
   */
  serviceVips?: ServiceVip[];
}

export interface ServiceVip {
  /** `<namespace>/<service>:<port name or number>` (comments, stable chain order). */
  name: string;
  vip: string;
  family: Family;
  protocol: "tcp" | "udp" | "sctp";
  port: number;
  /** Sorted; empty: no rule (nothing answers the VIP). */
  endpoints: Array<{ address: string; port: number }>;
  affinitySeconds?: number;
}

export interface XfrmPolicy {
  src: string;
  dst: string;
  dir: "out" | "in" | "fwd";
  /** Tunnel endpoints (elastic IPs). */
  tmplSrc: string;
  tmplDst: string;
  reqid: number;
  priority: number;
  family: Family;
}

export interface XfrmState {
  src: string;
  dst: string;
  spi: number;
  reqid: number;
  /** rfc4106(gcm(aes)) key, hex "0x..." (20 bytes: 16 key + 4 salt). */
  aeadKeyHex: string;
  icvBits: number;
  family: Family;
}

export interface Sysctl {
  key: string;
  value: string;
}

export interface HostState {
  node: string;
  cluster: string;
  /** Routing table that holds Kosmos routes (upstream uses 200). */
  table: number;
  devices: VxlanDevice[];
  routes: Route[];
  rules: PolicyRule[];
  fdb: FdbEntry[];
  neighbors: Neighbor[];
  nft: NftIntent;
  xfrm: { policies: XfrmPolicy[]; states: XfrmState[] };
  sysctls: Sysctl[];
  /** Gateways elected per gateway cluster as seen by this plan (for stickiness next time). */
  gateways: Record<string, string>;
  /** Additive: service node elected per P2P cluster as seen by this plan (for stickiness). */
  serviceNodes?: Record<string, string>;
  /** Non-fatal planning notes (e.g. a CIDR skipped because it overlaps the local cluster). */
  warnings: string[];
}

/** Route protocol number marking Kosmos-owned routes ("proto 75"). */
export const KOSMOS_ROUTE_PROTO = 75;
/** Routing table for Kosmos routes (upstream Kosmos uses 200). */
export const KOSMOS_ROUTE_TABLE = 200;
/** Policy rule priority for `lookup 200` (before main at 32766). */
export const KOSMOS_RULE_PRIORITY = 200;
/** nftables table owned by Kosmos. */
export const KOSMOS_NFT_TABLE = "kosmos";

/** A HostState with nothing in it (uninstall diffs against it; tests build on it). */
export function emptyHostState(node = "", cluster = "", table = KOSMOS_ROUTE_TABLE): HostState {
  return {
    node,
    cluster,
    table,
    devices: [],
    routes: [],
    rules: [],
    fdb: [],
    neighbors: [],
    nft: {
      overlayDevices: [],
      mssClampDevices: [],
      globalMaps: [],
      masquerade: [],
      noMasqueradeDst: { v4: [], v6: [] },
    },
    xfrm: { policies: [], states: [] },
    sysctls: [],
    gateways: {},
    warnings: [],
  };
}
