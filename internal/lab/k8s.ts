/**
 * A lab whose topology comes from Kubernetes: fake API servers (one host cluster holding the Kosmos
 * Cluster objects and the member kubeconfig Secrets, one per member cluster serving its Nodes and
 * kube-system control-plane Pods), and the real controller pointed at the lab's agents. The agents
 * are started unseeded: everything they know comes from Cluster/Node objects through the controller.
 *
 * The objects are derived from the LabPlan (pure: `kubeObjectsForLab`) the way a real cluster would
 * expose them: member Node names are the lab nodes' short names (the controller names ClusterNodes
 * `<cluster>-<node>`, which is the lab agent's --node), InternalIP addresses are the underlay IPs,
 * spec.podCIDRs the per-node pod CIDRs, gateway candidates carry `kosmos.io/gateway=true`, the
 * cluster pod CIDRs come from kube-controller-manager's --cluster-cidr and the service CIDRs from
 * kube-apiserver's --service-cluster-ip-range (both read by the controller's CIDR detection).
 */
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1Node,
  type V1Pod,
} from "@kubernetes/client-node";
import {
  type AgentEndpoint,
  type ClusterObject,
  GATEWAY_LABEL,
  GROUP,
  type RunningController,
  startController,
  VERSION,
} from "../controller/index.ts";
import { type FakeApiServer, kubeConfigFromYaml, loadKosmosCrds, startFakeApiServer } from "../kube/index.ts";
import type { Logger } from "../observability/index.ts";
import type { LabConfig } from "./config.ts";
import { agentSocket, labUp, type UpOptions } from "./lab.ts";
import type { LabClusterPlan, LabPlan } from "./plan.ts";

export const KOSMOS_NAMESPACE = "kosmos-system";

export interface LabKubeObjects {
  clusters: ClusterObject[];
  /** Per member cluster: its Nodes and its kube-system control-plane Pods. */
  members: Record<string, { nodes: V1Node[]; pods: V1Pod[] }>;
}

export const memberSecretName = (cluster: string): string => `kosmos-member-${cluster}`;

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
      .map((n): V1Node => {
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
    const controlPlanePod = (component: string, flag: string, values: string[]): V1Pod => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: `${component}-cp`,
        namespace: "kube-system",
        labels: { component, tier: "control-plane" },
      },
      spec: {
        containers: [
          {
            name: component,
            image: `registry.k8s.io/${component}:v1.31.0`,
            command: [component, `--${flag}=${values.join(",")}`],
          },
        ],
      },
    });
    members[c.name] = {
      nodes,
      pods: [
        controlPlanePod("kube-apiserver", "service-cluster-ip-range", c.serviceCIDRs),
        controlPlanePod("kube-controller-manager", "cluster-cidr", c.podCIDRs),
      ],
    };
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
}

export interface KubeLab {
  name: string;
  plan: LabPlan;
  token: string;
  host: FakeApiServer;
  members: Map<string, FakeApiServer>;
  hostKubeConfig: KubeConfig;
  memberKubeConfig(cluster: string): KubeConfig;
  controller: RunningController;
  agents: AgentEndpoint[];
  /** Stop the controller and the API servers (the lab itself is removed with labDown). */
  stop(): Promise<void>;
}

/**
 * Bring up a lab with unseeded agents, describe it in fake API servers and run the controller.
 * Resolves once the controller has seeded its first topology into at least one agent.
 */
export async function labFromKubernetes(
  name: string,
  config: LabConfig,
  opts: KubeLabOptions = {},
): Promise<KubeLab> {
  const { seedNodes, logger, minBackoffMs, maxBackoffMs, leaderElection, ...up } = opts;
  const handle = await labUp(name, config, { ...up, seedCount: 0, noWait: true });
  const { plan, token } = handle;
  const started: FakeApiServer[] = [];
  let controller: RunningController | undefined;
  try {
    const host = await startFakeApiServer({ crds: loadKosmosCrds() });
    started.push(host);
    const hostKc = kubeConfigFromYaml(host.kubeconfig({ context: "kosmos-host" }));
    const hcore = hostKc.makeApiClient(CoreV1Api);
    const hcustom = hostKc.makeApiClient(CustomObjectsApi);
    await hcore.createNamespace({ body: { metadata: { name: KOSMOS_NAMESPACE } } });
    const objs = kubeObjectsForLab(plan);
    const members = new Map<string, FakeApiServer>();
    for (const c of plan.clusters) {
      const m = await startFakeApiServer();
      started.push(m);
      members.set(c.name, m);
      const mkc = kubeConfigFromYaml(m.kubeconfig({ context: c.name }));
      const mcore = mkc.makeApiClient(CoreV1Api);
      await mcore.createNamespace({ body: { metadata: { name: "kube-system" } } }).catch(() => undefined);
      const mo = objs.members[c.name]!;
      for (const n of mo.nodes) await mcore.createNode({ body: n });
      for (const p of mo.pods) await mcore.createNamespacedPod({ namespace: "kube-system", body: p });
      await hcore.createNamespacedSecret({
        namespace: KOSMOS_NAMESPACE,
        body: {
          metadata: { name: memberSecretName(c.name) },
          type: "Opaque",
          data: { kubeconfig: Buffer.from(m.kubeconfig({ context: c.name })).toString("base64") },
        },
      });
    }
    for (const c of objs.clusters) {
      await hcustom.createClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: "clusters",
        body: c,
      });
    }
    const seeds = seedNodes ?? plan.clusters.map((c) => plan.nodes.find((n) => n.cluster === c.name)!.name);
    const agents: AgentEndpoint[] = seeds.map((n) => ({ url: `unix:${agentSocket(name, n)}`, token }));
    controller = await startController({
      kubeconfig: hostKc,
      agents,
      namespace: KOSMOS_NAMESPACE,
      leaderElection: leaderElection ?? true,
      ...(logger ? { logger } : {}),
      minBackoffMs: minBackoffMs ?? 100,
      maxBackoffMs: maxBackoffMs ?? 2000,
    });
    const ctl = controller;
    await ctl.seeder.settled({ any: true });
    return {
      name,
      plan,
      token,
      host,
      members,
      hostKubeConfig: hostKc,
      memberKubeConfig: (cluster) => {
        const m = members.get(cluster);
        if (!m) throw new Error(`no member cluster ${cluster}`);
        return kubeConfigFromYaml(m.kubeconfig({ context: cluster }));
      },
      controller: ctl,
      agents,
      async stop() {
        await ctl.stop();
        for (const s of started) await s.stop();
      },
    };
  } catch (e) {
    await controller?.stop().catch(() => undefined);
    for (const s of started) await s.stop().catch(() => undefined);
    throw e;
  }
}
