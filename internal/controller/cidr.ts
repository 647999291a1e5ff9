/**
 * CIDR detection (pure): pod CIDRs from the clusterpodCIDRs override, Calico IPPools, the
 * kube-controller-manager --cluster-cidr flag or Node spec.podCIDRs; service CIDRs from the
 * kube-apiserver --service-cluster-ip-range flag or from the Service API's "valid range" error.
 */

export interface PodLike {
  metadata?: { name?: string; labels?: Record<string, string> };
  spec?: { containers?: { command?: string[]; args?: string[] }[] };
}

export interface IpPoolLike {
  spec?: { cidr?: string; disabled?: boolean };
}

export interface NodeCidrLike {
  spec?: { podCIDR?: string; podCIDRs?: string[] };
}

export type PodCidrSource = "override" | "calico-ippool" | "controller-manager" | "nodes" | "none";
export type ServiceCidrSource = "apiserver-flag" | "service-api" | "none";

/** Value of `--flag=value` or `--flag value` in a pod's container commands/args. */
export function flagValue(pods: PodLike[], flag: string): string | undefined {
  for (const p of pods) {
    for (const c of p.spec?.containers ?? []) {
      const argv = [...(c.command ?? []), ...(c.args ?? [])];
      for (let i = 0; i < argv.length; i++) {
        const a = argv[i]!;
        if (a.startsWith(`--${flag}=`)) return a.slice(flag.length + 3);
        if (a === `--${flag}` && argv[i + 1] !== undefined) return argv[i + 1];
      }
    }
  }
  return undefined;
}

const splitList = (v: string): string[] =>
  v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);

export function detectPodCIDRs(input: {
  override?: string[];
  cni?: string;
  ipPools?: IpPoolLike[];
  controllerManagerPods?: PodLike[];
  nodes?: NodeCidrLike[];
}): { cidrs: string[]; source: PodCidrSource } {
  if (input.override && input.override.length > 0) return { cidrs: [...input.override], source: "override" };
  const pools = (input.ipPools ?? [])
    .filter((p) => p.spec?.cidr && !p.spec.disabled)
    .map((p) => p.spec!.cidr!);
  if (pools.length > 0) return { cidrs: [...new Set(pools)].sort(), source: "calico-ippool" };
  const cm = flagValue(input.controllerManagerPods ?? [], "cluster-cidr");
  if (cm) return { cidrs: splitList(cm), source: "controller-manager" };
  const fromNodes = (input.nodes ?? []).flatMap((n) =>
    n.spec?.podCIDRs?.length ? n.spec.podCIDRs : n.spec?.podCIDR ? [n.spec.podCIDR] : [],
  );
  if (fromNodes.length > 0) return { cidrs: [...new Set(fromNodes)].sort(), source: "nodes" };
  return { cidrs: [], source: "none" };
}

/** The range(s) in the apiserver's "The range of valid IPs is X" Service error (v4 and/or v6). */
export function serviceCidrFromError(message: string | undefined): string[] {
  if (!message) return [];
  const m = /The range of valid IPs is ([0-9a-fA-F.:/]+)(?: and ([0-9a-fA-F.:/]+))?/.exec(message);
  if (!m) return [];
  return [m[1]!, ...(m[2] ? [m[2]] : [])];
}

export function detectServiceCIDRs(input: { apiserverPods?: PodLike[]; serviceErrorMessage?: string }): {
  cidrs: string[];
  source: ServiceCidrSource;
} {
  const flag = flagValue(input.apiserverPods ?? [], "service-cluster-ip-range");
  if (flag) return { cidrs: splitList(flag), source: "apiserver-flag" };
  const fromErr = serviceCidrFromError(input.serviceErrorMessage);
  if (fromErr.length > 0) return { cidrs: fromErr, source: "service-api" };
  return { cidrs: [], source: "none" };
}
