/**
 * What `kosmosctl install / uninstall / join / unjoin` do against the API servers, as functions over
 * raw clients (the commands in k8s.ts add flags, progress bars and messages). Every step is idempotent:
 * running a command twice, or again after it stopped half-way, converges to the same objects.
 */
import { KosmosError } from "../errors/index.ts";
import {
  applyObjects,
  deleteObjects,
  isConflict,
  isNotFound,
  type KubeClient,
  type KubeObject,
  kubeConfigFromYaml,
  type ManifestObject,
  KubeClient as RawClient,
  ResourceMapper,
} from "../kube/index.ts";
import {
  installObjects,
  installSecrets,
  joinObjects,
  KOSMOS_NS,
  memberAgentObjects,
  memberSecretName,
  withClusterName,
  withMcs,
} from "./k8s-objects.ts";

const describeObject = (o: ManifestObject): string => `${o.kind.toLowerCase()}/${o.metadata.name}`;

export class KosmosCliError extends KosmosError {
  override name = "KosmosCliError";
}

const nsPath = `/api/v1/namespaces/${KOSMOS_NS}`;

/**
 * Wait until the namespace is not terminating (a recent uninstall): objects created in a terminating
 * namespace are refused (403), so install and join wait for it to go first.
 */
export async function waitNamespaceGone(
  client: KubeClient,
  o: { timeoutMs: number; onWait?: () => void; ns?: string },
): Promise<void> {
  const path = o.ns ? `/api/v1/namespaces/${o.ns}` : nsPath;
  const deadline = Date.now() + o.timeoutMs;
  let told = false;
  for (;;) {
    const ns = await client.get<KubeObject & { status?: { phase?: string } }>(path).catch((e: unknown) => {
      if (isNotFound(e)) return undefined;
      throw e;
    });
    if (!ns) return;
    if (ns.status?.phase !== "Terminating") return;
    if (!told) o.onWait?.();
    told = true;
    if (Date.now() > deadline)
      throw new KosmosCliError(
        "KOSMOS_NAMESPACE_TERMINATING",
        `namespace ${ns.metadata.name} is still being deleted after ${Math.round(o.timeoutMs / 1000)}s`,
        `kubectl get ns ${ns.metadata.name} -o yaml (finalizers? is kube-controller-manager running?), then retry`,
      );
    await Bun.sleep(500);
  }
}

/** Apply the install objects and create the two secrets when absent. Returns the secrets created. */
export async function install(
  client: KubeClient,
  o: {
    clusterName: string;
    timeoutMs: number;
    /** Multi-cluster services: the controller's MCS controller and the agents' DNS (withMcs). */
    mcs?: boolean;
    onProgress?: (done: number, total: number, what: string) => void;
    onWait?: () => void;
  },
): Promise<string[]> {
  await waitNamespaceGone(client, { timeoutMs: o.timeoutMs, onWait: o.onWait });
  const base = withClusterName(installObjects(), o.clusterName);
  const objs = o.mcs ? withMcs(base) : base;
  await applyObjects(client, objs, {
    onProgress: (n, obj) => o.onProgress?.(n, objs.length, describeObject(obj)),
  });
  return await ensureSecrets(client, installSecrets());
}

/** Create each secret unless it exists (re-installing never rotates them). */
export async function ensureSecrets(client: KubeClient, secrets: KubeObject[]): Promise<string[]> {
  const created: string[] = [];
  for (const s of secrets) {
    try {
      await client.create(`${nsPath}/secrets`, s);
      created.push(s.metadata.name);
    } catch (e) {
      if (!isConflict(e)) throw e;
    }
  }
  return created;
}

/** The host's kosmos-token and kosmos-secret (created by `install`). */
export async function readInstallSecrets(client: KubeClient): Promise<{ token: string; secret: Uint8Array }> {
  const read = async (name: string, key: string): Promise<Buffer> => {
    try {
      const data = (await client.get<{ data?: Record<string, string> }>(`${nsPath}/secrets/${name}`)).data?.[
        key
      ];
      if (!data) throw new Error(`Secret ${KOSMOS_NS}/${name} has no key ${key}`);
      return Buffer.from(data, "base64");
    } catch (e) {
      if (isNotFound(e))
        throw new KosmosCliError(
          "KOSMOS_NOT_INSTALLED",
          `Secret ${KOSMOS_NS}/${name} not found on the host cluster`,
          "run `kosmosctl install` there first",
        );
      throw e;
    }
  };
  return {
    token: (await read("kosmos-token", "token")).toString("utf8"),
    secret: new Uint8Array(await read("kosmos-secret", "secret")),
  };
}

/** Install the agents into a member and create its Secret + Cluster on the host. */
export async function join(
  host: KubeClient,
  member: KubeClient,
  o: {
    name: string;
    memberKubeconfig: string;
    networkType: string;
    ipFamily: string;
    timeoutMs: number;
    onWait?: () => void;
    /** ClusterTree: the member also appears as virtual node(s) of the host (kosmos-clustertree). */
    tree?: { enable: boolean; leafModels?: unknown[] };
    /** The member's agents answer clusterset.local too (install --mcs on the host). */
    mcs?: boolean;
    /** clusterLinkOptions beyond type and family: global IPs for overlapping pod CIDRs, the pod CIDR override. */
    link?: { globalCIDRsMap?: Record<string, string>; clusterpodCIDRs?: string[] };
  },
): Promise<void> {
  const secrets = await readInstallSecrets(host);
  if (!(await runsController(member)))
    await waitNamespaceGone(member, { timeoutMs: o.timeoutMs, onWait: o.onWait });
  const agents = memberAgentObjects(o.name, secrets.token, secrets.secret);
  const agentObjects = o.mcs ? withMcs(agents) : agents;
  // The two secrets are the host's; applying them again (same content) keeps a re-join idempotent.
  await applyObjects(member, agentObjects);
  await applyObjects(
    host,
    joinObjects(o.name, o.memberKubeconfig, o.networkType, o.ipFamily, o.tree, o.link),
  );
}

/** The member kubeconfig `join` stored on the host (Secret kosmos-member-<name>), if any. */
export async function storedMemberClient(host: KubeClient, name: string): Promise<KubeClient | undefined> {
  try {
    const s = await host.get<{ data?: Record<string, string> }>(
      `${nsPath}/secrets/${memberSecretName(name)}`,
    );
    const data = s.data?.kubeconfig;
    return data ? new RawClient(kubeConfigFromYaml(Buffer.from(data, "base64").toString("utf8"))) : undefined;
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** True when the cluster runs the Kosmos controller (it is the host: its agents belong to `install`). */
export async function runsController(client: KubeClient): Promise<boolean> {
  try {
    await client.get(`/apis/apps/v1/namespaces/${KOSMOS_NS}/deployments/kosmos-controller`);
    return true;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

export type UnjoinResult = "agents-removed" | "agents-kept-host" | "agents-unknown";

/**
 * Remove a member: its agents (unless it is the host), then its Cluster, ClusterNodes and kubeconfig
 * Secret on the host. ClusterNodes are deleted here too, so nothing is left when no controller runs.
 */
export async function unjoin(host: KubeClient, name: string, member?: KubeClient): Promise<UnjoinResult> {
  const m = member ?? (await storedMemberClient(host, name));
  let result: UnjoinResult = "agents-unknown";
  if (m) {
    if (await runsController(m)) result = "agents-kept-host";
    else {
      await deleteObjects(m, memberAgentObjects(name, "", new Uint8Array()));
      result = "agents-removed";
    }
  }
  const mapper = new ResourceMapper(host);
  await deleteObjects(host, joinObjects(name, "", "p2p", "ipv4"), { mapper });
  await deleteClusterNodesOf(host, name);
  return result;
}

async function deleteClusterNodesOf(host: KubeClient, cluster: string): Promise<void> {
  try {
    const list = await host.list("/apis/kosmos.io/v1alpha1/clusternodes", {
      labelSelector: `kosmos.io/cluster=${cluster}`,
    });
    for (const n of list.items) await host.delete(`/apis/kosmos.io/v1alpha1/clusternodes/${n.metadata.name}`);
  } catch (e) {
    if (!isNotFound(e)) throw e; // CRD gone: nothing to delete
  }
}

/** Every joined member's name (Clusters on the host), or none when the CRD is not installed. */
export async function joinedClusters(host: KubeClient): Promise<string[]> {
  try {
    return (await host.list("/apis/kosmos.io/v1alpha1/clusters")).items.map((c) => c.metadata.name);
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}

/**
 * Uninstall: unjoin every member (their agents and secrets go too), delete everything `install`
 * created, and wait for the namespace to be gone so an install right after it works.
 */
export async function uninstall(
  host: KubeClient,
  o: {
    timeoutMs: number;
    onProgress?: (done: number, total: number, what: string) => void;
    onMember?: (name: string, r: UnjoinResult) => void;
  },
): Promise<void> {
  for (const name of await joinedClusters(host)) o.onMember?.(name, await unjoin(host, name));
  const objs = [...installObjects(), ...installSecrets()];
  await deleteObjects(host, objs, {
    onProgress: (n, obj) => o.onProgress?.(n, objs.length, describeObject(obj)),
  });
  await waitNamespaceGone(host, { timeoutMs: o.timeoutMs });
}

export { installObjects, joinObjects, memberAgentObjects, withClusterName };
