import type { HostState, Neighbor, Route, VxlanDevice, XfrmPolicy, XfrmState } from "./hoststate.ts";
import { emptyHostState } from "./hoststate.ts";
import { renderNft } from "./nft.ts";
import { canonAddr, canonCidr, canonMac, ZERO_MAC } from "./normalize.ts";
import type { ActualDevice, ActualRoute, ActualState, Change } from "./types.ts";

/** What the reconciler remembers between passes (optional; diff stays pure). */
export interface DiffMemo {
  /** Canonical `nft list table` text recorded right after our last nft apply of the same hash. */
  nftListing?: string;
  /** Sysctl keys known to be read-only here (not retried). */
  sysctlSkip?: ReadonlySet<string>;
}

const routeKey = (r: { family: number; table: number; dst: string }): string =>
  `${r.family}|${r.table}|${r.dst}`;

function normRoute(r: Route): Route {
  const out: Route = { ...r, dst: canonCidr(r.dst), via: canonAddr(r.via) };
  if (r.src) out.src = canonAddr(r.src);
  return out;
}

function recreateReason(d: VxlanDevice, a: ActualDevice): string | undefined {
  if (a.vni !== d.vni) return `vni ${a.vni} -> ${d.vni}`;
  if (a.port !== d.port) return `port ${a.port} -> ${d.port}`;
  if (a.local !== canonAddr(d.local)) return `local ${a.local} -> ${d.local}`;
  if ((a.parent ?? undefined) !== (d.parent ?? undefined)) return `parent ${a.parent} -> ${d.parent}`;
  return undefined;
}

const policyKey = (p: XfrmPolicy): string => `${p.dir}|${canonCidr(p.src)}|${canonCidr(p.dst)}`;
const stateKey = (s: XfrmState): string => `${canonAddr(s.src)}|${canonAddr(s.dst)}|${s.spi}`;
const normWs = (v: string): string => v.trim().split(/\s+/).join(" ");

/**
 * Pure: the minimal list of changes that turns `actual` into `desired`. Objects on devices that are
 * (re)created or deleted are accounted for (a recreated device loses its fdb/neigh/routes, so they are
 * re-added in the same pass; a deleted device takes them along, so no per-object deletes are emitted).
 * Foreign links carrying our names (kind != vxlan) are left alone.
 */
export function diff(desired: HostState, actual: ActualState, memo: DiffMemo = {}): Change[] {
  const devices = diffDevices(desired, actual);
  const fate = devices.fate;
  return [
    ...devices.changes,
    ...diffFdb(desired, actual, fate),
    ...diffNeighbors(desired, actual, fate),
    ...diffRoutes(desired, actual, fate),
    ...diffRules(desired, actual),
    ...diffNft(desired, actual, memo),
    ...diffXfrm(desired, actual),
    ...diffSysctls(desired, actual, memo),
  ];
}

/** What the device diff decided, which the per-device objects (fdb, neighbours, routes) depend on. */
interface DeviceFate {
  /** Foreign links with our names: nothing is added on them. */
  blocked: ReadonlySet<string>;
  /** On a device added, recreated or deleted in this pass: nothing actual on it survives. */
  stale(dev: string | undefined): boolean;
}

function diffDevices(desired: HostState, actual: ActualState): { changes: Change[]; fate: DeviceFate } {
  const changes: Change[] = [];
  const actualDev = new Map(actual.devices.map((d) => [d.name, d]));
  const fresh = new Set<string>(); // devices added/recreated: nothing on them survives
  const gone = new Set<string>(); // devices deleted
  const blocked = new Set<string>(); // foreign links with our names
  for (const d of desired.devices) {
    const a = actualDev.get(d.name);
    if (!a) {
      changes.push({ kind: "device-add", device: d });
      fresh.add(d.name);
      continue;
    }
    if (a.kind !== "vxlan") {
      blocked.add(d.name);
      continue;
    }
    const reason = recreateReason(d, a);
    if (reason) {
      changes.push({ kind: "device-recreate", device: d, reason });
      fresh.add(d.name);
      continue;
    }
    const addr = canonCidr(d.address);
    const set: { mtu?: boolean; mac?: boolean; address?: boolean; up?: boolean; nolearning?: boolean } = {};
    if (a.mtu !== d.mtu) set.mtu = true;
    if (a.mac !== canonMac(d.mac)) set.mac = true;
    if (!a.addresses.includes(addr)) set.address = true;
    if (!a.up) set.up = true;
    if (a.learning !== false) set.nolearning = true;
    const delAddresses = a.addresses.filter((x) => x !== addr);
    if (Object.keys(set).length > 0 || delAddresses.length > 0) {
      changes.push({ kind: "device-update", device: d, set, delAddresses });
    }
  }
  const desiredNames = new Set(desired.devices.map((d) => d.name));
  for (const a of actual.devices) {
    if (a.kind === "vxlan" && !desiredNames.has(a.name)) {
      changes.push({ kind: "device-del", name: a.name });
      gone.add(a.name);
    }
  }
  const stale = (dev: string | undefined): boolean => dev !== undefined && (fresh.has(dev) || gone.has(dev));
  return { changes, fate: { blocked, stale } };
}

function diffFdb(desired: HostState, actual: ActualState, { blocked, stale }: DeviceFate): Change[] {
  const changes: Change[] = [];
  const fdbKey = (e: { dev: string; mac: string; dst: string }): string =>
    `${e.dev}|${canonMac(e.mac)}|${canonAddr(e.dst)}`;
  const actualFdb = new Set(actual.fdb.filter((e) => !stale(e.dev)).map(fdbKey));
  const desiredFdb = new Set(desired.fdb.map(fdbKey));
  const desiredMacDev = new Set(
    desired.fdb.filter((e) => canonMac(e.mac) !== ZERO_MAC).map((e) => `${e.dev}|${canonMac(e.mac)}`),
  );
  for (const e of desired.fdb) {
    if (blocked.has(e.dev)) continue;
    if (!actualFdb.has(fdbKey(e)))
      changes.push({ kind: "fdb-add", entry: { ...e, mac: canonMac(e.mac), dst: canonAddr(e.dst) } });
  }
  for (const e of actual.fdb) {
    if (stale(e.dev) || desiredFdb.has(fdbKey(e))) continue;
    if (e.mac !== ZERO_MAC && desiredMacDev.has(`${e.dev}|${e.mac}`)) continue; // fixed by replace
    changes.push({ kind: "fdb-del", entry: e });
  }
  return changes;
}

/** Neighbours: permanent entries on our devices. */
function diffNeighbors(desired: HostState, actual: ActualState, { blocked, stale }: DeviceFate): Change[] {
  const changes: Change[] = [];
  const nKey = (n: { dev: string; ip: string }): string => `${n.dev}|${canonAddr(n.ip)}`;
  const actualNeigh = new Map(actual.neighbors.filter((n) => !stale(n.dev)).map((n) => [nKey(n), n]));
  const desiredNeigh = new Set(desired.neighbors.map(nKey));
  for (const n of desired.neighbors) {
    if (blocked.has(n.dev)) continue;
    const a = actualNeigh.get(nKey(n));
    if (!a?.permanent || a.mac !== canonMac(n.mac)) {
      const neighbor: Neighbor = { ...n, ip: canonAddr(n.ip), mac: canonMac(n.mac) };
      changes.push({ kind: "neigh-replace", neighbor });
    }
  }
  for (const a of actual.neighbors) {
    if (!a.permanent || stale(a.dev) || desiredNeigh.has(nKey(a))) continue;
    changes.push({ kind: "neigh-del", neighbor: { dev: a.dev, ip: a.ip, mac: a.mac, family: a.family } });
  }
  return changes;
}

/** Routes: proto 75, any table. */
function diffRoutes(desired: HostState, actual: ActualState, { blocked, stale }: DeviceFate): Change[] {
  const changes: Change[] = [];
  const actualRoutes = new Map<string, ActualRoute>();
  for (const r of actual.routes) if (!stale(r.dev)) actualRoutes.set(routeKey(r), r);
  const desiredRoutes = new Map<string, Route>();
  for (const r of desired.routes) {
    const n = normRoute(r);
    desiredRoutes.set(routeKey(n), n);
  }
  for (const [k, r] of desiredRoutes) {
    if (blocked.has(r.dev)) continue;
    const a = actualRoutes.get(k);
    if (!a || a.via !== r.via || a.dev !== r.dev || (a.src ?? undefined) !== (r.src ?? undefined)) {
      changes.push({ kind: "route-replace", route: r });
    }
  }
  for (const [k, a] of actualRoutes) if (!desiredRoutes.has(k)) changes.push({ kind: "route-del", route: a });
  return changes;
}

/** Policy rules. */
function diffRules(desired: HostState, actual: ActualState): Change[] {
  const changes: Change[] = [];
  const ruleKey = (r: { family: number; priority: number; table: number }): string =>
    `${r.family}|${r.priority}|${r.table}`;
  const actualRules = new Set(actual.rules.map(ruleKey));
  const desiredRules = new Set(desired.rules.map(ruleKey));
  for (const r of desired.rules)
    if (!actualRules.has(ruleKey(r))) changes.push({ kind: "rule-add", rule: r });
  for (const r of actual.rules)
    if (!desiredRules.has(ruleKey(r))) changes.push({ kind: "rule-del", rule: r });
  return changes;
}

/** nftables: hash of the rendered script in the table comment; listing compared for tampering. */
function diffNft(desired: HostState, actual: ActualState, memo: DiffMemo): Change[] {
  const nft = renderNft(desired.nft);
  let reason: string | undefined;
  if (!actual.nft.present) reason = "absent";
  else if (actual.nft.hash !== nft.hash) reason = "intent changed";
  else if (memo.nftListing !== undefined && memo.nftListing !== actual.nft.listing)
    reason = "listing differs (tampered)";
  return reason ? [{ kind: "nft-apply", script: nft.script, hash: nft.hash, reason }] : [];
}

/** xfrm policies and states. */
function diffXfrm(desired: HostState, actual: ActualState): Change[] {
  const changes: Change[] = [];
  const actualPol = new Map(actual.xfrm.policies.map((p) => [policyKey(p), p]));
  const desiredPol = new Map(desired.xfrm.policies.map((p) => [policyKey(p), p]));
  for (const [k, p] of desiredPol) {
    const a = actualPol.get(k);
    if (
      !a ||
      a.reqid !== p.reqid ||
      a.priority !== p.priority ||
      a.tmplSrc !== canonAddr(p.tmplSrc) ||
      a.tmplDst !== canonAddr(p.tmplDst)
    ) {
      changes.push({ kind: "xfrm-policy-add", policy: p });
    }
  }
  for (const [k, a] of actualPol)
    if (!desiredPol.has(k)) changes.push({ kind: "xfrm-policy-del", policy: a });
  const actualSt = new Map(actual.xfrm.states.map((s) => [stateKey(s), s]));
  const desiredSt = new Map(desired.xfrm.states.map((s) => [stateKey(s), s]));
  for (const [k, s] of desiredSt) {
    const a = actualSt.get(k);
    const keyDiffers =
      a !== undefined && a.aeadKeyHex !== "" && a.aeadKeyHex.toLowerCase() !== s.aeadKeyHex.toLowerCase();
    if (a && (a.reqid !== s.reqid || keyDiffers)) changes.push({ kind: "xfrm-state-del", state: a });
    if (!a || a.reqid !== s.reqid || keyDiffers) changes.push({ kind: "xfrm-state-add", state: s });
  }
  for (const [k, a] of actualSt) if (!desiredSt.has(k)) changes.push({ kind: "xfrm-state-del", state: a });
  return changes;
}

function diffSysctls(desired: HostState, actual: ActualState, memo: DiffMemo): Change[] {
  const changes: Change[] = [];
  for (const s of desired.sysctls) {
    if (memo.sysctlSkip?.has(s.key)) continue;
    const cur = actual.sysctls[s.key];
    if (cur === undefined || normWs(cur) !== normWs(s.value)) changes.push({ kind: "sysctl-set", sysctl: s });
  }
  return changes;
}

/**
 * Pure: the kernel state that a converged reconcile of `hs` leaves behind, as `readActual` would
 * report it (Kosmos-owned objects only, canonical forms). `diff(hs, actualOf(hs))` is empty, so a
 * pass can diff a new plan against the last converged one without reading the kernel (see
 * Reconciler.reconcile `fromLast`). `nftListing`: the listing recorded after the last nft apply.
 */
export function actualOf(hs: HostState, nftListing = ""): ActualState {
  return {
    devices: hs.devices.map((d) => {
      const a: ActualDevice = {
        name: d.name,
        kind: "vxlan",
        vni: d.vni,
        port: d.port,
        local: canonAddr(d.local),
        learning: false,
        mtu: d.mtu,
        mac: canonMac(d.mac),
        up: true,
        addresses: [canonCidr(d.address)],
      };
      if (d.parent !== undefined) a.parent = d.parent;
      return a;
    }),
    routes: hs.routes.map((r) => {
      const a: ActualRoute = {
        dst: canonCidr(r.dst),
        via: canonAddr(r.via),
        dev: r.dev,
        family: r.family,
        table: r.table,
      };
      if (r.src) a.src = canonAddr(r.src);
      return a;
    }),
    rules: hs.rules.map((r) => ({ ...r })),
    fdb: hs.fdb.map((e) => ({ dev: e.dev, mac: canonMac(e.mac), dst: canonAddr(e.dst) })),
    neighbors: hs.neighbors.map((n) => ({
      dev: n.dev,
      ip: canonAddr(n.ip),
      mac: canonMac(n.mac),
      family: n.family,
      permanent: true,
    })),
    nft: { present: true, hash: renderNft(hs.nft).hash, listing: nftListing },
    xfrm: {
      policies: hs.xfrm.policies.map((p) => ({
        ...p,
        src: canonCidr(p.src),
        dst: canonCidr(p.dst),
        tmplSrc: canonAddr(p.tmplSrc),
        tmplDst: canonAddr(p.tmplDst),
      })),
      states: hs.xfrm.states.map((x) => ({ ...x, src: canonAddr(x.src), dst: canonAddr(x.dst) })),
    },
    sysctls: Object.fromEntries(hs.sysctls.map((x) => [x.key, x.value])),
  };
}

/** Changes that remove everything Kosmos owns (uninstall). */
export function uninstallChanges(actual: ActualState): Change[] {
  const empty = emptyHostState("", "", 0);
  const changes = diff(empty, actual).filter((c) => c.kind !== "nft-apply");
  if (actual.nft.present) changes.push({ kind: "nft-delete" });
  return changes;
}

/** Links with our device names that are not vxlan (never touched; reported as conflicts). */
export function conflicts(desired: HostState, actual: ActualState): string[] {
  const names = new Set(desired.devices.map((d) => d.name));
  return actual.devices
    .filter((a) => a.kind !== "vxlan" && names.has(a.name))
    .map((a) => `${a.name} (kind ${a.kind})`);
}
