/**
 * A lab whose topology comes from Kubernetes: real control planes from the envtest assets
 * (KUBEBUILDER_ASSETS; one etcd, one API server per cluster — a host cluster holding the Kosmos
 * Cluster objects and the member kubeconfig Secrets, and one per member cluster serving its Nodes),
 * and the real controller pointed at the lab's agents. The agents are started unseeded: everything
 * they know comes from Cluster/Node objects through the controller.
 *
 * The objects are derived from the LabPlan (pure: `kubeObjectsForLab`) the way a real cluster would
 * expose them: member Node names are the lab nodes' short names (the controller names ClusterNodes
 * `<cluster>-<node>`, which is the lab agent's --node), InternalIP addresses are the underlay IPs,
 * spec.podCIDRs the per-node pod CIDRs, gateway candidates carry `kosmos.io/gateway=true`. The
 * control planes run as processes (no kube-system pods whose flags could be read), so the Cluster
 * objects carry upstream's `clusterpodCIDRs` override, and the service CIDRs are detected from the
 * Service API's refusal of an out-of-range clusterIP — what a user of such a cluster gets.
 */
import {
  type AgentEndpoint,
  type ClusterObject,
  GATEWAY_LABEL,
  GROUP,
  memberSecretName,
  type RunningController,
  startController,
  VERSION,
} from "../controller/index.ts";
import { ControlPlane, type Etcd, findAssets, startEtcd } from "../controlplane/index.ts";
import {
  applyObjects,
  KubeClient,
  type KubeObject,
  kubeConfigFromYaml,
  loadKosmosCrds,
} from "../kube/index.ts";
import type { Logger } from "../observability/index.ts";
import type { Topology } from "../topology/index.ts";
import type { LabConfig } from "./config.ts";
import { agentSocket, labUp, type UpOptions } from "./lab.ts";
import type { LabClusterPlan, LabPlan } from "./plan.ts";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const KOSMOS_NAMESPACE = "kosmos-system";

/** A Node as the lab describes it. */
export type LabNodeObject = KubeObject & {
  spec: { podCIDR?: string; podCIDRs: string[] };
  status: { addresses: { type: string; address: string }[] };
};

export interface LabKubeObjects {
  clusters: ClusterObject[];
  /** Per member cluster: its Nodes. */
  members: Record<string, { nodes: LabNodeObject[] }>;
}

/** Upstream spelling of the IP family ("all" = dual stack). */
const upstreamFamily = (f: LabClusterPlan["ipFamily"]): "ipv4" | "ipv6" | "all" => (f === "dual" ? "all" : f);

/** The Cluster object of one lab cluster (upstream field names), its kubeconfig in a Secret. */
export function clusterObjectFor(c: LabClusterPlan, plan: LabPlan): ClusterObject {
  const topo = plan.topology.clusters.find((t) => t.name === c.name);
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: "Cluster",
    metadata: { name: c.name },
    spec: {
      kubeconfigSecretRef: { name: memberSecretName(c.name), namespace: KOSMOS_NAMESPACE, key: "kubeconfig" },
      clusterLinkOptions: {
        enable: true,
        cni: "calico",
        networkType: c.networkType,
        ipFamily: upstreamFamily(c.ipFamily),
        defaultNICName: "eth0",
        globalCIDRsMap: { ...c.globalCIDRs },
        clusterpodCIDRs: [...c.podCIDRs],
        ...(topo?.bridgeCIDRs ? { bridgeCIDRs: topo.bridgeCIDRs } : {}),
        ...(topo?.localCIDRs ? { localCIDRs: topo.localCIDRs } : {}),
      },
    },
  };
}

/** Pure: every Kubernetes object the lab's clusters are described by. */
export function kubeObjectsForLab(plan: LabPlan): LabKubeObjects {
  const members: LabKubeObjects["members"] = {};
  for (const c of plan.clusters) {
    const nodes = plan.nodes
      .filter((n) => n.cluster === c.name)
      .map((n): LabNodeObject => {
        const addresses = [
          ...(c.ipFamily !== "ipv6" ? [{ type: "InternalIP", address: n.ipv4 }] : []),
          ...(c.ipFamily !== "ipv4" ? [{ type: "InternalIP", address: n.ipv6 }] : []),
          { type: "Hostname", address: n.short },
        ];
        return {
          apiVersion: "v1",
          kind: "Node",
          metadata: {
            name: n.short,
            labels: {
              "kubernetes.io/hostname": n.short,
              "kubernetes.io/os": "linux",
              ...(n.gatewayCandidate ? { [GATEWAY_LABEL]: "true" } : {}),
            },
          },
          spec: { podCIDR: n.podCIDRs[0], podCIDRs: [...n.podCIDRs] },
          status: { addresses },
        };
      });
    members[c.name] = { nodes };
  }
  return { clusters: plan.clusters.map((c) => clusterObjectFor(c, plan)), members };
}

export interface KubeLabOptions extends Omit<UpOptions, "seedCount" | "noWait"> {
  /** Which agents the controller seeds (default: the first node of each cluster). */
  seedNodes?: string[];
  logger?: Logger;
  /** Controller backoff bounds (ms); small values make API-server restarts recover quickly. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Leader election through a Lease on the host cluster (default true, as deployed). */
  leaderElection?: boolean;
  /** How long the controller may take to derive and push the lab's topology (default 120 s); then it fails. */
  seedTimeoutMs?: number;
}

export interface KubeLab {
  name: string;
  plan: LabPlan;
  token: string;
  etcd: Etcd;
  host: ControlPlane;
  members: Map<string, ControlPlane>;
  hostClient: KubeClient;
  memberClient(cluster: string): KubeClient;
  controller: RunningController;
  agents: AgentEndpoint[];
  /** Stop the controller and the control planes (the lab itself is removed with labDown). */
  stop(): Promise<void>;
}

/** The controller's topology describes the whole plan: every node, every cluster's detected service CIDRs. */
export function describesPlan(t: Topology, plan: LabPlan): boolean {
  const names = (xs: string[]) => JSON.stringify([...xs].sort());
  if (names(t.nodes.map((n) => n.name)) !== names(plan.nodes.map((n) => n.name))) return false;
  return plan.clusters.every(
    (c) => names(t.clusters.find((x) => x.name === c.name)?.serviceCIDRs ?? []) === names(c.serviceCIDRs),
  );
}

/**
 * Resolve once the controller derives the whole plan from the objects and has pushed that topology to
 * an agent (earlier pushes may be partial: ClusterNodes and statuses are written one by one); fail
 * after `ms`, saying why.
 */
async function firstSeed(ctl: RunningController, plan: LabPlan, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  // The topology is derived from the controller's informer caches: watching them here is a look at
  // memory, not at the API server.
  while (!describesPlan(ctl.topology(), plan)) {
    if (Date.now() > deadline) {
      const failing = ctl.seeder
        .status()
        .agents.filter((a) => a.lastError)
        .map((a) => `${a.url}: ${a.lastError}`);
      throw new Error(
        `the controller did not derive the lab's topology in ${ms} ms (${ctl.ready().reason}${failing.length > 0 ? `; ${failing.join("; ")}` : ""})`,
      );
    }
    await Bun.sleep(100);
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the controller pushed the lab's topology to no agent in ${ms} ms`)),
      Math.max(0, deadline - Date.now()),
    );
  });
  try {
    await Promise.race([ctl.seeder.settled({ any: true }), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The service CIDRs of a lab cluster as one API server flag (IPv4 first, as the API server wants). */
const serviceRange = (c: LabClusterPlan): string =>
  [...c.serviceCIDRs].sort((a, b) => Number(a.includes(":")) - Number(b.includes(":"))).join(",");

/**
 * Bring up a lab with unseeded agents, describe it in real control planes and run the controller.
 * Resolves once the controller has derived the whole plan and pushed it to at least one agent.
 */
export async function labFromKubernetes(
  name: string,
  config: LabConfig,
  opts: KubeLabOptions = {},
): Promise<KubeLab> {
  const assets = findAssets(); // fail before the lab is up when there is no control plane to run
  const { seedNodes, logger, minBackoffMs, maxBackoffMs, leaderElection, seedTimeoutMs, ...up } = opts;
  const handle = await labUp(name, config, { ...up, seedCount: 0, noWait: true });
  const { plan, token } = handle;
  const dir = await mkdtemp(join(tmpdir(), `kosmos-lab-k8s-${name}-`));
  const started: ControlPlane[] = [];
  let etcd: Etcd | undefined;
  let controller: RunningController | undefined;
  try {
    etcd = await startEtcd(assets, join(dir, "etcd"));
    const shared = etcd;
    const start = (cp: string, serviceCIDR?: string): Promise<ControlPlane> =>
      ControlPlane.start({ name: `${name}-${cp}`, etcd: shared, assets, dir: join(dir, cp), serviceCIDR });
    const [host, ...memberPlanes] = await Promise.all([
      start("host"),
      ...plan.clusters.map((c) => start(c.name, serviceRange(c))),
    ]);
    started.push(host!, ...memberPlanes);
    const hostClient = new KubeClient(kubeConfigFromYaml(host!.kubeconfig()));
    await hostClient.create("/api/v1/namespaces", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: KOSMOS_NAMESPACE },
    });
    await applyObjects(hostClient, loadKosmosCrds());
    const objs = kubeObjectsForLab(plan);
    const members = new Map<string, ControlPlane>();
    for (const [i, c] of plan.clusters.entries()) {
      const cp = memberPlanes[i]!;
      members.set(c.name, cp);
      const mc = new KubeClient(kubeConfigFromYaml(cp.kubeconfig()));
      for (const n of objs.members[c.name]!.nodes) await mc.create("/api/v1/nodes", n);
      mc.close();
      await hostClient.create(`/api/v1/namespaces/${KOSMOS_NAMESPACE}/secrets`, {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: memberSecretName(c.name) },
        type: "Opaque",
        data: { kubeconfig: Buffer.from(cp.kubeconfig()).toString("base64") },
      });
    }
    for (const c of objs.clusters) await hostClient.create(`/apis/${GROUP}/${VERSION}/clusters`, c);
    const seeds = seedNodes ?? plan.clusters.map((c) => plan.nodes.find((n) => n.cluster === c.name)!.name);
    const agents: AgentEndpoint[] = seeds.map((n) => ({ url: `unix:${agentSocket(name, n)}`, token }));
    controller = await startController({
      kubeconfig: host!.kubeconfig(),
      agents,
      namespace: KOSMOS_NAMESPACE,
      leaderElection: leaderElection ?? true,
      ...(logger ? { logger } : {}),
      minBackoffMs: minBackoffMs ?? 100,
      maxBackoffMs: maxBackoffMs ?? 2000,
    });
    const ctl = controller;
    await firstSeed(ctl, plan, seedTimeoutMs ?? 120_000);
    const stopAll = async (): Promise<void> => {
      // Everything is stopped even when a step fails; the first failure is reported at the end.
      const errors: unknown[] = [];
      const step = (p: Promise<unknown>) => p.catch((e: unknown) => errors.push(e));
      await step(ctl.stop());
      hostClient.close();
      for (const s of started) await step(s.stop());
      await step(shared.stop());
      await step(rm(dir, { recursive: true, force: true }));
      if (errors.length > 0) throw errors[0];
    };
    return {
      name,
      plan,
      token,
      etcd: shared,
      host: host!,
      members,
      hostClient,
      memberClient: (cluster) => {
        const m = members.get(cluster);
        if (!m) throw new Error(`no member cluster ${cluster}`);
        return new KubeClient(kubeConfigFromYaml(m.kubeconfig()));
      },
      controller: ctl,
      agents,
      stop: stopAll,
    };
  } catch (e) {
    await controller?.stop().catch(() => undefined);
    for (const s of started) await s.stop().catch(() => undefined);
    await etcd?.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}
