/** kosmosctl commands that talk to Kubernetes: install, uninstall, join, unjoin, get. */
import { randomBytes } from "node:crypto";
import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  type V1DaemonSet,
  type V1Deployment,
} from "@kubernetes/client-node";
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
    .description(
      "install Kosmos (CRDs, RBAC, controller, agents, token + installation secret) and wait for the rollout",
    )
    .option("--kubeconfig <file>")
    .option(
      "--cluster-name <name>",
      "this cluster's name in Kosmos (agents' node names are <name>-<node>)",
      "kosmos-control-cluster",
    )
    .option("--timeout <seconds>", "how long to wait for the rollout", (v) => Number(v), 300)
    .option(
      "--wait-agents",
      "also wait for every agent to be ready (needs the cluster joined: topology applied)",
      false,
    )
    .option("--no-wait", "do not wait for the rollout")
    .action(
      async (o: {
        kubeconfig?: string;
        clusterName: string;
        timeout: number;
        waitAgents: boolean;
        wait: boolean;
      }) => {
        const kc = loadKc(o.kubeconfig);
        const objs = withClusterName(installObjects(), o.clusterName);
        await withProgress(objs.length, (tick) => applyManifests(kc, objs, tick));
        const created = await ensureInstallSecrets(kc);
        console.log(
          `Kosmos objects applied; secrets: ${created.length > 0 ? `created ${created.join(", ")}` : "kept existing kosmos-token, kosmos-secret"}.`,
        );
        if (o.wait) {
          await waitWithBar(kc, {
            timeoutMs: o.timeout * 1000,
            agents: o.waitAgents ? "ready" : "scheduled",
          });
        }
        console.log("Kosmos installed.");
      },
    );
  const uninstall = new Command("uninstall")
    .description("remove everything `install` created (secrets included)")
    .option("--kubeconfig <file>")
    .action(async (o: { kubeconfig?: string }) => {
      const objs = [...installObjects(), ...installSecrets()];
      await withProgress(objs.length, (tick) => deleteManifests(loadKc(o.kubeconfig), objs, tick));
      console.log("Kosmos uninstalled.");
    });
  const join = new Command("join").description("join a member cluster");
  join
    .command("cluster")
    .description(
      "create the member's kubeconfig Secret and Cluster on the host, install the agents into the member " +
        "(namespace, service account, DaemonSet, kosmos-token + kosmos-secret copied from the host) and wait for them",
    )
    .requiredOption("--name <name>")
    .requiredOption("--kubeconfig <file>", "kubeconfig of the member cluster")
    .option("--host-kubeconfig <file>", "kubeconfig of the host cluster")
    .option("--network-type <t>", "p2p|gateway", "p2p")
    .option("--ip-family <f>", "ipv4|ipv6|all", "ipv4")
    .option("--timeout <seconds>", "how long to wait for the agents' rollout", (v) => Number(v), 300)
    .option("--wait-agents", "wait for every agent to be ready (topology applied)", false)
    .option("--no-wait", "do not wait for the agents' rollout")
    .action(
      async (o: {
        name: string;
        kubeconfig: string;
        hostKubeconfig?: string;
        networkType: string;
        ipFamily: string;
        timeout: number;
        waitAgents: boolean;
        wait: boolean;
      }) => {
        const member = await Bun.file(o.kubeconfig).text();
        const hostKc = loadKc(o.hostKubeconfig);
        const secrets = await readInstallSecrets(hostKc);
        const memberKc = loadKc(o.kubeconfig);
        await applyManifests(memberKc, memberAgentObjects(o.name, secrets.token, secrets.secret));
        await applyManifests(hostKc, joinObjects(o.name, member, o.networkType, o.ipFamily));
        console.log(`agents of ${o.name} applied (DaemonSet kosmos-agent, KOSMOS_CLUSTER_NAME=${o.name})`);
        if (o.wait) {
          await waitWithBar(memberKc, {
            timeoutMs: o.timeout * 1000,
            agents: o.waitAgents ? "ready" : "scheduled",
            controller: false,
          });
        }
        console.log(`cluster ${o.name} joined`);
      },
    );
  const unjoin = new Command("unjoin").description("remove a member cluster");
  unjoin
    .command("cluster")
    .description(
      "remove the member's agents (DaemonSet, secrets, namespace), its Cluster and kubeconfig Secret",
    )
    .requiredOption("--name <name>")
    .option("--host-kubeconfig <file>")
    .option("--kubeconfig <file>", "kubeconfig of the member cluster (default: the one stored at join)")
    .action(async (o: { name: string; hostKubeconfig?: string; kubeconfig?: string }) => {
      const hostKc = loadKc(o.hostKubeconfig);
      const memberKc = o.kubeconfig ? loadKc(o.kubeconfig) : await storedMemberKubeConfig(hostKc, o.name);
      if (!memberKc) console.error(`warning: no kubeconfig for ${o.name}: its agents are left in place`);
      else if (await runsController(memberKc))
        console.error(`note: ${o.name} runs the Kosmos controller (host cluster): its agents are kept`);
      else await deleteManifests(memberKc, memberAgentObjects(o.name, "", new Uint8Array()));
      await deleteManifests(hostKc, joinObjects(o.name, "", "p2p", "ipv4"));
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

export const KOSMOS_NS = "kosmos-system";

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

/** The host's kosmos-token and kosmos-secret (created by `install`). */
export async function readInstallSecrets(kc: KubeConfig): Promise<{ token: string; secret: Uint8Array }> {
  const core = kc.makeApiClient(CoreV1Api);
  const read = async (name: string, key: string): Promise<Buffer> => {
    try {
      const data = (await core.readNamespacedSecret({ name, namespace: KOSMOS_NS })).data?.[key];
      if (!data) throw new Error(`Secret ${KOSMOS_NS}/${name} has no key ${key}`);
      return Buffer.from(data, "base64");
    } catch (e) {
      if (errorCode(e) === 404)
        throw new Error(
          `Secret ${KOSMOS_NS}/${name} not found on the host cluster: run \`kosmosctl install\` there first`,
        );
      throw e;
    }
  };
  return {
    token: (await read("kosmos-token", "token")).toString("utf8"),
    secret: new Uint8Array(await read("kosmos-secret", "secret")),
  };
}

/** The member kubeconfig `join` stored on the host (Secret kosmos-member-<name>), if any. */
async function storedMemberKubeConfig(hostKc: KubeConfig, name: string): Promise<KubeConfig | undefined> {
  try {
    const s = await hostKc
      .makeApiClient(CoreV1Api)
      .readNamespacedSecret({ name: `kosmos-member-${name}`, namespace: KOSMOS_NS });
    const data = s.data?.kubeconfig;
    if (!data) return undefined;
    const kc = new KubeConfig();
    kc.loadFromString(Buffer.from(data, "base64").toString("utf8"));
    return kc;
  } catch (e) {
    if (errorCode(e) === 404) return undefined;
    throw e;
  }
}

/** True when the cluster runs the Kosmos controller (it is the host: its agents belong to `install`). */
async function runsController(kc: KubeConfig): Promise<boolean> {
  try {
    await kc
      .makeApiClient(AppsV1Api)
      .readNamespacedDeployment({ name: "kosmos-controller", namespace: KOSMOS_NS });
    return true;
  } catch (e) {
    if (errorCode(e) === 404) return false;
    throw e;
  }
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

/** Create the two secrets when absent; existing ones are kept (re-installing never rotates them). */
export async function ensureInstallSecrets(kc: KubeConfig): Promise<string[]> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const created: string[] = [];
  for (const s of installSecrets()) {
    try {
      await api.create(s as KubernetesObject);
      created.push(s.metadata.name);
    } catch (e) {
      if (errorCode(e) !== 409) throw e;
    }
  }
  return created;
}

/** Set KOSMOS_CLUSTER_NAME in the agent DaemonSet (its node names are <cluster>-<node>). */
export function withClusterName(objs: ManifestObject[], cluster: string): ManifestObject[] {
  return objs.map((o) => {
    if (o.kind !== "DaemonSet") return o;
    const c = structuredClone(o) as unknown as V1DaemonSet;
    for (const ct of c.spec?.template.spec?.containers ?? []) {
      for (const e of ct.env ?? []) if (e.name === "KOSMOS_CLUSTER_NAME") e.value = cluster;
    }
    return c as unknown as ManifestObject;
  });
}

export interface Rollout {
  what: string;
  desired: number;
  /** Pods counted as done (available controllers; scheduled-and-updated or ready agents). */
  done: number;
  complete: boolean;
  /** Why it cannot complete (e.g. ProgressDeadlineExceeded); set = give up. */
  failed?: string;
}

/** kubectl rollout status semantics for a Deployment (pure). */
export function deploymentRollout(d: V1Deployment | undefined): Rollout {
  const what = `deployment/${d?.metadata?.name ?? "?"}`;
  if (!d) return { what, desired: 1, done: 0, complete: false };
  const desired = d.spec?.replicas ?? 1;
  const st = d.status ?? {};
  const observed = (st.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1);
  const updated = st.updatedReplicas ?? 0;
  const available = Math.min(st.availableReplicas ?? 0, updated);
  const stuck = (st.conditions ?? []).find(
    (c) => c.type === "Progressing" && c.reason === "ProgressDeadlineExceeded",
  );
  return {
    what,
    desired,
    done: observed ? available : 0,
    complete: observed && updated >= desired && (st.replicas ?? 0) <= updated && available >= updated,
    ...(stuck ? { failed: `${what}: ${stuck.message ?? "progress deadline exceeded"}` } : {}),
  };
}

/** DaemonSet rollout (pure): pods of the current template on every node; with `ready`, also available. */
export function daemonSetRollout(ds: V1DaemonSet | undefined, wait: "scheduled" | "ready"): Rollout {
  const what = `daemonset/${ds?.metadata?.name ?? "?"}`;
  if (!ds?.status) return { what, desired: 0, done: 0, complete: false };
  const st = ds.status;
  const observed = (st.observedGeneration ?? 0) >= (ds.metadata?.generation ?? 1);
  const desired = st.desiredNumberScheduled ?? 0;
  const updated = st.updatedNumberScheduled ?? 0;
  const done = wait === "ready" ? Math.min(updated, st.numberAvailable ?? 0) : updated;
  return { what, desired, done: observed ? done : 0, complete: observed && done >= desired };
}

export class RolloutTimeoutError extends Error {
  readonly code = "KOSMOS_ROLLOUT_TIMEOUT";
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

/** Wait for the controller Deployment and the agent DaemonSet; `onProgress` after every look. */
export async function waitRollout(
  kc: KubeConfig,
  o: {
    timeoutMs: number;
    agents: "scheduled" | "ready";
    /** Also wait for the controller Deployment (default true; false on member clusters). */
    controller?: boolean;
    intervalMs?: number;
    onProgress?: (r: Rollout[]) => void;
  },
): Promise<Rollout[]> {
  const apps = kc.makeApiClient(AppsV1Api);
  const deadline = Date.now() + o.timeoutMs;
  const read = async <T>(f: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await f();
    } catch (e) {
      if (errorCode(e) === 404) return undefined;
      throw e;
    }
  };
  for (;;) {
    const withController = o.controller !== false;
    const d = withController
      ? await read(() => apps.readNamespacedDeployment({ name: "kosmos-controller", namespace: KOSMOS_NS }))
      : undefined;
    const ds = await read(() => apps.readNamespacedDaemonSet({ name: "kosmos-agent", namespace: KOSMOS_NS }));
    const agentRollout = daemonSetRollout(ds, o.agents);
    agentRollout.what = "daemonset/kosmos-agent";
    const rs = withController
      ? [{ ...deploymentRollout(d), what: "deployment/kosmos-controller" }, agentRollout]
      : [agentRollout];
    o.onProgress?.(rs);
    const failed = rs.find((r) => r.failed);
    if (failed)
      throw new RolloutTimeoutError(
        `rollout failed: ${failed.failed}`,
        "kubectl -n kosmos-system describe deployment kosmos-controller",
      );
    if (rs.every((r) => r.complete)) return rs;
    if (Date.now() >= deadline) {
      const what = rs.map((r) => `${r.what} ${r.done}/${r.desired}${r.complete ? " done" : ""}`).join(", ");
      throw new RolloutTimeoutError(
        `timed out after ${Math.round(o.timeoutMs / 1000)}s waiting for the rollout: ${what}`,
        "kubectl -n kosmos-system get pods -o wide; kubectl -n kosmos-system describe pods (image pull? node selector? agent logs?)",
      );
    }
    await Bun.sleep(Math.min(o.intervalMs ?? 1000, Math.max(0, deadline - Date.now())));
  }
}

async function waitWithBar(
  kc: KubeConfig,
  o: { timeoutMs: number; agents: "scheduled" | "ready"; controller?: boolean },
): Promise<void> {
  const bar = new SingleBar(
    {
      format: "rollout {bar} {value}/{total} pods | {detail}",
      hideCursor: true,
      noTTYOutput: true,
      notTTYSchedule: 2000,
    },
    undefined,
  );
  bar.start(1, 0, { detail: "" });
  try {
    await waitRollout(kc, {
      ...o,
      onProgress: (rs) => {
        bar.setTotal(
          Math.max(
            1,
            rs.reduce((a, r) => a + r.desired, 0),
          ),
        );
        bar.update(
          rs.reduce((a, r) => a + Math.min(r.done, r.desired), 0),
          { detail: rs.map((r) => `${r.what.split("/")[1]} ${r.done}/${r.desired}`).join(", ") },
        );
      },
    });
  } finally {
    bar.stop();
  }
}
