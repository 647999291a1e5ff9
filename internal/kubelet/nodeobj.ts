/**
 * The lab kubelet's Node and Lease objects (pure): labels, pod CIDRs, addresses (InternalIP = the
 * node's underlay addresses, Hostname), capacity, the Ready condition with its heartbeat, the kubelet
 * endpoint the API server proxies `logs`/`exec` to.
 */
import { microTime } from "../kube/index.ts";

export interface NodeIdentity {
  name: string;
  /** Underlay addresses (IPv4 first in a dual-stack cluster). */
  addresses: string[];
  podCIDRs: string[];
  labels: Record<string, string>;
  /** Port of this node's kubelet API on 127.0.0.1 (0: none). */
  kubeletPort: number;
  capacity?: Record<string, string>;
}

export const KUBELET_VERSION = "v1.28.7-kosmos-lab";

export const nowSeconds = (d = new Date()): string => d.toISOString().replace(/\.\d+Z$/, "Z");

export function nodeObject(n: NodeIdentity): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: n.name,
      labels: {
        "kubernetes.io/hostname": n.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        ...n.labels,
      },
    },
    spec: { podCIDR: n.podCIDRs[0], podCIDRs: n.podCIDRs },
  };
}

export function nodeStatus(n: NodeIdentity, readySince: string, now = new Date()): Record<string, unknown> {
  const capacity = n.capacity ?? { cpu: "4", memory: "8Gi", pods: "110", "ephemeral-storage": "20Gi" };
  const t = nowSeconds(now);
  const cond = (type: string, status: string, reason: string, message: string) => ({
    type,
    status,
    reason,
    message,
    lastHeartbeatTime: t,
    lastTransitionTime: readySince,
  });
  return {
    status: {
      capacity,
      allocatable: capacity,
      // The API server reaches a kubelet at the first address of its preferred types; lab control
      // planes prefer InternalDNS (lab's LAB_APISERVER_FLAGS), `localhost`, where every lab kubelet listens.
      addresses: [
        ...n.addresses.map((address) => ({ type: "InternalIP", address })),
        { type: "Hostname", address: n.name },
        { type: "InternalDNS", address: "localhost" },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: n.kubeletPort } },
      conditions: [
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "lab kubelet"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "lab kubelet"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "lab kubelet"),
        cond("Ready", "True", "KubeletReady", "lab kubelet is posting ready status"),
      ],
      nodeInfo: {
        machineID: "",
        systemUUID: "",
        bootID: "",
        kernelVersion: "",
        osImage: "Kosmos lab (host filesystem, network namespaces)",
        containerRuntimeVersion: "lab://1",
        kubeletVersion: KUBELET_VERSION,
        kubeProxyVersion: KUBELET_VERSION,
        operatingSystem: "linux",
        architecture: "amd64",
      },
    },
  };
}

export function leaseObject(node: string, now = new Date()): Record<string, unknown> {
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: { name: node, namespace: "kube-node-lease" },
    spec: { holderIdentity: node, leaseDurationSeconds: 40, renewTime: microTime(now) },
  };
}
