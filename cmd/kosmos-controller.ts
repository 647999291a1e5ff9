#!/usr/bin/env bun
/** kosmos-controller: flags/env → startController. No logic here. */
import { Command } from "commander";
import { TOKEN_MIN_LENGTH, TOKEN_POLICY, tokenWeakness } from "../internal/api/index.ts";
import { type AgentEndpoint, startController } from "../internal/controller/index.ts";
import { loadKubeConfig } from "../internal/kube/index.ts";
import {
  DEFAULT_CLUSTERSET_CIDR,
  type RunningMcs,
  startMcs,
  topologyRecords,
} from "../internal/mcs/index.ts";
import { createLogger, createRegistry, Gauge } from "../internal/observability/index.ts";

const program = new Command("kosmos-controller")
  .description("Watches Kosmos Clusters and seeds the topology into agents")
  .option(
    "--kubeconfig <file>",
    "kubeconfig of the host cluster (default: $KUBECONFIG, in-cluster, ~/.kube/config)",
  )
  .option("--namespace <ns>", "namespace of the Lease and kubeconfig Secrets", "kosmos-system")
  .option("--agent <url...>", "seed agent URL (http(s)://host:port or unix:/path.sock); also $KOSMOS_AGENTS")
  .option("--token <token>", "bearer token for agents (default $KOSMOS_TOKEN)")
  .option(
    "--agent-port <port>",
    "without --agent: discover agents from ClusterNodes at https://<node IP>:<port> (also $KOSMOS_AGENT_PORT)",
    process.env.KOSMOS_AGENT_PORT ?? "5678",
  )
  .option(
    "--agent-scheme <scheme>",
    "https (agents' self-signed TLS: pinned with the kosmos.io/agent-fingerprint annotation, else not verified) or http; also $KOSMOS_AGENT_SCHEME",
    process.env.KOSMOS_AGENT_SCHEME ?? "https",
  )
  .option(
    "--agents-per-cluster <n>",
    "discovered agents seeded per cluster (also $KOSMOS_AGENTS_PER_CLUSTER)",
    process.env.KOSMOS_AGENTS_PER_CLUSTER ?? "3",
  )
  .option("--listen <addr>", "health/metrics address", "0.0.0.0:9090")
  .option("--no-leader-elect", "run without a Lease (single replica)")
  .option(
    "--mcs",
    "run the multi-cluster services controller (ServiceExport/ServiceImport, ClusterSetIPs; docs/services.md)",
  )
  .option("--clusterset-cidr <cidr>", "range the ClusterSetIPs are allocated from", DEFAULT_CLUSTERSET_CIDR)
  .option(
    "--auto-mcs-prefix <prefix...>",
    "namespaces (by prefix) whose Services are exported automatically",
    [],
  )
  .option("--reserved-namespaces <ns...>", "namespaces never exported automatically", ["kube-system"])
  .parse();

const o = program.opts<{
  kubeconfig?: string;
  namespace: string;
  agent?: string[];
  token?: string;
  agentPort: string;
  agentScheme: string;
  agentsPerCluster: string;
  listen: string;
  leaderElect: boolean;
  mcs?: boolean;
  clustersetCidr: string;
  autoMcsPrefix: string[];
  reservedNamespaces: string[];
}>();
const log = createLogger({ component: "controller" });
const token = o.token ?? process.env.KOSMOS_TOKEN ?? "";
// the agents refuse a weak token: say so now rather than on every push
const weak = token ? tokenWeakness(token) : null;
if (weak) {
  console.error(
    `kosmos-controller: the token given by --token / KOSMOS_TOKEN ${weak}\nhint: ${TOKEN_POLICY}`,
  );
  process.exit(2);
}
if (token)
  log.info({ tokenPolicy: TOKEN_POLICY }, `agent token accepted (at least ${TOKEN_MIN_LENGTH} characters)`);
const urls = [...(o.agent ?? []), ...(process.env.KOSMOS_AGENTS ?? "").split(",")]
  .map((s) => s.trim())
  .filter(Boolean);
const agents: AgentEndpoint[] = urls.map((u) => ({
  url: /^(https?:|unix:)/.test(u) ? u : `http://${u}`,
  token,
}));

const agentPort = Number(o.agentPort);
const perCluster = Number(o.agentsPerCluster);
if (!Number.isInteger(agentPort) || agentPort < 1 || agentPort > 65535)
  throw new Error(`--agent-port: bad port ${o.agentPort}`);
if (!Number.isInteger(perCluster) || perCluster < 1)
  throw new Error(`--agents-per-cluster: bad ${o.agentsPerCluster}`);
if (o.agentScheme !== "https" && o.agentScheme !== "http") throw new Error("--agent-scheme: https or http");

const kc = loadKubeConfig(o.kubeconfig, { inClusterFirst: true });

// The MCS controller shares the Lease (one allocator of ClusterSetIPs) and its imports ride in the
// seeded topology: it starts paused and runs while this replica leads.
let mcs: RunningMcs | undefined;
let leading = false;
if (o.mcs) {
  mcs = await startMcs({
    kubeconfig: kc,
    namespace: o.namespace,
    clustersetCIDR: o.clustersetCidr,
    autoPrefixes: o.autoMcsPrefix,
    reservedNamespaces: o.reservedNamespaces,
    logger: log.child({ component: "mcs" }),
    paused: true,
    onPlan: () => ctl?.reseed(),
  });
}
const ctl = await startController({
  kubeconfig: kc,
  agents,
  discovery: { token, port: agentPort, scheme: o.agentScheme, perCluster },
  namespace: o.namespace,
  leaderElection: o.leaderElect,
  logger: log,
  extraTopology: () => {
    const st = mcs?.state();
    return st ? topologyRecords(st) : {};
  },
  onLeadership: (l) => {
    leading = l;
    if (l) mcs?.resume();
    else mcs?.pause();
  },
});
const registry = createRegistry();
new Gauge({
  name: "kosmos_controller_leader",
  help: "1 while this replica holds the kosmos-controller Lease",
  registers: [registry],
  collect() {
    this.set(ctl.isLeader() ? 1 : 0);
  },
});
new Gauge({
  name: "kosmos_controller_ready",
  help: "1 while the controller can do its job (caches synced, Lease loop talking to the API server)",
  registers: [registry],
  collect() {
    this.set(ctl.ready().ready ? 1 : 0);
  },
});
const [hostname, port] = [
  o.listen.slice(0, o.listen.lastIndexOf(":")),
  Number(o.listen.slice(o.listen.lastIndexOf(":") + 1)),
];
const server = Bun.serve({
  hostname,
  port,
  fetch: async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/healthz") return new Response("ok");
    if (path === "/readyz") {
      const r = ctl.ready();
      return new Response(`${r.ready ? "ok" : "not ready"}: ${r.reason}\n`, { status: r.ready ? 200 : 503 });
    }
    if (path === "/metrics")
      return new Response(await registry.metrics(), { headers: { "content-type": registry.contentType } });
    if (path === "/status")
      return Response.json({
        leader: ctl.isLeader(),
        ready: ctl.ready(),
        seeder: ctl.seeder.status(),
        ...(mcs ? { mcs: { running: leading, synced: mcs.synced(), ...mcs.stats() } } : {}),
      });
    return new Response("not found", { status: 404 });
  },
});
log.info(
  urls.length > 0
    ? { agents: urls, listen: o.listen }
    : { discovery: { port: agentPort, scheme: o.agentScheme, perCluster }, listen: o.listen },
  "kosmos-controller started",
);
const shutdown = async (): Promise<void> => {
  await mcs?.stop();
  await ctl.stop();
  server.stop(true);
  process.exit(0);
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
