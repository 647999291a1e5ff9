/**
 * Agent discovery (pure): the ClusterNodes the controller maintains → the agent endpoints it may seed.
 * Every node runs an agent on `<underlay IP>:<port>` (the DaemonSet's hostNetwork listener). Per cluster the
 * candidates are ordered gateway candidates first, then by name; the Seeder pushes to a few of them and
 * rotates to the next ones when a push fails (the agents gossip the topology to everyone else).
 */
import type { AgentEndpoint } from "./push.ts";
import { type ClusterNodeObject, clusterOf, isGatewayRole } from "./types.ts";

/** ClusterNode (and member Node) annotation carrying the agent's TLS certificate SHA-256 fingerprint. */
export const FINGERPRINT_ANNOTATION = "kosmos.io/agent-fingerprint";

export interface DiscoveryOptions {
  token: string;
  /** Agent API port (default 5678, `KOSMOS_AGENT_PORT`). */
  port?: number;
  /** Default https (the agents' listener); http for tests and plain-HTTP agents. */
  scheme?: "http" | "https";
}

/**
 * Candidate agents per cluster, in preference order (gateway candidates first, then by node name).
 * With `clusters`, ClusterNodes of any other cluster are ignored (left behind by an unjoin).
 */
export function discoverAgents(
  clusterNodes: ClusterNodeObject[],
  o: DiscoveryOptions,
  clusters?: Set<string>,
): Record<string, AgentEndpoint[]> {
  const port = o.port ?? 5678;
  const scheme = o.scheme ?? "https";
  const out: Record<string, AgentEndpoint[]> = {};
  const sorted = [...clusterNodes]
    .filter((n) => {
      const c = clusterOf(n);
      return c !== undefined && (!clusters || clusters.has(c)) && (n.spec?.ip || n.spec?.ip6);
    })
    .sort((a, b) => {
      const ga = isGatewayRole(a.spec?.roles) ? 0 : 1;
      const gb = isGatewayRole(b.spec?.roles) ? 0 : 1;
      return ga - gb || a.metadata.name.localeCompare(b.metadata.name);
    });
  for (const n of sorted) {
    const host = n.spec?.ip ? n.spec.ip : `[${n.spec?.ip6}]`;
    const fp = n.metadata.annotations?.[FINGERPRINT_ANNOTATION];
    const ep: AgentEndpoint = { url: `${scheme}://${host}:${port}`, token: o.token };
    // Self-signed agent certificates: pin the published fingerprint; without one, the pusher has the
    // agent prove its certificate with the token before it sends the token (api/identity.ts).
    if (scheme === "https" && fp) ep.tls = { fingerprint256: fp };
    const cluster = clusterOf(n)!;
    const list = out[cluster] ?? [];
    list.push(ep);
    out[cluster] = list;
  }
  return out;
}
