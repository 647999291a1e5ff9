import type { HostState } from "./hoststate.ts";
import { KOSMOS_NFT_TABLE, KOSMOS_ROUTE_PROTO } from "./hoststate.ts";
import { KOSMOS_DEVICES } from "./normalize.ts";
import {
  parseFdb,
  parseLinks,
  parseNeigh,
  parseNft,
  parseRoutes,
  parseRules,
  parseSysctl,
  parseXfrmPolicies,
  parseXfrmStates,
} from "./parse.ts";
import type { Runner } from "../sys/index.ts";
import type { ActualState } from "./types.ts";

/**
 * xfrm ownership: a policy/state is Kosmos's when its reqid lies in the reserved range
 * [KOSMOS_REQID_MIN, KOSMOS_REQID_MAX] (0x4b000000-0x4bffffff, 'K' in the top byte), or when the
 * current desired HostState names that reqid. Uninstall (no desired state) removes the range only.
 */
export const KOSMOS_REQID_MIN = 0x4b000000;
export const KOSMOS_REQID_MAX = 0x4bffffff;

export interface ReadOptions {
  /** Sysctl keys to read (the desired ones). */
  sysctlKeys?: string[];
  /** Extra reqids to treat as ours (those of the desired state). */
  reqids?: Iterable<number>;
  /** Rule priority/table keys ("prio/table") to treat as ours when rule protocols are unsupported. */
  ruleKeys?: Iterable<string>;
  /** Take the nft table as this instead of listing it (Reconciler: a trusted resync). */
  nft?: ActualState["nft"];
}

export function readOptionsFor(desired: HostState): ReadOptions {
  const reqids = new Set<number>();
  for (const p of desired.xfrm.policies) reqids.add(p.reqid);
  for (const s of desired.xfrm.states) reqids.add(s.reqid);
  return { sysctlKeys: desired.sysctls.map((s) => s.key), reqids };
}

/** Read the Kosmos-owned kernel state (devices by name+kind, routes by proto 75, ...). */
export async function readActual(runner: Runner, opts: ReadOptions = {}): Promise<ActualState> {
  const reqids = new Set(opts.reqids ?? []);
  const owned = (r: number): boolean => reqids.has(r) || (r >= KOSMOS_REQID_MIN && r <= KOSMOS_REQID_MAX);
  const ruleKeys = new Set(opts.ruleKeys ?? []);
  const proto = String(KOSMOS_ROUTE_PROTO);
  const keys = opts.sysctlKeys ?? [];
  const [links, addrs, r4, r6, ru4, ru6, nft, xp, xs, sys] = await Promise.all([
    runner.run(["ip", "-d", "-j", "link", "show"]),
    runner.run(["ip", "-j", "addr", "show"]),
    runner.run(["ip", "-4", "-j", "route", "show", "table", "all", "proto", proto]),
    runner.run(["ip", "-6", "-j", "route", "show", "table", "all", "proto", proto]),
    runner.run(["ip", "-4", "-j", "rule", "show"]),
    runner.run(["ip", "-6", "-j", "rule", "show"]),
    opts.nft ? Promise.resolve(undefined) : runner.run(["nft", "list", "table", "inet", KOSMOS_NFT_TABLE]),
    runner.run(["ip", "xfrm", "policy", "list"]),
    runner.run(["ip", "xfrm", "state", "list"]),
    keys.length > 0 ? runner.run(["sysctl", ...keys]) : Promise.resolve({ stdout: "", stderr: "", code: 0 }),
  ]);
  const devices = parseLinks(links.stdout, addrs.stdout, KOSMOS_DEVICES);
  const ours = devices.filter((d) => d.kind === "vxlan").map((d) => d.name);
  const perDev = await Promise.all(
    ours.map(async (dev) => {
      const [fdb, neigh] = await Promise.all([
        runner.run(["bridge", "-j", "fdb", "show", "dev", dev]),
        runner.run(["ip", "-j", "neigh", "show", "dev", dev]),
      ]);
      return { fdb: parseFdb(fdb.stdout, dev), neigh: parseNeigh(neigh.stdout, dev) };
    }),
  );
  return {
    devices,
    routes: [...parseRoutes(r4.stdout, 4), ...parseRoutes(r6.stdout, 6)],
    rules: [...parseRules(ru4.stdout, 4, ruleKeys), ...parseRules(ru6.stdout, 6, ruleKeys)],
    fdb: perDev.flatMap((p) => p.fdb),
    neighbors: perDev.flatMap((p) => p.neigh),
    nft: opts.nft ?? (nft ? parseNft(nft.stdout, nft.code) : { present: false, listing: "" }),
    xfrm: { policies: parseXfrmPolicies(xp.stdout, owned), states: parseXfrmStates(xs.stdout, owned) },
    sysctls: parseSysctl(sys.stdout),
  };
}
