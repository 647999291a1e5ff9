/** `kosmosctl get nodes` / `get virtualnodes`: the ClusterTree virtual nodes of a root cluster. */
import { NODE_LABEL, NODE_MODE_ANNOTATION, type NodeObject, OWNED_BY_CLUSTER } from "../clustertree/index.ts";
import type { KubeClient } from "../kube/index.ts";
import { renderTable } from "./output.ts";

export interface VirtualNodeRow {
  name: string;
  cluster: string;
  mode: string;
  ready: string;
  cpu: string;
  memory: string;
  /** Root pods bound to it (not finished) / pods it can take. */
  pods: number;
  podCapacity: string;
  address: string;
  kubeletPort?: number;
}

export async function listVirtualNodes(root: KubeClient): Promise<VirtualNodeRow[]> {
  const nodes = await root.list<NodeObject>("/api/v1/nodes", { labelSelector: `${NODE_LABEL}=true` });
  const rows: VirtualNodeRow[] = [];
  for (const n of nodes.items) {
    const pods = await root.list<{ metadata: { name: string } }>("/api/v1/pods", {
      fieldSelector: `spec.nodeName=${n.metadata.name},status.phase!=Succeeded,status.phase!=Failed`,
    });
    const ready = n.status?.conditions?.find((c) => c.type === "Ready");
    rows.push({
      name: n.metadata.name,
      cluster: n.metadata.annotations?.[OWNED_BY_CLUSTER] ?? "",
      mode: n.metadata.annotations?.[NODE_MODE_ANNOTATION] ?? "",
      ready: ready
        ? `${ready.status}${ready.status === "True" ? "" : ` (${ready.reason ?? ""})`}`
        : "Unknown",
      cpu: n.status?.allocatable?.cpu ?? "",
      memory: humanBytes(n.status?.allocatable?.memory),
      pods: pods.items.length,
      podCapacity: n.status?.allocatable?.pods ?? "",
      address: kubeletAddress(n.status?.addresses ?? []),
      kubeletPort: n.status?.daemonEndpoints?.kubeletEndpoint?.Port,
    });
  }
  return rows.sort((a, b) => a.name.localeCompare(b.name));
}

/** The address an API server with the default --kubelet-preferred-address-types dials. */
function kubeletAddress(addrs: { type: string; address: string }[]): string {
  for (const t of ["Hostname", "InternalDNS", "InternalIP", "ExternalDNS", "ExternalIP"]) {
    const a = addrs.find((x) => x.type === t);
    if (a) return a.address;
  }
  return "";
}

function humanBytes(q: string | undefined): string {
  if (!q || !/^\d+$/.test(q)) return q ?? "";
  const n = Number(q);
  for (const [u, f] of [
    ["Ti", 2 ** 40],
    ["Gi", 2 ** 30],
    ["Mi", 2 ** 20],
  ] as const)
    if (n >= f) return `${(n / f).toFixed(1).replace(/\.0$/, "")}${u}`;
  return q;
}

export function virtualNodesTable(rows: VirtualNodeRow[]): string {
  return renderTable(
    ["VIRTUAL NODE", "LEAF CLUSTER", "MODE", "READY", "CPU", "MEMORY", "PODS", "KUBELET"],
    rows.map((r) => [
      r.name,
      r.cluster,
      r.mode,
      r.ready,
      r.cpu,
      r.memory,
      `${r.pods}/${r.podCapacity}`,
      r.kubeletPort ? `${r.address}:${r.kubeletPort}` : "",
    ]),
  );
}
