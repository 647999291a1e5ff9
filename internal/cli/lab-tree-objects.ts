/**
 * The objects of `kosmosctl lab demo --tree` (pure): kosmos-clustertree from manifests/clustertree.yaml
 * as the lab runs it, and the root workload (a Deployment carried into the leaves, a Service over it,
 * a client on a real root node).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { NODE_LABEL, NODE_TAINT } from "../clustertree/index.ts";
import { MANIFESTS_DIR, parseManifests, type ManifestObject } from "../kube/index.ts";
import { KOSMOS_NS } from "./k8s-objects.ts";

export const TREE_DEMO_NS = "kosmos-tree-demo";
export const WEB = "web";
export const CLIENT = "client";
export const WEB_PORT = 8080;
export const TREE_KUBELET_SECRET = "kosmos-clustertree-kubelet";
export const TREE_CLIENT_CA = "kosmos-clustertree-client-ca";

interface ContainerLike {
  name: string;
  args?: string[];
}
type DeploymentLike = ManifestObject & {
  spec: {
    replicas?: number;
    template: {
      spec: {
        hostNetwork?: boolean;
        dnsPolicy?: string;
        nodeSelector?: Record<string, string>;
        containers: ContainerLike[];
      };
    };
  };
};

/**
 * manifests/clustertree.yaml as the lab runs it: one replica (the Lease stays on), hostNetwork on the
 * root node whose port the lab maps to the host (config `extraPortMappings`), and the virtual nodes
 * advertise InternalDNS `localhost` and the mapped host port — where the root API server, a host
 * process on 127.0.0.1, reaches the kubelet API.
 */
export function clusterTreeForLab(
  o: { node: string; hostPort: number },
  dir = MANIFESTS_DIR,
): ManifestObject[] {
  return parseManifests(readFileSync(join(dir, "clustertree.yaml"), "utf8")).map((x) => {
    if (x.kind !== "Deployment") return x;
    const d = structuredClone(x) as DeploymentLike;
    d.spec.replicas = 1;
    const pod = d.spec.template.spec;
    pod.hostNetwork = true;
    pod.dnsPolicy = "ClusterFirstWithHostNet";
    pod.nodeSelector = { "kubernetes.io/hostname": o.node };
    for (const c of pod.containers)
      c.args = [...(c.args ?? []), "--node-dns-name=localhost", `--kubelet-advertise-port=${o.hostPort}`];
    return d;
  });
}

/** The kubelet-API serving certificate and the client CA, as the manifest's header says to create them. */
export function clusterTreeSecrets(o: { cert: string; key: string; clientCA: string }): ManifestObject[] {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  return [
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: TREE_KUBELET_SECRET, namespace: KOSMOS_NS },
      type: "kubernetes.io/tls",
      data: { "tls.crt": b64(o.cert), "tls.key": b64(o.key) },
    },
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: TREE_CLIENT_CA, namespace: KOSMOS_NS },
      data: { "ca.crt": o.clientCA },
    },
  ];
}

const echoContainer = {
  name: "echo",
  image: "kosmos-echo",
  ports: [{ containerPort: WEB_PORT }],
  // Running only says the process started; Ready says it listens.
  readinessProbe: { tcpSocket: { port: WEB_PORT }, periodSeconds: 1 },
};

/**
 * The root workload: Deployment `web` (replicas on the virtual nodes only: it tolerates the kosmos
 * taint and selects `kosmos.io/node=true`, spread evenly over them), Service `web`, and Deployment
 * `client` (no toleration: a real root node).
 */
export function treeWorkload(replicas = 6): ManifestObject[] {
  const deployment = (name: string, n: number, spec: Record<string, unknown>): ManifestObject =>
    ({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name, namespace: TREE_DEMO_NS },
      spec: {
        replicas: n,
        selector: { matchLabels: { app: name } },
        template: { metadata: { labels: { app: name } }, spec: { ...spec, containers: [echoContainer] } },
      },
    }) as ManifestObject;
  return [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: TREE_DEMO_NS } },
    deployment(WEB, replicas, {
      tolerations: [{ key: NODE_TAINT.key, operator: "Equal", value: "true", effect: "NoSchedule" }],
      nodeSelector: { [NODE_LABEL]: "true" },
      topologySpreadConstraints: [
        {
          maxSkew: 1,
          topologyKey: "kubernetes.io/hostname",
          whenUnsatisfiable: "DoNotSchedule",
          labelSelector: { matchLabels: { app: WEB } },
        },
      ],
    }),
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: WEB, namespace: TREE_DEMO_NS },
      spec: { selector: { app: WEB }, ports: [{ port: WEB_PORT, protocol: "TCP" }] },
    } as ManifestObject,
    deployment(CLIENT, 1, {}),
  ];
}
