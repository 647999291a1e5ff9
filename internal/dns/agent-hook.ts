/**
 * The one hook the agent calls to serve `clusterset.local` on a node-local address
 * (`kosmos-agent --dns-listen`): the zone is built from the agent's own replica and SWIM view, so
 * names keep resolving with the controllers and every API server down. Rebuilt after a replica
 * change, and at least every `refreshMs` for liveness changes (endpoints of a node declared dead
 * leave the answers within the failure-detection time plus `refreshMs`).
 */
import { readFileSync } from "node:fs";
import type { Logger } from "../observability/index.ts";
import type { MemberState, Topology } from "../topology/index.ts";
import { type RunningDns, startDnsServer, type Upstream } from "./server.ts";
import { buildZone, type Zone } from "./zone.ts";

export interface AgentDnsSource {
  node: string;
  store: { snapshot(): Topology; onChange(fn: () => void): () => void };
  liveness: () => Record<string, MemberState>;
}

export interface AgentDnsOptions {
  /** `host:port` (IPv6 in brackets). */
  listen: string;
  upstreams?: Upstream[];
  refreshMs?: number;
  rateLimit?: { qps: number; burst: number };
  logger?: Logger;
}

export function parseHostPort(s: string, defPort = 53): Upstream {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:]+)(?::(\d+))?$/.exec(s);
  if (!m?.[1]) {
    if (s.includes(":") && !s.includes("[")) return { address: s, port: defPort }; // bare IPv6
    throw new Error(`not host:port: ${s}`);
  }
  return { address: m[1], port: m[2] ? Number(m[2]) : defPort };
}

/** The nameservers of a resolv.conf (the cluster's DNS, as the node sees it). */
export function resolvConfUpstreams(path = "/etc/resolv.conf"): Upstream[] {
  try {
    return readFileSync(path, "utf8")
      .split("\n")
      .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
      .filter((x): x is string => !!x)
      .map((address) => ({ address, port: 53 }));
  } catch {
    return [];
  }
}

/**
 * The upstreams to forward to, without the server's own address: a hostNetwork agent whose pod
 * resolv.conf points at the node-local DNS (itself) would otherwise forward every other name to
 * itself, forever. With none left, other names are answered REFUSED at once.
 */
export function upstreamsWithout(listen: Upstream, candidates: Upstream[]): Upstream[] {
  return candidates.filter((u) => !(u.address === listen.address && u.port === listen.port));
}

export async function startAgentDns(
  src: AgentDnsSource,
  o: AgentDnsOptions,
): Promise<RunningDns & { zone(): Zone }> {
  const refreshMs = o.refreshMs ?? 1000;
  let zone: Zone | undefined;
  let builtAt = 0;
  const unsubscribe = src.store.onChange(() => {
    zone = undefined;
  });
  const current = (): Zone => {
    const now = Date.now();
    if (!zone || now - builtAt >= refreshMs) {
      const t = src.store.snapshot();
      const self = t.nodes.find((n) => n.name === src.node)?.cluster ?? "";
      zone = buildZone(t, self, src.liveness());
      builtAt = now;
    }
    return zone;
  };
  const listen = parseHostPort(o.listen);
  const dns = await startDnsServer({
    address: listen.address,
    port: listen.port,
    zone: current,
    upstreams: upstreamsWithout(listen, o.upstreams ?? resolvConfUpstreams()),
    rateLimit: o.rateLimit,
    logger: o.logger,
  });
  return {
    ...dns,
    zone: current,
    async stop() {
      unsubscribe();
      await dns.stop();
    },
  };
}
