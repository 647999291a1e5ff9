/**
 * `kosmosctl check --inventory FILE -p dns`: the clusterset-name check on a real cluster set. The
 * pods are the inventory's pod endpoints, entered by their node's agent (its exec API, with the
 * endpoint's execPrefix, as the pair probes are); the resolver each one asks is the first
 * nameserver of its own resolv.conf, its node's agent DNS address (`--resolver node`: the node
 * endpoint's address, where `install --mcs` makes the agent listen), or a given address. Expected
 * answers: the cluster's API server when the inventory names a kubeconfig for it, else the replica
 * of the pod's node's agent (the same code as the lab's check with its API servers down).
 */
import { tryParseIp } from "../topology/index.ts";
import type { AgentExecutor } from "./agents.ts";
import type { PodExecutor, ResolverPod } from "./clusterset-check.ts";
import type { Endpoint, Inventory } from "./types.ts";

export type ResolverChoice =
  | { kind: "resolv.conf" }
  | { kind: "node" }
  | { kind: "address"; address: string };

/** `--resolver`: `resolv.conf` (default), `node`, or an IPv4/IPv6 address; undefined when invalid. */
export function parseResolverChoice(v: string): ResolverChoice | undefined {
  if (v === "resolv.conf" || v === "pod") return { kind: "resolv.conf" };
  if (v === "node" || v === "agent") return { kind: "node" };
  return tryParseIp(v) ? { kind: "address", address: v } : undefined;
}

/**
 * Whether running under `prefix` reads the pod's own /etc/resolv.conf: `ip netns exec` (its
 * /etc/netns/<ns>/resolv.conf) or an nsenter that enters a mount namespace. An nsenter of the
 * network namespace alone (`--net=/proc/PID/ns/net`) reads the agent's file; an empty prefix is
 * the agent itself. Other prefixes are trusted.
 */
export function readsPodResolvConf(prefix: string[]): boolean {
  if (prefix.length === 0) return false;
  if (prefix[0] === "ip" && prefix[1] === "netns" && prefix[2] === "exec") return true;
  if (!prefix[0]?.endsWith("nsenter")) return true;
  return prefix.some(
    (a) =>
      a === "-m" ||
      a === "--mount" ||
      a.startsWith("--mount=") ||
      a === "-a" ||
      a === "--all" ||
      (/^-[a-zA-Z]+$/.test(a) && a.includes("m")),
  );
}

/** The address of `node`'s node endpoint in the inventory (IPv4 first): where its agent's DNS listens. */
function nodeAddress(inv: Inventory, node: string): string | undefined {
  const n = inv.endpoints.find((e) => e.kind === "node" && e.node === node);
  return n?.ipv4 ?? n?.ipv6;
}

function resolverOf(
  inv: Inventory,
  e: Endpoint,
  choice: ResolverChoice,
): { resolver?: string; error?: string } {
  if (e.dnsResolver) return { resolver: e.dnsResolver };
  if (choice.kind === "address") return { resolver: choice.address };
  if (choice.kind === "node") {
    const a = nodeAddress(inv, e.node);
    return a
      ? { resolver: a }
      : {
          error: `--resolver node: the inventory has no node endpoint for ${e.node} (its address is where the agent's DNS listens); add it, or give --resolver ADDRESS or the pod's dnsResolver`,
        };
  }
  if (!readsPodResolvConf(e.execPrefix))
    return {
      error: `its execPrefix (${e.execPrefix.join(" ") || "none"}) does not enter the pod's mount namespace, so /etc/resolv.conf would be the agent's; add --mount=/proc/<pid>/ns/mnt to it, or give --resolver node|ADDRESS or the pod's dnsResolver`,
    };
  return {};
}

/**
 * The pods of an inventory the check asks (pure): its pod endpoints (of `src` clusters, when given),
 * each with the resolver to ask; `errors`: pods that cannot be checked, with the reason.
 */
export function inventoryResolverPods(
  inv: Inventory,
  choice: ResolverChoice,
  src?: string[],
): { pods: ResolverPod[]; errors: Record<string, string> } {
  const pods: ResolverPod[] = [];
  const errors: Record<string, string> = {};
  for (const e of inv.endpoints) {
    if (e.kind !== "pod" || (src && !src.includes(e.cluster))) continue;
    const r = resolverOf(inv, e, choice);
    if (r.error) {
      errors[e.id] = r.error;
      continue;
    }
    pods.push({
      id: e.id,
      cluster: e.cluster,
      node: e.node,
      execPrefix: e.execPrefix,
      ...(r.resolver ? { resolver: r.resolver } : {}),
    });
  }
  return { pods: pods.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)), errors };
}

/** Whether any endpoint serves DNS (`dnsPort`): then `-p dns` means the rcode probes between pairs. */
export function hasDnsTargets(inv: Inventory): boolean {
  return inv.endpoints.some((e) => e.dnsPort !== undefined);
}

/** Runs the probe script in each pod through its node's agent (exec API, the pod's execPrefix). */
export function agentPodExecutor(agents: AgentExecutor): PodExecutor {
  return (pod) => async (argv, input, timeoutSec) => {
    const r = await agents.capture(pod.node, [...pod.execPrefix, ...argv], timeoutSec, input);
    return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  };
}
