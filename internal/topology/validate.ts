/**
 * Semantic validation of a topology: shapes via the zod schemas of model.ts, then every rule the
 * planner relies on (CIDR syntax, overlaps, global CIDR maps, overlay address clashes, gateways).
 * Returns a canonical copy (CIDRs and IPs in canonical text, host bits cleared).
 */

import type { z } from "zod";
import { KosmosError } from "../errors/index.ts";
import { type Cidr, canonicalIp, tryParseCidr } from "./cidr.ts";
import { type Cluster, type Node, type Topology, TopologySchema } from "./model.ts";
import {
  checkClusterOverlaps,
  checkClusters,
  checkGlobalMaps,
  checkGlobalOverlaps,
  checkReservedOverlaps,
} from "./validate-clusters.ts";
import { newChecks, type TopologyIssue } from "./validate-context.ts";
import {
  checkGatewayCandidates,
  checkGlobalsVsUnderlay,
  checkNodePodOverlaps,
  checkNodes,
  checkOverlayClashes,
} from "./validate-nodes.ts";

export { familiesOf, type TopologyIssue } from "./validate-context.ts";

export class TopologyError extends KosmosError<"TOPOLOGY_INVALID"> {
  override name = "TopologyError";
  constructor(readonly issues: TopologyIssue[]) {
    const shown = issues.slice(0, 5).map((i) => `${i.path}: ${i.message}`);
    const more = issues.length > 5 ? ` (and ${issues.length - 5} more)` : "";
    super(
      "TOPOLOGY_INVALID",
      `invalid topology: ${shown.join("; ")}${more}`,
      "fix the fields named in `issues` (each path points into the topology document)",
    );
  }
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else if (typeof p === "string" && /^[A-Za-z_$][\w$]*$/.test(p)) out += out ? `.${p}` : p;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out || "(root)";
}

function zodIssues(error: z.ZodError): TopologyIssue[] {
  return error.issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
}

/**
 * Parse and check a topology. Throws TopologyError listing every issue found (each with a path).
 * The checks run in this order, which is the order of the issues (the first five make the error
 * message); later checks use what earlier ones parsed.
 */
export function validateTopology(input: unknown): Topology {
  const parsed = TopologySchema.safeParse(input);
  if (!parsed.success) throw new TopologyError(zodIssues(parsed.error));
  const st = newChecks(parsed.data);
  checkClusters(st);
  checkReservedOverlaps(st);
  checkGlobalMaps(st);
  checkGlobalOverlaps(st);
  checkClusterOverlaps(st);
  checkNodes(st);
  checkNodePodOverlaps(st);
  checkGlobalsVsUnderlay(st);
  checkGatewayCandidates(st);
  checkOverlayClashes(st);
  if (st.issues.length > 0) throw new TopologyError(st.issues);
  return canonicalize(st.topo, st.globals);
}

function canonicalize(topo: Topology, globals: Array<Array<{ key: Cidr; value: Cidr }>>): Topology {
  const cidr = (s: string) => tryParseCidr(s)?.text ?? s;
  const clusters: Cluster[] = topo.clusters.map((c, ci) => ({
    ...c,
    podCIDRs: c.podCIDRs.map(cidr),
    serviceCIDRs: c.serviceCIDRs.map(cidr),
    globalCIDRs: Object.fromEntries((globals[ci] ?? []).map((g) => [g.key.text, g.value.text])),
    bridgeCIDRs: { ip: cidr(c.bridgeCIDRs.ip), ip6: cidr(c.bridgeCIDRs.ip6) },
    localCIDRs: { ip: cidr(c.localCIDRs.ip), ip6: cidr(c.localCIDRs.ip6) },
  }));
  const nodes: Node[] = topo.nodes.map((n) => {
    const out: Node = { ...n, podCIDRs: n.podCIDRs.map(cidr) };
    if (n.ipv4 !== undefined) out.ipv4 = canonicalIp(n.ipv4);
    if (n.ipv6 !== undefined) out.ipv6 = canonicalIp(n.ipv6);
    if (n.elasticIP !== undefined) out.elasticIP = canonicalIp(n.elasticIP);
    return out;
  });
  // The multi-cluster service rows ride along unchanged (the store's schema checks them); dropping
  // them here once meant an agent seeded over HTTP never learned any ServiceImport.
  return {
    clusters,
    nodes,
    ...(topo.serviceImports ? { serviceImports: topo.serviceImports } : {}),
    ...(topo.serviceEndpoints ? { serviceEndpoints: topo.serviceEndpoints } : {}),
  };
}
