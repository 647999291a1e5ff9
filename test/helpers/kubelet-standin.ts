/**
 * A kubelet stand-in for tests of workload rollouts on a real control plane, where no container can
 * run: it registers Nodes (capacity, Ready, a Lease renewed in kube-node-lease), marks the pods the
 * real scheduler binds to them Running and Ready, and finishes their graceful deletion, as a kubelet
 * would. It runs nothing — tests that need processes to run use the lab.
 */
import {
  Informer,
  isNotFound,
  type KubeClient,
  type KubeObject,
  microTime,
} from "../../internal/kube/index.ts";

type Pod = KubeObject & {
  spec?: { nodeName?: string; hostNetwork?: boolean; containers?: { name: string; image?: string }[] };
  status?: { phase?: string };
};

export interface KubeletStandIn {
  nodes: string[];
  /** Its pod watch's health and what its writes did (for a failed wait's message). */
  describe(): string;
  stop(): Promise<void>;
}

export interface StandInNode {
  name: string;
  ip: string;
  labels?: Record<string, string>;
}

export const NODE_RESOURCES = { cpu: "4", memory: "8Gi", pods: "110" };

const now = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");

/** The status a Ready stand-in node reports: 4 CPUs, 8Gi, 110 pods (or `resources`). */
export function standInNodeStatus(n: StandInNode, resources: Record<string, string> = NODE_RESOURCES) {
  return {
    capacity: resources,
    allocatable: resources,
    addresses: [
      { type: "InternalIP", address: n.ip },
      { type: "Hostname", address: n.name },
    ],
    conditions: [
      {
        type: "Ready",
        status: "True",
        reason: "KubeletReady",
        message: "stand-in",
        lastHeartbeatTime: now(),
        lastTransitionTime: now(),
      },
    ],
    nodeInfo: {
      kubeletVersion: "v1.28.7",
      osImage: "stand-in",
      architecture: "amd64",
      operatingSystem: "linux",
    },
  };
}

/**
 * Register Nodes as API objects only (create, then their status: Ready, with capacity), `concurrency`
 * at a time — the "many nodes" mode (e.g. 1,000 Nodes of a leaf) when used without the stand-in's
 * pod handling and Leases. Nodes renewing no Lease go Unknown under a node-lifecycle controller, so a
 * cluster without one gets `untaint`: the `not-ready` taint the API server puts on a new Node is
 * lifted here, as that controller would once the Node is Ready.
 */
export async function registerNodes(
  client: KubeClient,
  nodes: StandInNode[],
  o: { concurrency?: number; untaint?: boolean } = {},
): Promise<void> {
  const concurrency = o.concurrency ?? 1;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < nodes.length) {
      const n = nodes[next++] as StandInNode;
      await client.create<KubeObject>("/api/v1/nodes", {
        apiVersion: "v1",
        kind: "Node",
        metadata: {
          name: n.name,
          labels: { "kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", ...(n.labels ?? {}) },
        },
      });
      await client.patch(`/api/v1/nodes/${n.name}/status`, { status: standInNodeStatus(n) }, "strategic");
      if (o.untaint) await client.patch(`/api/v1/nodes/${n.name}`, { spec: { taints: null } }, "merge");
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
}

export async function startKubeletStandIn(client: KubeClient, nodes: StandInNode[]): Promise<KubeletStandIn> {
  await registerNodes(client, nodes);
  const names = new Set(nodes.map((n) => n.name));
  const ipOf = new Map(nodes.map((n) => [n.name, n.ip]));
  // Pod IPs as a CNI would hand them out: 10.<first octets from the node>.x (unique per stand-in).
  let nextPod = 0;
  const podIP = (node: string): string => {
    nextPod++;
    const o = (ipOf.get(node) ?? "10.0.0.1").split(".").map(Number);
    return `10.${(o[3] ?? 0) % 256}.${Math.floor(nextPod / 250) % 256}.${(nextPod % 250) + 2}`;
  };
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const renew = async (): Promise<void> => {
    for (const n of names) {
      // As a kubelet does, post the node's status again when it is not Ready: after an outage of the
      // API server the node-lifecycle controller may have marked it Unknown, and only a kubelet's own
      // status write brings it back (the Lease alone never sets Ready=True).
      const node = await client
        .get<{ status?: { conditions?: { type: string; status: string }[] } }>(`/api/v1/nodes/${n}`)
        .catch(() => undefined);
      const ready = node?.status?.conditions?.find((c) => c.type === "Ready")?.status;
      if (node && ready !== "True")
        await client
          .patch(`/api/v1/nodes/${n}/status`, { status: standInNodeStatus(byName.get(n)!) }, "strategic")
          .catch(() => undefined);
      const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${n}`;
      const spec = { holderIdentity: n, leaseDurationSeconds: 40, renewTime: microTime(new Date()) };
      await client
        .apply(
          path,
          {
            apiVersion: "coordination.k8s.io/v1",
            kind: "Lease",
            metadata: { name: n, namespace: "kube-node-lease" },
            spec,
          },
          "kubelet-standin",
        )
        .catch(() => undefined);
    }
  };
  await renew();
  const leases = setInterval(() => void renew(), 10_000);
  const pods = new Informer<Pod>({ client, path: "/api/v1/pods", name: "standin-pods" });
  const stats = { running: 0, runningFailed: 0, deleted: 0, deleteFailed: 0, retries: 0, lastError: "" };
  // As a kubelet does, a write that failed (the API server restarting, a timeout under load) is
  // tried again — from the watch's cache, every second, while the pod still needs it. Without this
  // a pod whose final delete failed stayed terminating forever (no further event ever came for it),
  // and so did its root pod in the ClusterTree e2e.
  const retry = new Set<string>();
  const failed = (what: "runningFailed" | "deleteFailed", key: string) => (e: Error) => {
    if (isNotFound(e)) return; // the pod is gone: nothing left to do
    stats[what]++;
    stats.lastError = e.message.slice(0, 200);
    retry.add(key);
  };
  const handle = async (p: Pod): Promise<void> => {
    if (!p.spec?.nodeName || !names.has(p.spec.nodeName)) return;
    const key = `${p.metadata.namespace}/${p.metadata.name}`;
    const path = `/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}`;
    if (p.metadata.deletionTimestamp) {
      await client
        .delete(path, { gracePeriodSeconds: 0 })
        .then(() => void stats.deleted++, failed("deleteFailed", key));
      return;
    }
    if (p.status?.phase === "Running") return;
    const cond = (type: string) => ({ type, status: "True", lastTransitionTime: now() });
    await client
      .patch(
        `${path}/status`,
        {
          status: {
            phase: "Running",
            startTime: now(),
            hostIP: ipOf.get(p.spec.nodeName),
            hostIPs: [{ ip: ipOf.get(p.spec.nodeName) }],
            ...(p.spec.hostNetwork
              ? { podIP: ipOf.get(p.spec.nodeName), podIPs: [{ ip: ipOf.get(p.spec.nodeName) }] }
              : ((ip) => ({ podIP: ip, podIPs: [{ ip }] }))(podIP(p.spec.nodeName))),
            conditions: ["Initialized", "Ready", "ContainersReady", "PodScheduled"].map(cond),
            containerStatuses: (p.spec.containers ?? []).map((c) => ({
              name: c.name,
              image: c.image ?? "",
              imageID: "",
              ready: true,
              started: true,
              restartCount: 0,
              state: { running: { startedAt: now() } },
            })),
          },
        },
        "strategic",
      )
      .then(() => void stats.running++, failed("runningFailed", key));
  };
  pods
    .on("add", (p) => void handle(p))
    .on("update", (p) => void handle(p))
    .start();
  await pods.waitSynced();
  const retries = setInterval(() => {
    for (const key of [...retry]) {
      retry.delete(key);
      const [ns, name] = key.split("/") as [string, string];
      const p = pods.get(name, ns);
      if (!p) continue;
      stats.retries++;
      void handle(p);
    }
  }, 1000);
  return {
    nodes: [...names],
    describe: () =>
      `${[...names].join(",")}: pod watch ${pods.health()} (relists ${pods.relists}, expired ${pods.expired}${pods.lastError ? `, last error ${pods.lastError}` : ""}), marked Running ${stats.running} (failed ${stats.runningFailed}), deleted ${stats.deleted} (failed ${stats.deleteFailed}), retries ${stats.retries}${stats.lastError ? `, last write error: ${stats.lastError}` : ""}`,
    async stop() {
      clearInterval(leases);
      clearInterval(retries);
      await pods.stop();
    },
  };
}
