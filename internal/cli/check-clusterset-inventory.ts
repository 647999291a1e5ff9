/**
 * `kosmosctl check --inventory FILE -p dns`: the clusterset-name check on a real cluster set
 * (docs/check.md "Clusterset names from every pod"): the inventory's pods, entered by their nodes'
 * agents; expected answers from the clusters' API servers (a `kubeconfig` per cluster in the file)
 * or the agents' replicas. `labClustersetInventory` writes a lab as such an inventory, so the same
 * path runs end to end on the lab.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { KubeClient, loadKubeConfig } from "../kube/index.ts";
import {
  AgentExecutor,
  agentPodExecutor,
  type Endpoint,
  expectationsFrom,
  type Inventory,
  inventoryResolverPods,
  NetcheckError,
  type ResolverChoice,
} from "../netcheck/index.ts";
import { type ClustersetFlags, labResolverPods, runClustersetAction } from "./check-clusterset.ts";

/** API clients of the clusters that name a kubeconfig (relative to the file); why the others have none. */
function inventoryClients(
  inv: Inventory,
  file: string,
): { clients: Map<string, KubeClient>; why: Map<string, string> } {
  const clients = new Map<string, KubeClient>();
  const why = new Map<string, string>();
  for (const c of inv.clusters) {
    if (!c.kubeconfig) {
      why.set(c.name, `no kubeconfig for ${c.name} in the inventory`);
      continue;
    }
    const path = isAbsolute(c.kubeconfig) ? c.kubeconfig : resolve(dirname(file), c.kubeconfig);
    try {
      clients.set(c.name, new KubeClient(loadKubeConfig(path)));
    } catch (e) {
      why.set(c.name, `cannot load its kubeconfig ${path}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  return { clients, why };
}

/** `kosmosctl check --inventory FILE -p dns`: run, print, set the exit code. */
export async function clustersetInventoryAction(
  o: ClustersetFlags & { resolver: ResolverChoice },
  inv: Inventory,
  file: string,
): Promise<void> {
  const { pods, errors } = inventoryResolverPods(inv, o.resolver, o.src);
  if (pods.length === 0 && Object.keys(errors).length === 0)
    throw new NetcheckError(
      "NO_PAIRS",
      `no pod endpoint to ask in ${file}${o.src ? ` (clusters ${o.src.join(",")})` : ""}`,
      "add the probe pods (kind: pod, with the execPrefix that enters them) to the inventory (docs/check.md)",
    );
  const { clients, why } = inventoryClients(inv, file);
  const agents = new AgentExecutor(inv.agents);
  try {
    // Probes run on the pods' nodes, through their agents: more pods at once than on one machine.
    await runClustersetAction(
      inv.name,
      pods,
      errors,
      expectationsFrom(clients, agents, (c) => why.get(c) ?? `no API client for ${c}`),
      agentPodExecutor(agents),
      { ...o, concurrencyCap: 16 },
    );
  } finally {
    for (const c of clients.values()) c.close();
  }
}

/**
 * A lab as an inventory file for the check above (its nodes, the pods the clusterset check finds,
 * the agents' admin sockets, the clusters' kubeconfigs): `kosmosctl check --inventory` on it runs
 * the real-cluster path on the lab. The pods' execPrefix (`nsenter -t PID -n -m --`) is run by
 * their node's agent, so the agent must see the host's PIDs (the lab's DaemonSet pods do).
 */
export async function labClustersetInventory(name: string): Promise<Inventory> {
  const lab = await labResolverPods(name);
  const { plan, kube } = lab;
  const nodes: Endpoint[] = plan.nodes.map((n) => ({
    id: n.name,
    kind: "node",
    cluster: n.cluster,
    node: n.name,
    ipv4: n.ipv4,
    execPrefix: [],
  }));
  const pods: Endpoint[] = lab.pods.map((p) => ({
    id: p.id,
    kind: "pod",
    cluster: p.cluster,
    node: p.node,
    execPrefix: p.execPrefix,
  }));
  return {
    // Not `lab/<name>`: that prefix makes --resume treat the results as a lab's.
    name: `lab-inventory/${name}`,
    clusters: plan.clusters.map((c) => {
      const kubeconfig = kube?.clusters.find((k) => k.name === c.name)?.kubeconfig;
      return {
        name: c.name,
        networkType: c.networkType,
        ipFamily: c.ipFamily,
        podEgressSNAT: false,
        ...(kubeconfig ? { kubeconfig } : {}),
      };
    }),
    endpoints: [...nodes, ...pods],
    agents: lab.targets,
  };
}
