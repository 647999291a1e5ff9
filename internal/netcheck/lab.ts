/**
 * Inventory of a `kosmosctl lab`: every node (probes run by its agent over the admin socket) and
 * every pod (a netns on its node, entered with `ip netns exec`; its echo server answers its id on
 * TCP 8080; UDP 8080 is closed, so a UDP probe is answered by ICMP port unreachable). Nodes are probed on the agent's TLS port (TCP connect, IPv4: the agent listens there).
 */
import { agentSocket, loadLab, LAB_AGENT_PORT, LAB_ECHO_PORT, type LabPlan } from "../lab/index.ts";
import type { Endpoint, Inventory } from "./types.ts";

export function labInventory(plan: LabPlan): Inventory {
  const fams = (ipFamily: string): Array<4 | 6> =>
    ipFamily === "ipv4" ? [4] : ipFamily === "ipv6" ? [6] : [4, 6];
  const endpoints: Endpoint[] = [];
  for (const n of plan.nodes) {
    const c = plan.clusters.find((x) => x.name === n.cluster);
    const f = fams(c?.ipFamily ?? "ipv4");
    endpoints.push({
      id: n.name,
      kind: "node",
      cluster: n.cluster,
      node: n.name,
      ipv4: f.includes(4) ? n.ipv4 : undefined,
      ipv6: f.includes(6) ? n.ipv6 : undefined,
      gatewayCandidate: n.gatewayCandidate,
      execPrefix: [],
      tcp: { port: LAB_AGENT_PORT, families: [4] },
      udp: { port: LAB_AGENT_PORT },
    });
    for (const p of n.pods) {
      endpoints.push({
        id: p.id,
        kind: "pod",
        cluster: p.cluster,
        node: n.name,
        ipv4: p.ipv4,
        ipv6: p.ipv6,
        globalIPv4: p.globalIPv4,
        execPrefix: ["ip", "netns", "exec", p.ns],
        tcp: { port: LAB_ECHO_PORT, families: [4, 6], expect: p.id },
        udp: { port: LAB_ECHO_PORT },
      });
    }
  }
  return {
    name: `lab/${plan.name}`,
    clusters: plan.clusters.map((c) => ({
      name: c.name,
      networkType: c.networkType,
      ipFamily: c.ipFamily,
      podEgressSNAT: false,
    })),
    endpoints,
    agents: Object.fromEntries(
      plan.nodes.map((n) => [n.name, { url: `unix:${agentSocket(plan.name, n.name)}` }]),
    ),
  };
}

export async function loadLabInventory(name: string): Promise<Inventory> {
  const { plan } = await loadLab(name);
  return labInventory(plan);
}
