#!/usr/bin/env bun
/** kosmos-clustertree: flags/env → startClusterTree + the kubelet API + /healthz /readyz /metrics. No logic here. */
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { startClusterTree, startKubeletServer, webhookAuthorizer } from "../internal/clustertree/index.ts";
import { KubeClient, loadKubeConfig } from "../internal/kube/index.ts";
import { createLogger, createRegistry, Gauge } from "../internal/observability/index.ts";

const program = new Command("kosmos-clustertree")
  .description(
    "Shows leaf clusters (Cluster objects with clusterTreeOptions) as virtual nodes of this root cluster and runs the pods bound to them in the leaves",
  )
  .option(
    "--kubeconfig <file>",
    "kubeconfig of the root cluster (default: $KUBECONFIG, in-cluster, ~/.kube/config)",
  )
  .option("--namespace <ns>", "namespace of the Lease and of kubeconfig Secrets", "kosmos-system")
  .option("--listen <addr>", "health/metrics address", "0.0.0.0:9091")
  .option(
    "--node-ip <ip>",
    "address the virtual nodes advertise for their kubelet API (this pod's IP; also $LEAF_NODE_IP as upstream)",
    process.env.LEAF_NODE_IP ?? process.env.POD_IP ?? "127.0.0.1",
  )
  .option("--listen-port <port>", "kubelet API port (upstream: 10250)", "10250")
  .option(
    "--node-dns-name <name>",
    "also advertise this InternalDNS address on the virtual nodes, for setups where the API server reaches clustertree by a name (the lab: localhost, through a host port mapping)",
  )
  .option(
    "--kubelet-advertise-port <port>",
    "the kubelet port the virtual nodes advertise (daemonEndpoints) when the API server reaches clustertree through a port mapping (default: --listen-port)",
  )
  .option(
    "--kubelet-cert <file>",
    "kubelet API serving certificate (also $APISERVER_CERT_LOCATION)",
    process.env.APISERVER_CERT_LOCATION,
  )
  .option(
    "--kubelet-key <file>",
    "its key (also $APISERVER_KEY_LOCATION)",
    process.env.APISERVER_KEY_LOCATION,
  )
  .option(
    "--kubelet-client-ca <file>",
    "CA of the root API server's kubelet client certificate; clients are verified against it (also $APISERVER_CA_CERT_LOCATION)",
    process.env.APISERVER_CA_CERT_LOCATION,
  )
  .option(
    "--kubelet-insecure-skip-client-verify",
    "accept kubelet API clients without verifying them (upstream's default)",
  )
  .option(
    "--kubelet-authorization-mode <mode>",
    "Webhook: each kubelet API request is a SubjectAccessReview (nodes/proxy, nodes/log, …) against the root API server, as a kubelet with --authorization-mode=Webhook; AlwaysAllow: any verified client",
    "Webhook",
  )
  .option("--no-leader-elect", "run without a Lease (single replica)")
  .option("--pod-workers <n>", "pods reconciled in parallel (each mostly waits on an API server)", "32")
  .option(
    "--update-root-node-status-notready",
    "opt-in NotReady mode (upstream's --Update-RootNode-Status-Notready, also accepted): while a leaf does not answer, keep renewing its virtual nodes' Leases and say Ready=False once it has failed for --notready-after; without it the Leases stop and the root marks the nodes Unknown after 40 s",
  )
  .option(
    "--Update-RootNode-Status-Notready",
    "same as --update-root-node-status-notready (upstream's spelling)",
  )
  .option(
    "--notready-after <duration>",
    "NotReady mode: how long a leaf must fail before its nodes say Ready=False (ms, s, m or h)",
    "30m",
  )
  .option("--ready-after <duration>", "NotReady mode: how long it must answer again before Ready=True", "5s")
  .parse();

const o = program.opts<{
  kubeconfig?: string;
  namespace: string;
  listen: string;
  nodeIp: string;
  listenPort: string;
  nodeDnsName?: string;
  kubeletAdvertisePort?: string;
  kubeletCert?: string;
  kubeletKey?: string;
  kubeletClientCa?: string;
  kubeletInsecureSkipClientVerify?: boolean;
  kubeletAuthorizationMode: string;
  leaderElect: boolean;
  podWorkers: string;
  updateRootNodeStatusNotready?: boolean;
  UpdateRootNodeStatusNotready?: boolean;
  notreadyAfter: string;
  readyAfter: string;
}>();
const log = createLogger({ component: "clustertree" });
const kubeletPort = Number(o.listenPort);
if (!Number.isInteger(kubeletPort) || kubeletPort < 1 || kubeletPort > 65535) {
  console.error(`kosmos-clustertree: --listen-port: bad port ${o.listenPort}`);
  process.exit(2);
}
const advertisePort = Number(o.kubeletAdvertisePort ?? kubeletPort);
if (!Number.isInteger(advertisePort) || advertisePort < 1 || advertisePort > 65535) {
  console.error(`kosmos-clustertree: --kubelet-advertise-port: bad port ${o.kubeletAdvertisePort}`);
  process.exit(2);
}
const podWorkers = Number(o.podWorkers);
if (!Number.isInteger(podWorkers) || podWorkers < 1) {
  console.error(`kosmos-clustertree: --pod-workers: want a whole number ≥ 1, got ${o.podWorkers}`);
  process.exit(2);
}
/** `30m`, `5s`, `1500ms`, `1h` → ms. */
function durationMs(flag: string, v: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(v.trim());
  if (!m) {
    console.error(`kosmos-clustertree: ${flag}: want a duration like 30m, 5s or 1500ms, got ${v}`);
    process.exit(2);
  }
  return Number(m[1]) * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
}
const notReadyMode = Boolean(o.updateRootNodeStatusNotready || o.UpdateRootNodeStatusNotready);
const notReady = notReadyMode
  ? {
      notReadyAfterMs: durationMs("--notready-after", o.notreadyAfter),
      recoverAfterMs: durationMs("--ready-after", o.readyAfter),
    }
  : undefined;
if (!["Webhook", "AlwaysAllow"].includes(o.kubeletAuthorizationMode)) {
  console.error(
    `kosmos-clustertree: --kubelet-authorization-mode: Webhook or AlwaysAllow, got ${o.kubeletAuthorizationMode}`,
  );
  process.exit(2);
}
const kc = loadKubeConfig(o.kubeconfig, { inClusterFirst: true });
const tree = await startClusterTree({
  kubeconfig: kc,
  namespace: o.namespace,
  leaderElection: o.leaderElect,
  nodeAddress: o.nodeIp,
  kubeletPort: advertisePort,
  ...(o.nodeDnsName ? { nodeDnsName: o.nodeDnsName } : {}),
  podWorkers,
  ...(notReady ? { notReady } : {}),
  logger: log,
});
let kubelet: Awaited<ReturnType<typeof startKubeletServer>> | undefined;
if (o.kubeletCert && o.kubeletKey) {
  kubelet = await startKubeletServer({
    cert: readFileSync(o.kubeletCert, "utf8"),
    key: readFileSync(o.kubeletKey, "utf8"),
    clientCA: o.kubeletClientCa ? readFileSync(o.kubeletClientCa, "utf8") : undefined,
    insecureSkipClientVerify: o.kubeletInsecureSkipClientVerify,
    port: kubeletPort,
    leafOfPod: tree.leafOfPod,
    ...(o.kubeletAuthorizationMode === "Webhook" ? { authorize: webhookAuthorizer(new KubeClient(kc)) } : {}),
    logger: log,
  });
} else log.warn("no --kubelet-cert/--kubelet-key: kubectl logs/exec on pods in leaves will not work");

const registry = createRegistry();
const gauge = (name: string, help: string, value: () => number): void => {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(value());
    },
  });
};
gauge("kosmos_clustertree_leader", "1 while this replica holds the kosmos-clustertree Lease", () =>
  tree.isLeader() ? 1 : 0,
);
gauge(
  "kosmos_clustertree_ready",
  "1 while caches are synced and the Lease loop talks to the API server",
  () => (tree.ready().ready ? 1 : 0),
);
gauge("kosmos_clustertree_virtual_nodes", "virtual nodes applied", () =>
  [...tree.plans().values()].reduce((n, p) => n + p.nodes.length, 0),
);
gauge(
  "kosmos_clustertree_leaves_answering",
  "leaf clusters whose API server answers the heartbeat",
  () => tree.leaves().filter((l) => l.answering).length,
);
gauge("kosmos_clustertree_leaf_pods_created", "leaf pods created since start", () => tree.counters.created);
gauge("kosmos_clustertree_leaf_pods_deleted", "leaf pods deleted since start", () => tree.counters.deleted);
gauge(
  "kosmos_clustertree_status_writes",
  "root pod status writes since start",
  () => tree.counters.statusWrites,
);
gauge(
  "kosmos_clustertree_leaf_pod_patches",
  "leaf pod patches (labels, images) since start",
  () => tree.counters.leafPatches,
);
gauge(
  "kosmos_clustertree_pod_reconciles",
  "pod reconciles run since start",
  () => tree.counters.podReconciles,
);
gauge(
  "kosmos_clustertree_pod_reconcile_seconds",
  "time spent in pod reconciles since start (sum over workers)",
  () => tree.counters.podReconcileMs / 1000,
);
gauge(
  "kosmos_clustertree_pod_queue_wait_seconds",
  "time pod keys waited in the queue before a reconcile since start (sum)",
  () => tree.counters.podQueueWaitMs / 1000,
);
for (const q of ["clusters", "pods", "copies", "volumes"])
  gauge(
    `kosmos_clustertree_queue_${q}`,
    `keys queued or running in the ${q} work queue`,
    () => tree.queueLengths()[q] ?? 0,
  );

const at = o.listen.lastIndexOf(":");
const server = Bun.serve({
  hostname: o.listen.slice(0, at),
  port: Number(o.listen.slice(at + 1)),
  fetch: async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/healthz") return new Response("ok");
    if (path === "/readyz") {
      const r = tree.ready();
      return new Response(`${r.ready ? "ok" : "not ready"}: ${r.reason}\n`, { status: r.ready ? 200 : 503 });
    }
    if (path === "/metrics")
      return new Response(await registry.metrics(), { headers: { "content-type": registry.contentType } });
    if (path === "/status")
      return Response.json({
        leader: tree.isLeader(),
        ready: tree.ready(),
        leaves: tree.leaves(),
        counters: tree.counters,
        queues: tree.queueLengths(),
      });
    return new Response("not found", { status: 404 });
  },
});
log.info({ listen: o.listen, kubeletPort: kubelet?.port, nodeIp: o.nodeIp }, "kosmos-clustertree started");
const shutdown = async (): Promise<void> => {
  await tree.stop();
  await kubelet?.stop();
  server.stop(true);
  process.exit(0);
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
