/** kosmosctl commands that talk to Kubernetes: install, uninstall, join, unjoin, get. */
import { KubeConfig, type KubernetesObject, KubernetesObjectApi } from "@kubernetes/client-node";
import { SingleBar } from "cli-progress";
import Table from "cli-table3";
import { Command } from "commander";
import { stringify } from "yaml";
import { errorCode, loadManifestDir, MANIFESTS_DIR, type ManifestObject } from "../kube/index.ts";

type Output = "table" | "json" | "yaml";

function loadKc(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}

/** Create or replace every object, in order (CRDs and namespace first). Exported for tests. */
export async function applyManifests(
  kc: KubeConfig,
  objects: ManifestObject[],
  onProgress?: (done: number) => void,
): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  let done = 0;
  for (const o of objects) {
    const obj = o as KubernetesObject;
    try {
      const cur = await api.read({
        apiVersion: o.apiVersion,
        kind: o.kind,
        metadata: { name: o.metadata.name, namespace: (o.metadata.namespace as string | undefined) ?? "" },
      } as never);
      await api.replace({
        ...obj,
        metadata: { ...obj.metadata, resourceVersion: cur.metadata?.resourceVersion },
      });
    } catch (e) {
      if (errorCode(e) !== 404) throw e;
      await api.create(obj);
    }
    onProgress?.(++done);
  }
}

/** Delete every object in reverse order; missing ones are fine. */
export async function deleteManifests(
  kc: KubeConfig,
  objects: ManifestObject[],
  onProgress?: (done: number) => void,
): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  let done = 0;
  for (const o of [...objects].reverse()) {
    try {
      await api.delete(o as KubernetesObject);
    } catch (e) {
      if (errorCode(e) !== 404) throw e;
    }
    onProgress?.(++done);
  }
}

/** Install order: CRDs, namespace, RBAC, workloads. */
export function installObjects(dir = MANIFESTS_DIR): ManifestObject[] {
  const rank = (k: string): number =>
    ["CustomResourceDefinition", "Namespace", "ServiceAccount"].indexOf(k) + 1 || 4;
  return [...loadManifestDir(`${dir}/crds`), ...loadManifestDir(dir)].sort(
    (a, b) => rank(a.kind) - rank(b.kind),
  );
}

function print(rows: Record<string, unknown>[], raw: unknown, output: Output, head: string[]): void {
  if (output === "json") console.log(JSON.stringify(raw, null, 2));
  else if (output === "yaml") console.log(stringify(raw));
  else {
    const t = new Table({ head, style: { head: [] } });
    for (const r of rows) t.push(head.map((h) => String(r[h] ?? "")));
    console.log(t.toString());
  }
}

const withProgress = async (
  total: number,
  fn: (tick: (n: number) => void) => Promise<void>,
): Promise<void> => {
  const bar = new SingleBar({ format: "{bar} {value}/{total} objects", hideCursor: true }, undefined);
  bar.start(total, 0);
  try {
    await fn((n) => bar.update(n));
  } finally {
    bar.stop();
  }
};

export function k8sCommands(): Command[] {
  const install = new Command("install")
    .description("install Kosmos (CRDs, RBAC, controller, agents) into the current cluster")
    .option("--kubeconfig <file>")
    .action(async (o: { kubeconfig?: string }) => {
      const objs = installObjects();
      await withProgress(objs.length, (tick) => applyManifests(loadKc(o.kubeconfig), objs, tick));
      console.log("Kosmos installed.");
    });
  const uninstall = new Command("uninstall")
    .description("remove everything `install` created")
    .option("--kubeconfig <file>")
    .action(async (o: { kubeconfig?: string }) => {
      const objs = installObjects();
      await withProgress(objs.length, (tick) => deleteManifests(loadKc(o.kubeconfig), objs, tick));
      console.log("Kosmos uninstalled.");
    });
  const join = new Command("join").description("join a member cluster");
  join
    .command("cluster")
    .requiredOption("--name <name>")
    .requiredOption("--kubeconfig <file>", "kubeconfig of the member cluster")
    .option("--host-kubeconfig <file>", "kubeconfig of the host cluster")
    .option("--network-type <t>", "p2p|gateway", "p2p")
    .option("--ip-family <f>", "ipv4|ipv6|all", "ipv4")
    .action(
      async (o: {
        name: string;
        kubeconfig: string;
        hostKubeconfig?: string;
        networkType: string;
        ipFamily: string;
      }) => {
        const member = await Bun.file(o.kubeconfig).text();
        await applyManifests(
          loadKc(o.hostKubeconfig),
          joinObjects(o.name, member, o.networkType, o.ipFamily),
        );
        console.log(`cluster ${o.name} joined`);
      },
    );
  const unjoin = new Command("unjoin").description("remove a member cluster");
  unjoin
    .command("cluster")
    .requiredOption("--name <name>")
    .option("--host-kubeconfig <file>")
    .action(async (o: { name: string; hostKubeconfig?: string }) => {
      await deleteManifests(loadKc(o.hostKubeconfig), joinObjects(o.name, "", "p2p", "ipv4"));
      console.log(`cluster ${o.name} unjoined`);
    });
  const get = new Command("get")
    .description("list clusters or nodes")
    .argument("<what>", "clusters|nodes")
    .option("--kubeconfig <file>")
    .option("-o, --output <fmt>", "table|json|yaml", "table")
    .action(async (what: string, o: { kubeconfig?: string; output: Output }) => {
      const api = KubernetesObjectApi.makeApiClient(loadKc(o.kubeconfig));
      const kind = what.startsWith("node") ? "ClusterNode" : "Cluster";
      const list = await api.list("kosmos.io/v1alpha1", kind);
      const items = list.items as unknown as {
        metadata: { name: string };
        spec: Record<string, unknown>;
        status?: Record<string, unknown>;
      }[];
      if (kind === "Cluster") {
        print(
          items.map((c) => {
            const opt = (c.spec.clusterLinkOptions ?? {}) as Record<string, unknown>;
            const st = (c.status?.clusterLinkStatus ?? {}) as Record<string, string[]>;
            return {
              NAME: c.metadata.name,
              NETWORK_TYPE: opt.networkType,
              IP_FAMILY: opt.ipFamily,
              NODES: c.status?.nodeCount,
              POD_CIDRS: (st.podCIDRs ?? []).join(","),
              SERVICE_CIDRS: (st.serviceCIDRs ?? []).join(","),
            };
          }),
          list,
          o.output,
          ["NAME", "NETWORK_TYPE", "IP_FAMILY", "NODES", "POD_CIDRS", "SERVICE_CIDRS"],
        );
      } else {
        print(
          items.map((n) => ({
            NAME: n.metadata.name,
            CLUSTER: n.spec.clusterName,
            IP: n.spec.ip,
            IP6: n.spec.ip6,
            ROLES: ((n.spec.roles as string[]) ?? []).join(","),
            POD_CIDRS: ((n.spec.podCIDRs as string[]) ?? []).join(","),
          })),
          list,
          o.output,
          ["NAME", "CLUSTER", "IP", "IP6", "ROLES", "POD_CIDRS"],
        );
      }
    });
  return [install, uninstall, join, unjoin, get];
}

/** The Secret + Cluster that `join cluster` creates on the host cluster. */
export function joinObjects(
  name: string,
  memberKubeconfig: string,
  networkType: string,
  ipFamily: string,
): ManifestObject[] {
  const secretName = `kosmos-member-${name}`;
  return [
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: secretName, namespace: "kosmos-system" },
      type: "Opaque",
      data: { kubeconfig: Buffer.from(memberKubeconfig).toString("base64") },
    },
    {
      apiVersion: "kosmos.io/v1alpha1",
      kind: "Cluster",
      metadata: { name },
      spec: {
        kubeconfigSecretRef: { name: secretName, namespace: "kosmos-system", key: "kubeconfig" },
        clusterLinkOptions: { networkType, ipFamily },
      },
    },
  ];
}
