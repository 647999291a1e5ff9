/**
 * `kosmosctl lab demo --tree` (issue 14's "Done when" in the lab): the tree preset's root and two
 * leaves become real clusters, Kosmos is installed (`install` on the root, `join cluster` for all
 * three, the leaves with `--enable-tree`), kosmos-clustertree runs as manifests/clustertree.yaml's
 * Deployment on a root node, and a root Deployment of 6 echo pods runs in the leaves: their IPs are the
 * leaf pods' IPs, a root Service reaches them from a pod on a real root node, `kubectl logs/exec`
 * work, and deleting the Deployment removes every leaf pod and every copy only they needed. Each step
 * prints the command a user would type. The steps are exported for test/e2e/lab-tree.test.ts.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { NODE_LABEL, OWNED_BY_CLUSTER, POD_LABEL, SYNCED_LABEL } from "../clustertree/index.ts";
import { issueCert } from "../controlplane/index.ts";
import { applyObjects, type KubeClient } from "../kube/index.ts";
import { sandboxNames } from "../kubelet/index.ts";
import { type LabConfig, type LabKubeState, type LabPlan, sh } from "../lab/index.ts";
import { KOSMOS_NS } from "./k8s-objects.ts";
import { listVirtualNodes, virtualNodesTable } from "./k8s-tree.ts";
import { demoLabUp, installAndJoin } from "./lab-demo-k8s.ts";
import {
  CLIENT,
  clusterTreeForLab,
  clusterTreeSecrets,
  TREE_CLIENT_CA,
  TREE_DEMO_NS,
  TREE_KUBELET_SECRET,
  treeWorkload,
  WEB,
  WEB_PORT,
} from "./lab-tree-objects.ts";
import { FAIL, OK, renderTable } from "./output.ts";

const say = (s: string) => process.stdout.write(`${s}\n`);

/** kubectl ≥ 1.30 speaks WebSocket exec (the lab kubelet serves no SPDY); the machine's may be older. */
export const KUBECTL = ["/usr/lib/google-cloud-sdk/bin/kubectl.1.32"].find((p) => existsSync(p));

export interface TreeLab {
  name: string;
  plan: LabPlan;
  st: LabKubeState;
  root: string;
  leaves: string[];
  clients: Map<string, KubeClient>;
  kubeconfig(cluster: string): string;
  close(): void;
}

type PodLike = {
  metadata: { name: string; uid: string; labels?: Record<string, string> };
  spec?: { nodeName?: string };
  status?: { phase?: string; podIP?: string; conditions?: { type: string; status: string }[] };
};

export interface TreePod {
  name: string;
  uid: string;
  /** Root: the virtual node; leaf: the leaf's node. */
  node: string;
  ip: string;
  ready: boolean;
}

export interface CarriedPod {
  root: TreePod;
  /** The leaf the virtual node stands for (its `kosmos-io/owned-by-cluster`). */
  leaf: string;
  leafPod?: TreePod;
}

async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(
        `${what}: not after ${timeoutMs / 1000} s${last ? ` (${(last as Error).message})` : ""}`,
      );
    await Bun.sleep(500);
  }
}

/** Step 1: the lab's clusters up, Kosmos installed on the root and joined by all three. */
export async function treeLabUp(name: string, config: LabConfig): Promise<TreeLab> {
  const { plan, st, clients } = await demoLabUp(
    name,
    config,
    `kosmosctl lab up --kubernetes --no-agents --preset tree --name ${name}`,
  );
  const [root, ...leaves] = st.clusters.map((c) => c.name) as [string, ...string[]];
  const lab: TreeLab = {
    name,
    plan,
    st,
    root,
    leaves,
    clients,
    kubeconfig: (c) => st.clusters.find((x) => x.name === c)!.kubeconfig,
    close: () => {
      for (const c of clients.values()) c.close();
    },
  };
  await installAndJoin(plan, st, clients, leaves);
  return lab;
}

/**
 * Step 2: kosmos-clustertree on the root: its kubelet-API certificate from the root's CA (the one its
 * API server verifies kubelets with, `--kubelet-certificate-authority`), that CA as the client CA (it
 * signed the API server's kubelet client certificate), the manifest applied; waits for every leaf's
 * virtual node to be Ready.
 */
export async function runClusterTree(lab: TreeLab): Promise<void> {
  const rootState = lab.st.clusters.find((c) => c.name === lab.root)!;
  const mapping = (lab.st.portMappings ?? []).find(
    (m) => m.cluster === lab.root && m.containerPort === 10250,
  );
  if (!mapping)
    throw new Error(
      `cluster ${lab.root} maps no host port to a node's 10250 (the tree preset's node-1 does)`,
    );
  const dir = rootState.dir;
  const ca = { certPath: join(dir, "ca.crt"), keyPath: join(dir, "ca.key"), pem: "" };
  const kp = await issueCert(ca, dir, {
    name: "clustertree-kubelet",
    cn: "kosmos-clustertree",
    usage: "server",
    hosts: ["localhost", "127.0.0.1", mapping.nodeAddress],
  });
  const kc = lab.kubeconfig(lab.root);
  say(
    `\n$ kubectl --kubeconfig ${kc} -n ${KOSMOS_NS} create secret tls ${TREE_KUBELET_SECRET} --cert=${kp.certPath} --key=${kp.keyPath}`,
  );
  say(
    `$ kubectl --kubeconfig ${kc} -n ${KOSMOS_NS} create configmap ${TREE_CLIENT_CA} --from-file=ca.crt=${ca.certPath}`,
  );
  say(
    `$ kubectl --kubeconfig ${kc} apply -f manifests/clustertree.yaml   # replicas 1, hostNetwork on ${mapping.node} ` +
      `(host 127.0.0.1:${mapping.hostPort} → ${mapping.nodeAddress}:10250), --node-dns-name=localhost --kubelet-advertise-port=${mapping.hostPort}`,
  );
  const root = lab.clients.get(lab.root)!;
  await applyObjects(
    root,
    clusterTreeSecrets({
      cert: await Bun.file(kp.certPath).text(),
      key: await Bun.file(kp.keyPath).text(),
      clientCA: await Bun.file(ca.certPath).text(),
    }),
  );
  await applyObjects(root, clusterTreeForLab({ node: mapping.node, hostPort: mapping.hostPort }));
  say(`waiting for the virtual nodes ${lab.leaves.map((l) => `kosmos-${l}`).join(", ")} (Ready)`);
  const rows = await waitFor("every leaf's virtual node Ready", 240_000, async () => {
    const r = await listVirtualNodes(root);
    return lab.leaves.every((l) => r.some((n) => n.cluster === l && n.ready === "True")) ? r : undefined;
  });
  say(`$ kosmosctl get virtualnodes --kubeconfig ${kc}`);
  say(virtualNodesTable(rows));
}

const asPod = (p: PodLike): TreePod => ({
  name: p.metadata.name,
  uid: p.metadata.uid,
  node: p.spec?.nodeName ?? "",
  ip: p.status?.podIP ?? "",
  ready:
    p.status?.phase === "Running" &&
    Boolean(p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True")),
});

/** Pods of `app` in the demo namespace of `client` (`extra`: more label selector terms). */
export async function podsOf(client: KubeClient, app: string, extra = ""): Promise<TreePod[]> {
  const l = await client.list<PodLike>(`/api/v1/namespaces/${TREE_DEMO_NS}/pods`, {
    labelSelector: `app=${app}${extra}`,
  });
  return l.items.map(asPod);
}

/** Every root `web` pod with its leaf and leaf pod (same name, made by Kosmos). */
export async function carriedPods(lab: TreeLab): Promise<CarriedPod[]> {
  const root = lab.clients.get(lab.root)!;
  const vnodes = await root.list<{ metadata: { name: string; annotations?: Record<string, string> } }>(
    "/api/v1/nodes",
    { labelSelector: `${NODE_LABEL}=true` },
  );
  const leafOf = new Map(
    vnodes.items.map((n) => [n.metadata.name, n.metadata.annotations?.[OWNED_BY_CLUSTER]]),
  );
  const leafPods = new Map<string, TreePod[]>();
  for (const l of lab.leaves) leafPods.set(l, await podsOf(lab.clients.get(l)!, WEB, `,${POD_LABEL}=true`));
  return (await podsOf(root, WEB)).map((p) => {
    const leaf = leafOf.get(p.node) ?? "";
    return { root: p, leaf, leafPod: leafPods.get(leaf)?.find((x) => x.name === p.name) };
  });
}

/** Step 3: the root workload; resolves when `replicas` web pods and the client are Running and Ready. */
export async function deployTreeWorkload(
  lab: TreeLab,
  replicas = 6,
): Promise<{ pods: CarriedPod[]; client: TreePod }> {
  const root = lab.clients.get(lab.root)!;
  say(
    `\n$ kubectl --kubeconfig ${lab.kubeconfig(lab.root)} apply -f tree-demo.yaml   # Deployment ${WEB}: ${replicas} × kosmos-echo, ` +
      `tolerates kosmos.io/node, nodeSelector kosmos.io/node=true; Service ${WEB}:${WEB_PORT}; Deployment ${CLIENT} (1, a real root node)`,
  );
  await applyObjects(root, treeWorkload(replicas));
  let seen = "nothing listed yet";
  const ready = await waitFor(
    `${replicas} ${WEB} pods and the ${CLIENT} Running and Ready`,
    300_000,
    async () => {
      const pods = await carriedPods(lab);
      const [client] = (await podsOf(root, CLIENT)).filter((p) => p.ready);
      const done = pods.filter((p) => p.root.ready && p.leafPod?.ready);
      seen =
        `last seen: ${pods.length} root pods, ${pods.filter((p) => p.root.node).length} bound, ` +
        `${pods.filter((p) => p.leafPod).length} with a leaf pod (${pods.filter((p) => p.leafPod?.ready).length} Ready), ` +
        `${done.length} Ready in the root; client ${client ? "Ready" : "not Ready"}`;
      return done.length === replicas && client ? { pods: done, client } : undefined;
    },
  ).catch((e: Error) => {
    throw new Error(`${e.message}; ${seen}`);
  });
  say(
    `$ kubectl --kubeconfig ${lab.kubeconfig(lab.root)} -n ${TREE_DEMO_NS} get pods -o wide   # and in each leaf`,
  );
  say(
    renderTable(
      ["ROOT POD", "VIRTUAL NODE", "ROOT POD IP", "LEAF", "LEAF NODE", "LEAF POD IP", ""],
      ready.pods
        .sort((a, b) => a.leaf.localeCompare(b.leaf) || a.root.name.localeCompare(b.root.name))
        .map((p) => [
          p.root.name,
          p.root.node,
          p.root.ip,
          p.leaf,
          p.leafPod?.node ?? "",
          p.leafPod?.ip ?? "",
          p.root.ip === p.leafPod?.ip ? OK : FAIL,
        ]),
    ),
  );
  say(`client pod ${ready.client.name} on the root's real node ${ready.client.node}, ${ready.client.ip}`);
  return ready;
}

/** One TCP connection from the client pod's network namespace; the answer (a pod name) or "". */
async function connect(lab: TreeLab, client: TreePod, ip: string): Promise<string> {
  const node = lab.plan.nodes.find((n) => n.cluster === lab.root && n.short === client.node);
  if (!node) throw new Error(`no lab node ${lab.root}/${client.node}`);
  const { ns } = sandboxNames(`${node.ns}-`, client.uid);
  const r = await sh(
    ["ip", "netns", "exec", ns, "socat", "-T3", "-", `TCP4:${ip}:${WEB_PORT},connect-timeout=3`],
    { allowFail: true, input: "" },
  );
  return r.code === 0 ? r.stdout.trim() : "";
}

export interface TrafficResult {
  clusterIP: string;
  /** Answers through the Service, by leaf ("?" for none or an unknown name). */
  viaService: Record<string, number>;
  serviceTries: number;
  direct: { pod: string; leaf: string; ip: string; answer: string; ok: boolean }[];
}

/**
 * Step 4: from the client pod (a real root node: a third cluster for both leaves), connections to the
 * Service's ClusterIP (the root's kube-proxy stand-in picks a root endpoint = a leaf pod IP) until
 * both leaves have answered, then one to each root pod IP directly.
 */
export async function treeTraffic(lab: TreeLab, pods: CarriedPod[], client: TreePod): Promise<TrafficResult> {
  const root = lab.clients.get(lab.root)!;
  const svc = await root.get<{ spec: { clusterIP: string } }>(
    `/api/v1/namespaces/${TREE_DEMO_NS}/services/${WEB}`,
  );
  const ip = svc.spec.clusterIP;
  const leafOf = new Map(pods.map((p) => [p.root.name, p.leaf]));
  const viaService: Record<string, number> = {};
  let tries = 0;
  const deadline = Date.now() + 60_000;
  while (tries < 12 || lab.leaves.some((l) => !viaService[l])) {
    if (Date.now() > deadline) break;
    tries++;
    const answer = await connect(lab, client, ip);
    const leaf = leafOf.get(answer) ?? "?";
    viaService[leaf] = (viaService[leaf] ?? 0) + 1;
    if (leaf === "?") await Bun.sleep(500); // the proxy's rules or the routes are still converging
  }
  say(
    `\n$ kubectl exec ${client.name} -- sh -c 'socat - TCP:${ip}:${WEB_PORT}' × ${tries}   # Service ${WEB}`,
  );
  say(
    renderTable(
      ["LEAF", "ANSWERS"],
      Object.entries(viaService)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([l, n]) => [l === "?" ? "(no answer)" : l, n]),
    ),
  );
  const direct = await Promise.all(
    pods.map(async (p) => {
      let answer = "";
      for (let i = 0; i < 10 && answer !== p.root.name; i++) {
        if (i) await Bun.sleep(1000);
        answer = await connect(lab, client, p.root.ip);
      }
      return { pod: p.root.name, leaf: p.leaf, ip: p.root.ip, answer, ok: answer === p.root.name };
    }),
  );
  say(`$ kubectl exec ${client.name} -- sh -c 'socat - TCP:<root pod IP>:${WEB_PORT}'   # each root pod`);
  say(
    renderTable(
      ["ROOT POD", "LEAF", "POD IP", "", "ANSWER"],
      direct.map((d) => [d.pod, d.leaf, d.ip, d.ok ? OK : FAIL, d.answer]),
    ),
  );
  return { clusterIP: ip, viaService, serviceTries: tries, direct };
}

export interface LogsExec {
  pod: string;
  logs: string;
  /** kubectl's output; undefined when no kubectl ≥ 1.30 is there (`skipped` says why). */
  exec?: { out: string; code: number };
  skipped?: string;
}

async function kubectl(kubeconfig: string, args: string[]): Promise<{ out: string; code: number }> {
  const r = await sh([KUBECTL!, "--kubeconfig", kubeconfig, ...args], { allowFail: true });
  return { out: `${r.stdout}${r.stderr}`, code: r.code };
}

/** Step 5: `kubectl logs` and `kubectl exec` on a root pod (served by kosmos-clustertree's kubelet API). */
export async function treeLogsExec(lab: TreeLab, pod: string): Promise<LogsExec> {
  const kc = lab.kubeconfig(lab.root);
  const ns = ["-n", TREE_DEMO_NS];
  if (!KUBECTL) {
    // Without a kubectl ≥ 1.30, the same request through the API (logs only: exec needs a WebSocket client).
    const logs = await lab.clients
      .get(lab.root)!
      .request<string>("GET", `/api/v1/namespaces/${TREE_DEMO_NS}/pods/${pod}/log`);
    say(
      `\n$ kubectl --kubeconfig ${kc} -n ${TREE_DEMO_NS} logs ${pod}   # (GET pods/${pod}/log)\n${logs.trimEnd()}`,
    );
    return {
      pod,
      logs,
      skipped: "no kubectl ≥ 1.30 at /usr/lib/google-cloud-sdk/bin/kubectl.1.32: exec not run",
    };
  }
  const logs = await waitFor("kubectl logs", 30_000, async () => {
    const r = await kubectl(kc, [...ns, "logs", pod]);
    return r.code === 0 ? r.out : undefined;
  });
  say(`\n$ kubectl --kubeconfig ${kc} -n ${TREE_DEMO_NS} logs ${pod}\n${logs.trimEnd()}`);
  const exec = await kubectl(kc, [
    ...ns,
    "exec",
    pod,
    "--",
    "sh",
    "-c",
    "echo $(hostname) in $(ip -4 -o addr show eth0 | awk '{print $4}')",
  ]);
  say(
    `$ kubectl --kubeconfig ${kc} -n ${TREE_DEMO_NS} exec ${pod} -- sh -c 'echo $(hostname) in <eth0's address>'\n${exec.out.trimEnd()}`,
  );
  return { pod, logs, exec };
}

export interface LeafObjects {
  leaf: string;
  pods: string[];
  configMaps: string[];
  secrets: string[];
  serviceAccounts: string[];
}

/** What Kosmos made in each leaf's demo namespace: pods, and copies (label kosmos.io/synced=true). */
export async function leafObjects(lab: TreeLab): Promise<LeafObjects[]> {
  const names = async (c: KubeClient, kind: string, selector: string) =>
    (await c.list(`/api/v1/namespaces/${TREE_DEMO_NS}/${kind}`, { labelSelector: selector })).items
      .map((o) => o.metadata.name)
      .sort();
  return await Promise.all(
    lab.leaves.map(async (leaf) => {
      const c = lab.clients.get(leaf)!;
      const synced = `${SYNCED_LABEL}=true`;
      return {
        leaf,
        pods: await names(c, "pods", `${POD_LABEL}=true`),
        configMaps: await names(c, "configmaps", synced),
        secrets: await names(c, "secrets", synced),
        serviceAccounts: await names(c, "serviceaccounts", synced),
      };
    }),
  );
}

const objectRows = (when: string, objs: LeafObjects[]) =>
  objs.map((o) => [
    when,
    o.leaf,
    o.pods.length,
    o.configMaps.join(" ") || "-",
    o.secrets.join(" ") || "-",
    o.serviceAccounts.join(" ") || "-",
  ]);

/** Step 6: delete the Deployment; resolves when no root pod, leaf pod or copy of it is left. */
export async function deleteTreeWorkload(
  lab: TreeLab,
): Promise<{ before: LeafObjects[]; after: LeafObjects[] }> {
  const root = lab.clients.get(lab.root)!;
  const before = await leafObjects(lab);
  say(`\n$ kubectl --kubeconfig ${lab.kubeconfig(lab.root)} -n ${TREE_DEMO_NS} delete deployment ${WEB}`);
  await root.delete(`/apis/apps/v1/namespaces/${TREE_DEMO_NS}/deployments/${WEB}`, {
    propagationPolicy: "Background",
  });
  const after = await waitFor("every root and leaf pod of web gone, and every copy", 180_000, async () => {
    if ((await podsOf(root, WEB)).length) return undefined;
    const objs = await leafObjects(lab);
    return objs.every((o) => !o.pods.length && !o.configMaps.length && !o.secrets.length) ? objs : undefined;
  });
  say(
    renderTable(
      ["", "LEAF", "KOSMOS PODS", "CONFIGMAP COPIES", "SECRET COPIES", "SERVICEACCOUNT COPIES"],
      [...objectRows("before", before), ...objectRows("after", after)],
    ),
  );
  return { before, after };
}

/** The whole demo; true when every step did what issue 14's "Done when" says. */
export async function treeDemo(name: string, config: LabConfig): Promise<boolean> {
  const t0 = performance.now();
  const lab = await treeLabUp(name, config);
  try {
    await runClusterTree(lab);
    const { pods, client } = await deployTreeWorkload(lab, 6);
    const traffic = await treeTraffic(lab, pods, client);
    const le = await treeLogsExec(lab, pods[0]!.root.name);
    const { before, after } = await deleteTreeWorkload(lab);
    const spread = lab.leaves.map((l) => `${l} ${pods.filter((p) => p.leaf === l).length}`).join(", ");
    const sameIPs = pods.filter((p) => p.root.ip === p.leafPod?.ip).length;
    const direct = traffic.direct.filter((d) => d.ok).length;
    const bothLeaves = lab.leaves.every((l) => (traffic.viaService[l] ?? 0) > 0);
    const execOk = le.exec ? le.exec.code === 0 && le.exec.out.startsWith(le.pod) : undefined;
    const copiesBefore = before.reduce((n, o) => n + o.configMaps.length + o.secrets.length, 0);
    const ok =
      sameIPs === 6 &&
      bothLeaves &&
      direct === pods.length &&
      le.logs.includes(le.pod) &&
      execOk !== false &&
      after.every((o) => !o.pods.length);
    say(
      `\n${ok ? OK : FAIL} ClusterTree in the lab: ${sameIPs}/6 root pods Running with their leaf pod's IP (${spread}); ` +
        `Service ${WEB} from ${lab.root}/${client.node} reached ${Object.keys(traffic.viaService)
          .filter((l) => l !== "?")
          .sort()
          .join(" and ")}; ` +
        `${direct}/${pods.length} root pod IPs answered; kubectl logs ${le.logs.includes(le.pod) ? OK : FAIL}, exec ${execOk === undefined ? "skipped" : execOk ? OK : FAIL}; ` +
        `deleted: ${before.reduce((n, o) => n + o.pods.length, 0)} leaf pods and ${copiesBefore} copies → 0 ` +
        `(${((performance.now() - t0) / 1000).toFixed(0)} s)`,
    );
    return ok;
  } finally {
    lab.close();
  }
}
