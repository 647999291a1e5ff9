/**
 * Helpers for the end-to-end lab tests (test/e2e/lab-*.test.ts): unique lab names, JSON calls to
 * agents over their admin sockets, normalized kernel listings of a node namespace (to compare
 * before/after), and probe runs that retry until the network converges.
 */
import { expect } from "bun:test";
import { agentFetch, agentSocket } from "../../internal/lab/lab.ts";
import type { LabPlan } from "../../internal/lab/plan.ts";
import { expectedProbes, type MatrixOptions, type ProbeResult, runProbes } from "../../internal/lab/probe.ts";
import { inNs } from "../../internal/lab/sh.ts";

/** A lab name unique to this test process: `e<tag><pid base36>`, at most 12 characters. */
export function labName(tag: string): string {
  return `e${tag}${process.pid.toString(36)}`.slice(0, 12);
}

export async function until<T>(
  what: string,
  timeoutMs: number,
  fn: () => Promise<T | undefined | false>,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    await Bun.sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
}

/** JSON request to an agent over its admin socket; returns the HTTP status and the parsed body. */
export async function agentJson<T = Record<string, unknown>>(
  lab: string,
  node: string,
  path: string,
  init: { method?: string; body?: unknown; token?: string; timeoutMs?: number } = {},
): Promise<{ status: number; body: T }> {
  const r = await agentFetch(agentSocket(lab, node), path, { timeoutMs: 15_000, ...init });
  const text = await r.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* plain text answer */
  }
  return { status: r.status, body: body as T };
}

/** POST a raw (possibly non-JSON or huge) body to an agent's admin socket. */
export async function agentPostRaw(
  lab: string,
  node: string,
  path: string,
  body: string,
  token: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`http://localhost${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body,
    unix: agentSocket(lab, node),
    signal: AbortSignal.timeout(30_000),
  } as RequestInit);
  const text = await r.text();
  try {
    return { status: r.status, body: JSON.parse(text) as Record<string, unknown> };
  } catch {
    return { status: r.status, body: { text } };
  }
}

// ---------------------------------------------------------------------------------------------
// Kernel listings.

type Json = Record<string, unknown>;

async function jsonList(ns: string, argv: string[]): Promise<Json[]> {
  const r = await inNs(ns, argv);
  const text = r.stdout.trim();
  return text ? (JSON.parse(text) as Json[]) : [];
}

/** JSON lines, sorted, without timers (bridge gc/hello timers tick on their own). */
const lines = (xs: unknown[]) =>
  xs.map((x) => JSON.stringify(x, (k, v: unknown) => (k.endsWith("_timer") ? undefined : v))).sort();

/** Remove nft counters (they move with traffic) and tables named in `skipTables`. */
export function normalizeNft(ruleset: string, skipTables: string[] = []): string[] {
  const out: string[] = [];
  let skipping = false;
  for (const raw of ruleset.split("\n")) {
    const line = raw.replace(/counter packets \d+ bytes \d+/g, "counter").trimEnd();
    const m = /^table (\S+) (\S+) \{/.exec(line);
    if (m) skipping = skipTables.includes(`${m[1]} ${m[2]}`);
    if (!skipping && line.trim() !== "") out.push(line);
    if (line === "}") skipping = false;
  }
  return out;
}

/**
 * The node namespace's kernel state as sorted lines per listing, without what moves on its own:
 * dynamic neighbour entries (ARP/NDP cache), learned FDB entries, nft counters.
 */
export type Listings = Record<
  "link" | "addr" | "route4" | "route6" | "rule4" | "rule6" | "fdb" | "neigh" | "nft" | "xfrm",
  string[]
>;

export async function kernelListings(ns: string, opts: { skipNftTables?: string[] } = {}): Promise<Listings> {
  const [links, addrs, r4, r6, ru4, ru6, fdb, neigh, nft, xfrm] = await Promise.all([
    jsonList(ns, ["ip", "-d", "-j", "link", "show"]),
    jsonList(ns, ["ip", "-j", "addr", "show"]),
    jsonList(ns, ["ip", "-4", "-d", "-j", "route", "show", "table", "all"]),
    jsonList(ns, ["ip", "-6", "-d", "-j", "route", "show", "table", "all"]),
    jsonList(ns, ["ip", "-4", "-j", "rule", "show"]),
    jsonList(ns, ["ip", "-6", "-j", "rule", "show"]),
    jsonList(ns, ["bridge", "-j", "fdb", "show"]),
    jsonList(ns, ["ip", "-j", "neigh", "show"]),
    inNs(ns, ["nft", "list", "ruleset"]),
    inNs(ns, ["ip", "xfrm", "policy", "list"]),
  ]);
  return {
    link: lines(links),
    addr: lines(addrs),
    route4: lines(r4),
    route6: lines(r6),
    rule4: lines(ru4),
    rule6: lines(ru6),
    fdb: lines(fdb.filter((e) => e.state === "permanent" || e.state === "static")),
    neigh: lines(neigh.filter((e) => Array.isArray(e.state) && e.state.includes("PERMANENT"))),
    nft: normalizeNft(nft.stdout, opts.skipNftTables),
    xfrm: xfrm.stdout
      .split(/\n(?=\S)/)
      .map((b) => b.trim())
      .filter(Boolean)
      .sort(),
  };
}

/** Human-readable difference of two listings (lines only in `a` as `-`, only in `b` as `+`). */
export function diffListings(a: Record<string, string[]>, b: Record<string, string[]>): string[] {
  const out: string[] = [];
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = a[key] ?? [];
    const y = b[key] ?? [];
    const ys = new Set(y);
    const xs = new Set(x);
    for (const l of x) if (!ys.has(l)) out.push(`${key} - ${l}`);
    for (const l of y) if (!xs.has(l)) out.push(`${key} + ${l}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Probes.

export function formatFailure(f: ProbeResult): string {
  return `${f.src} -> ${f.dst} ${f.ip} ${f.proto}: ${f.detail}`;
}

/**
 * Run the expected probes; re-run the failing ones until all pass or `timeoutMs` (the network may
 * still be converging, or gossip may have declared a live peer dead for a moment on a loaded
 * machine). Returns the probe count and the last failures. KOSMOS_E2E_DEBUG=1 prints each round.
 */
export async function probeUntilPass(
  plan: LabPlan,
  opts: MatrixOptions & { filter?: (p: ReturnType<typeof expectedProbes>[number]) => boolean } = {},
  timeoutMs = 30_000,
): Promise<{ total: number; results: ProbeResult[]; failed: string[] }> {
  const probes = expectedProbes(plan, opts).filter((p) => opts.filter?.(p) ?? true);
  expect(probes.length).toBeGreaterThan(0);
  const deadline = Date.now() + timeoutMs;
  const results: ProbeResult[] = new Array(probes.length);
  let pending = probes.map((_, i) => i);
  while (pending.length > 0) {
    const res = await runProbes(
      pending.map((i) => probes[i]!),
      { concurrency: opts.concurrency ?? 8, timeoutSec: 1 },
    );
    res.forEach((r, j) => {
      results[pending[j]!] = r;
    });
    if (process.env.KOSMOS_E2E_DEBUG)
      console.error("probe round", res.filter((r) => !r.ok).map(formatFailure));
    pending = pending.filter((_, j) => !res[j]?.ok);
    if (pending.length === 0 || Date.now() > deadline) break;
    await Bun.sleep(300);
  }
  return { total: probes.length, results, failed: pending.map((i) => formatFailure(results[i]!)) };
}

/** Probes whose source or destination is a pod of `node`. */
export const touchesNode = (node: string) => (p: ReturnType<typeof expectedProbes>[number]) =>
  p.src.node === node || p.dst.id.startsWith(`${node}-pod-`);

// ---------------------------------------------------------------------------------------------
// Listings taken at a settled moment.

export interface AgentView {
  ready: boolean;
  planHash?: string;
  runs: number;
  members: Record<string, string>;
  ipsec?: { status: string; message?: string };
  lastError?: string;
}

export async function agentState(lab: string, node: string): Promise<AgentView> {
  const r = await agentJson<AgentView>(lab, node, "/v1/state", { timeoutMs: 5000 });
  if (r.status !== 200) throw new Error(`${node} /v1/state: HTTP ${r.status}`);
  return r.body;
}

const allAlive = (s: AgentView) => Object.values(s.members).every((m) => m === "alive");

/**
 * Kernel listings of `ns` taken while the agent of `node` is ready, sees every member alive (when
 * `requireAlive`, the default) and its plan hash did not move while listing. Gossip may declare a
 * live peer dead on a loaded machine, and the agent then withdraws its routes until it is alive
 * again; a listing taken in that window says nothing about the property under test.
 */
export async function settledListings(
  lab: string,
  node: string,
  ns: string,
  opts: { requireAlive?: boolean; skipNftTables?: string[]; timeoutMs?: number } = {},
): Promise<{ hash: string; listings: Listings }> {
  return until(
    `${node} to settle (ready, peers alive, stable plan)`,
    opts.timeoutMs ?? 30_000,
    async () => {
      const s1 = await agentState(lab, node);
      if (!s1.ready || !s1.planHash || ((opts.requireAlive ?? true) && !allAlive(s1))) return undefined;
      const listings = await kernelListings(ns, { skipNftTables: opts.skipNftTables });
      const s2 = await agentState(lab, node);
      if (s2.planHash !== s1.planHash || ((opts.requireAlive ?? true) && !allAlive(s2))) return undefined;
      return { hash: s1.planHash, listings };
    },
    200,
  );
}
