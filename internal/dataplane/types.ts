import type {
  Family,
  FdbEntry,
  Neighbor,
  PolicyRule,
  Route,
  Sysctl,
  VxlanDevice,
  XfrmPolicy,
  XfrmState,
} from "./hoststate.ts";

/** A vxlan link with a Kosmos device name, as read from the kernel. */
export interface ActualDevice {
  name: string;
  /** Link kind; a non-vxlan link with one of our names is foreign and never touched. */
  kind: string;
  vni?: number;
  port?: number;
  local?: string;
  parent?: string;
  learning?: boolean;
  mtu: number;
  mac: string;
  up: boolean;
  /** Global-scope addresses with prefix (link-local excluded). */
  addresses: string[];
}

export interface ActualRoute {
  dst: string;
  via?: string;
  dev?: string;
  family: Family;
  table: number;
  src?: string;
}

export interface ActualNeighbor extends Neighbor {
  permanent: boolean;
}

export interface ActualNft {
  present: boolean;
  /** Hash of the rendered script, read back from the table comment ("kosmos:<hash>"). */
  hash?: string;
  /** `nft list table inet kosmos` text (empty when absent). */
  listing: string;
}

/** Kernel state owned by Kosmos (nothing else is read into it). */
export interface ActualState {
  devices: ActualDevice[];
  routes: ActualRoute[];
  rules: PolicyRule[];
  fdb: FdbEntry[];
  neighbors: ActualNeighbor[];
  nft: ActualNft;
  xfrm: { policies: XfrmPolicy[]; states: XfrmState[] };
  sysctls: Record<string, string>;
}

export type Change =
  | { kind: "device-add"; device: VxlanDevice }
  | { kind: "device-recreate"; device: VxlanDevice; reason: string }
  | {
      kind: "device-update";
      device: VxlanDevice;
      set: { mtu?: boolean; mac?: boolean; address?: boolean; up?: boolean; nolearning?: boolean };
      delAddresses: string[];
    }
  | { kind: "device-del"; name: string }
  | { kind: "route-replace"; route: Route }
  | { kind: "route-del"; route: ActualRoute }
  | { kind: "rule-add"; rule: PolicyRule }
  | { kind: "rule-del"; rule: PolicyRule }
  | { kind: "fdb-add"; entry: FdbEntry }
  | { kind: "fdb-del"; entry: FdbEntry }
  | { kind: "neigh-replace"; neighbor: Neighbor }
  | { kind: "neigh-del"; neighbor: Neighbor }
  | { kind: "nft-apply"; script: string; hash: string; reason: string }
  | { kind: "nft-delete" }
  | { kind: "xfrm-policy-add"; policy: XfrmPolicy }
  | { kind: "xfrm-policy-del"; policy: XfrmPolicy }
  | { kind: "xfrm-state-add"; state: XfrmState }
  | { kind: "xfrm-state-del"; state: XfrmState }
  | { kind: "sysctl-set"; sysctl: Sysctl };

export type ChangeKind = Change["kind"];

export interface ApplyError {
  /** The failing command (argv, plus the batch line when it came from a batch). */
  command: string;
  /** Kernel / tool message. */
  message: string;
  change?: ChangeKind;
}

export interface ApplyReport {
  counts: Partial<Record<ChangeKind, number>>;
  applied: number;
  errors: ApplyError[];
  /** "ok" | "degraded" with the kernel message when ESP states could not be installed. */
  ipsec: { status: "ok" | "degraded" | "unused"; message?: string };
  /** Sysctls that could not be set (e.g. read-only in a network namespace). */
  sysctlSkipped: Array<{ key: string; message: string }>;
  durationMs: number;
  /** Canonical nft listing after an nft apply (for tamper detection). */
  nftListing?: string;
}

export interface ReconcileReport extends ApplyReport {
  changes: number;
  /** Changes still needed after apply (re-read); 0 when converged. */
  residual: number;
  /** Foreign links that carry one of our device names (never touched). */
  conflicts: string[];
  /**
   * Where `durationMs` went: `plan` = read the kernel (or start from the last converged plan) and
   * diff; `apply` = run the changes (the kernel holds them from its end); `verify` = the re-read.
   */
  phasesMs?: { plan: number; apply: number; verify: number };
  /**
   * How the plan read saw the nft table: `listed` (read from the kernel), `trusted` (taken as the
   * last verified listing: ReconcileOptions.trustNft), `memory` (a pass from the last converged plan).
   */
  nftRead?: "listed" | "trusted" | "memory";
}
