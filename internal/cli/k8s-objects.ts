/** The objects `kosmosctl install` and `join` write (pure builders over manifests/). */
import { randomBytes } from "node:crypto";
import { memberSecretName } from "../controller/index.ts";
import { loadManifestDir, MANIFESTS_DIR, type ManifestObject } from "../kube/index.ts";

export { memberSecretName };

export const KOSMOS_NS = "kosmos-system";

/** Files in manifests/ that are not part of the default install (see their headers). */
export const NOT_INSTALLED = ["probe-daemonset.yaml", "clustertree.yaml"];

/** Install order: CRDs, namespace, service accounts, RBAC, workloads. */
export function installObjects(dir = MANIFESTS_DIR): ManifestObject[] {
  const rank = (k: string): number =>
    ["CustomResourceDefinition", "Namespace", "ServiceAccount"].indexOf(k) + 1 || 4;
  return [...loadManifestDir(`${dir}/crds`), ...loadManifestDir(dir, { exclude: NOT_INSTALLED })].sort(
    (a, b) => rank(a.kind) - rank(b.kind),
  );
}

/** The Secret + Cluster that `join cluster` creates on the host cluster. */
export function joinObjects(
  name: string,
  memberKubeconfig: string,
  networkType: string,
  ipFamily: string,
  tree?: { enable: boolean; leafModels?: unknown[] },
  link: { globalCIDRsMap?: Record<string, string>; clusterpodCIDRs?: string[] } = {},
): ManifestObject[] {
  const secretName = memberSecretName(name);
  return [
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: secretName, namespace: KOSMOS_NS, labels: { "kosmos.io/cluster": name } },
      type: "Opaque",
      data: { kubeconfig: Buffer.from(memberKubeconfig).toString("base64") },
    },
    {
      apiVersion: "kosmos.io/v1alpha1",
      kind: "Cluster",
      metadata: { name },
      spec: {
        kubeconfigSecretRef: { name: secretName, namespace: KOSMOS_NS, key: "kubeconfig" },
        clusterLinkOptions: {
          networkType,
          ipFamily,
          ...(link.globalCIDRsMap && Object.keys(link.globalCIDRsMap).length
            ? { globalCIDRsMap: link.globalCIDRsMap }
            : {}),
          ...(link.clusterpodCIDRs?.length ? { clusterpodCIDRs: link.clusterpodCIDRs } : {}),
        },
        ...(tree ? { clusterTreeOptions: tree } : {}),
      },
    },
  ];
}

/**
 * What `join cluster` installs into a member: the namespace, the agents' service account, the agent
 * DaemonSet (KOSMOS_CLUSTER_NAME = the member's name) and the host's kosmos-token + kosmos-secret, so that
 * every agent of the installation shares the bearer token and the gossip/IPsec secret.
 */
export function memberAgentObjects(name: string, token: string, secret: Uint8Array): ManifestObject[] {
  const base = installObjects().filter(
    (o) =>
      o.kind === "Namespace" ||
      o.kind === "DaemonSet" ||
      (o.kind === "ServiceAccount" && o.metadata.name === "kosmos-agent"),
  );
  const [ns, ...rest] = withClusterName(base, name);
  return [ns!, ...installSecrets(token, secret), ...rest];
}

/** The agent bearer token Secret and the installation secret (gossip HMAC, IPsec keys), random. */
export function installSecrets(
  token = randomBytes(32).toString("hex"),
  secret: Uint8Array = randomBytes(32),
): ManifestObject[] {
  const meta = (name: string) => ({
    name,
    namespace: KOSMOS_NS,
    labels: { "app.kubernetes.io/part-of": "kosmos" },
  });
  return [
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: meta("kosmos-token"),
      type: "Opaque",
      data: { token: Buffer.from(token).toString("base64") },
    },
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: meta("kosmos-secret"),
      type: "Opaque",
      data: { secret: Buffer.from(secret).toString("base64") },
    },
  ];
}

interface ContainerLike {
  env?: { name: string; value?: string }[];
  args?: string[];
}

/** A copy of `objs` in which `edit` changed the containers of the workloads `pick` selects. */
function editContainers(
  objs: ManifestObject[],
  pick: (o: ManifestObject) => boolean,
  edit: (c: ContainerLike, o: ManifestObject) => void,
): ManifestObject[] {
  return objs.map((o) => {
    if (!pick(o)) return o;
    const c = structuredClone(o) as ManifestObject & {
      spec?: { template?: { spec?: { containers?: ContainerLike[] } } };
    };
    for (const ct of c.spec?.template?.spec?.containers ?? []) edit(ct, o);
    return c;
  });
}

const isAgents = (o: ManifestObject) => o.kind === "DaemonSet" && o.metadata.name === "kosmos-agent";
const isController = (o: ManifestObject) =>
  o.kind === "Deployment" && o.metadata.name === "kosmos-controller";

/**
 * Multi-cluster services on (`install --mcs`, `join cluster --mcs`): the controller runs the MCS
 * controller (`--mcs`), and every agent answers clusterset.local on its node's address, port 53
 * (KOSMOS_DNS_LISTEN; pods' resolv.conf or the cluster DNS forward that zone there, docs/services.md).
 */
export function withMcs(objs: ManifestObject[]): ManifestObject[] {
  return editContainers(
    objs,
    (o) => isAgents(o) || isController(o),
    (ct, o) => {
      if (isController(o) && !ct.args?.includes("--mcs")) ct.args = [...(ct.args ?? []), "--mcs"];
      if (isAgents(o)) {
        ct.env = (ct.env ?? []).filter((e) => e.name !== "KOSMOS_DNS_LISTEN");
        ct.env.push({ name: "KOSMOS_DNS_LISTEN", value: "[$(K8S_NODE_IP)]:53" });
      }
    },
  );
}

/** Set KOSMOS_CLUSTER_NAME in the agent DaemonSet (its node names are <cluster>-<node>). */
export function withClusterName(objs: ManifestObject[], cluster: string): ManifestObject[] {
  return editContainers(
    objs,
    (o) => o.kind === "DaemonSet",
    (ct) => {
      for (const e of ct.env ?? []) if (e.name === "KOSMOS_CLUSTER_NAME") e.value = cluster;
    },
  );
}
