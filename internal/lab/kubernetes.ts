/**
 * Every lab cluster a real Kubernetes cluster: one etcd (one key prefix per cluster), and per cluster
 * an API server, controller-manager and scheduler from the envtest assets, plus one lab kubelet
 * process (cmd/kosmos-kubelet.ts) per lab node registering it with the lab's pod CIDRs and underlay
 * addresses. These processes are the children of one supervisor (`kosmosctl lab k8s-supervise`,
 * started detached by `lab up --kubernetes`): they die with it (pdeathsig), and `lab down` stops it
 * first. Its state (URLs, kubeconfig files, pids) is `<lab dir>/kubernetes.json`.
 */
import { closeSync, existsSync, openSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GATEWAY_LABEL } from "../controller/index.ts";
import {
  ControlPlane,
  Daemon,
  type Etcd,
  findAssets,
  freePort,
  issueCert,
  startEtcd,
  waitUntil,
} from "../controlplane/index.ts";
import { KubeClient, kubeConfigFromYaml } from "../kube/index.ts";
import {
  apiAddress,
  apiUrl,
  bridgeArgv,
  fabricAddressLines,
  kubernetesServiceIP,
  portMapArgv,
  renderPodEgress,
} from "./apibridge.ts";
import { REPO_ROOT } from "./bundle.ts";
import { labFiles } from "./lab.ts";
import type { LabClusterPlan, LabNodePlan, LabPlan } from "./plan.ts";
import { inNs, ipBatch, isRunning } from "./sh.ts";

/** API server flags a control plane needs to reach lab kubelets (logs, exec, port-forward): the lab kubelets advertise InternalDNS `localhost`, where each listens. */
export const LAB_APISERVER_FLAGS = ["--kubelet-preferred-address-types=InternalDNS,InternalIP,Hostname"];

export interface LabKubeState {
  supervisorPid: number;
  ready: boolean;
  error?: string;
  etcd?: string;
  clusters: {
    name: string;
    /** The API server as the host sees it (127.0.0.1). */
    server: string;
    /** The same API server as the lab's nodes and pods reach it (apibridge.ts). */
    internalServer: string;
    kubeconfig: string;
    /** Admin kubeconfig with internalServer (`lab kubeconfig --internal`), for Secrets read inside the lab. */
    internalKubeconfig: string;
    dir: string;
  }[];
  kubelets: { node: string; cluster: string; pid: number; log: string }[];
  /** Host ports carried into nodes (config `extraPortMappings`), with the host port chosen. */
  portMappings?: LabPortMappingState[];
}

export interface LabPortMappingState {
  cluster: string;
  /** The Node's name in its cluster (the lab node's short name). */
  node: string;
  nodeAddress: string;
  containerPort: number;
  /** On the host's 127.0.0.1. */
  hostPort: number;
}

export const kubeStateFile = (lab: string): string => join(labFiles(lab).dir, "kubernetes.json");
export const kubeconfigFile = (lab: string, cluster: string, internal = false): string =>
  join(labFiles(lab).dir, `kubeconfig-${cluster}${internal ? "-internal" : ""}`);

/** The service CIDRs of a lab cluster as one flag value (IPv4 first, as the API server wants). */
export const serviceRange = (c: LabClusterPlan): string =>
  [...c.serviceCIDRs].sort((a, b) => Number(a.includes(":")) - Number(b.includes(":"))).join(",");

/** The kosmos-kubelet argv for one lab node (pure). */
export function kubeletArgv(
  plan: LabPlan,
  node: LabNodePlan,
  o: {
    bun: string;
    kubeconfig: string;
    root: string;
    api?: { port: number; certFile: string; keyFile: string; caFile: string };
  },
): string[] {
  const cluster = plan.clusters.find((c) => c.name === node.cluster)!;
  const addrs = [
    ...(cluster.ipFamily !== "ipv6" ? [node.ipv4] : []),
    ...(cluster.ipFamily !== "ipv4" ? [node.ipv6] : []),
  ];
  const labels = [`kosmos.io/lab=${plan.name}`, ...(node.gatewayCandidate ? [`${GATEWAY_LABEL}=true`] : [])];
  return [
    o.bun,
    join(REPO_ROOT, "cmd/kosmos-kubelet.ts"),
    "--kubeconfig",
    o.kubeconfig,
    "--node",
    node.short,
    "--node-ns",
    node.ns,
    "--pod-ns-prefix",
    `${node.ns}-`,
    "--root",
    o.root,
    ...addrs.flatMap((a) => ["--address", a]),
    ...node.podCIDRs.flatMap((c) => ["--pod-cidr", c]),
    ...labels.flatMap((l) => ["--label", l]),
    ...cluster.podCIDRs.flatMap((c) => ["--cluster-cidr", c]),
    // What the kubelet gives every container for the `kubernetes` Service (in-cluster config).
    ...kubernetesServiceEnv(cluster).flatMap((kv) => ["--env", kv]),
    // Node-local DNS: the node's own address, where the Kosmos agent answers clusterset.local when
    // installed with --mcs (the lab has no cluster DNS: other names get no answer there).
    "--cluster-dns",
    addrs[0]!,
    ...(o.api
      ? [
          "--kubelet-port",
          String(o.api.port),
          "--tls-cert-file",
          o.api.certFile,
          "--tls-private-key-file",
          o.api.keyFile,
          "--client-ca-file",
          o.api.caFile,
        ]
      : []),
  ];
}

/** The `kubernetes` Service variables the kubelet sets in every container (pure). */
export function kubernetesServiceEnv(c: LabClusterPlan): string[] {
  const ip = kubernetesServiceIP(c);
  const host = ip.includes(":") ? `[${ip}]` : ip;
  return [
    `KUBERNETES_SERVICE_HOST=${ip}`,
    "KUBERNETES_SERVICE_PORT=443",
    "KUBERNETES_SERVICE_PORT_HTTPS=443",
    `KUBERNETES_PORT=tcp://${host}:443`,
    `KUBERNETES_PORT_443_TCP=tcp://${host}:443`,
    "KUBERNETES_PORT_443_TCP_PROTO=tcp",
    "KUBERNETES_PORT_443_TCP_PORT=443",
    `KUBERNETES_PORT_443_TCP_ADDR=${ip}`,
  ];
}

/**
 * The API servers on the lab's network (apibridge.ts): the fabric owns each cluster's API address,
 * two socat processes per cluster bridge it to the API server on 127.0.0.1, and every node masquerades
 * its pods' traffic to the lab's LANs. Resolves once each cluster's first node gets an answer through it.
 */
async function startApiBridges(plan: LabPlan, planes: ControlPlane[], daemons: Daemon[]): Promise<void> {
  await ipBatch(plan.fabricNs, fabricAddressLines(plan));
  for (const [i, c] of plan.clusters.entries()) {
    const cp = planes[i]!;
    const argv = bridgeArgv(c, {
      fabricNs: plan.fabricNs,
      port: cp.port,
      socket: join(cp.dir, "apiserver.sock"),
    });
    daemons.push(new Daemon(`api-bridge-host(${c.name})`, argv.host, join(cp.dir, "bridge-host.log")));
    daemons.push(new Daemon(`api-bridge-fabric(${c.name})`, argv.fabric, join(cp.dir, "bridge-fabric.log")));
  }
  for (const n of plan.nodes) {
    const c = plan.clusters.find((x) => x.name === n.cluster)!;
    await inNs(n.ns, ["nft", "-f", "-"], { input: renderPodEgress(plan, c) });
  }
  for (const [i, c] of plan.clusters.entries()) {
    const node = plan.nodes.find((n) => n.cluster === c.name);
    if (!node) continue;
    const url = `${apiUrl(c, planes[i]!.port)}/readyz`;
    // Any HTTP answer (anonymous requests may be refused) proves the path; curl prints 000 without one.
    const probe = ["curl", "-sk", "--max-time", "3", "-o", "/dev/null", "-w", "%{http_code}", url];
    await waitUntil(
      `the API server of ${c.name} at ${apiAddress(c)} from node ${node.name}`,
      async () => !/^0*$/.test((await inNs(node.ns, probe, { allowFail: true })).stdout.trim()),
      { timeoutMs: 30_000, intervalMs: 200 },
    );
  }
}

/** Start the socat pair of every node's `extraPortMappings` (hostPort 0: a free one); their state. */
async function startPortMappings(
  plan: LabPlan,
  dir: string,
  daemons: Daemon[],
): Promise<LabPortMappingState[]> {
  const out: LabPortMappingState[] = [];
  for (const n of plan.nodes) {
    for (const m of n.portMappings ?? []) {
      const hostPort = m.hostPort || (await freePort());
      const socket = join(dir, `port-${n.name}-${m.containerPort}.sock`);
      const argv = portMapArgv({
        nodeNs: n.ns,
        nodeAddress: n.ipv4,
        containerPort: m.containerPort,
        hostPort,
        socket,
      });
      const what = `${n.name}:${m.containerPort}`;
      daemons.push(new Daemon(`port-map-node(${what})`, argv.node, join(dir, `port-${n.name}-node.log`)));
      daemons.push(new Daemon(`port-map-host(${what})`, argv.host, join(dir, `port-${n.name}-host.log`)));
      out.push({
        cluster: n.cluster,
        node: n.short,
        nodeAddress: n.ipv4,
        containerPort: m.containerPort,
        hostPort,
      });
    }
  }
  return out;
}

export interface RunningLabKube {
  state: LabKubeState;
  stop(): Promise<void>;
}

/** Start the control planes and kubelets of a lab whose network is up; resolves once every Node is Ready. */
export async function startLabKubernetes(plan: LabPlan, o: { bun?: string } = {}): Promise<RunningLabKube> {
  const assets = findAssets();
  const dir = join(labFiles(plan.name).dir, "kubernetes");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const state: LabKubeState = { supervisorPid: process.pid, ready: false, clusters: [], kubelets: [] };
  const planes: ControlPlane[] = [];
  const kubelets: Daemon[] = [];
  const bridges: Daemon[] = [];
  let etcd: Etcd | undefined;
  const stop = async (): Promise<void> => {
    // Kubelets first (SIGTERM: they stop their pods), then the control planes, then etcd.
    await Promise.all(kubelets.map((k) => k.stop(15_000)));
    await Promise.all(bridges.map((b) => b.stop()));
    await Promise.all(planes.map((p) => p.stop()));
    await etcd?.stop();
  };
  try {
    etcd = await startEtcd(assets, join(dir, "etcd"));
    state.etcd = etcd.url;
    const shared = etcd;
    planes.push(
      ...(await Promise.all(
        plan.clusters.map((c) =>
          ControlPlane.start({
            name: `${plan.name}-${c.name}`,
            etcd: shared,
            assets,
            dir: join(dir, c.name),
            serviceCIDR: serviceRange(c),
            components: ["controller-manager", "scheduler"],
            hosts: [apiAddress(c)],
            apiServerFlags: [...LAB_APISERVER_FLAGS, `--advertise-address=${apiAddress(c)}`],
          }),
        ),
      )),
    );
    for (const [i, c] of plan.clusters.entries()) {
      const cp = planes[i]!;
      const file = kubeconfigFile(plan.name, c.name);
      const internalFile = kubeconfigFile(plan.name, c.name, true);
      const internalServer = apiUrl(c, cp.port);
      await writeFile(file, cp.kubeconfig(), { mode: 0o600 });
      await writeFile(internalFile, cp.kubeconfig({ server: internalServer }), { mode: 0o600 });
      state.clusters.push({
        name: c.name,
        server: cp.url,
        internalServer,
        kubeconfig: file,
        internalKubeconfig: internalFile,
        dir: cp.dir,
      });
    }
    await startApiBridges(plan, planes, bridges);
    state.portMappings = await startPortMappings(plan, dir, bridges);
    for (const n of plan.nodes) {
      const cp = planes[plan.clusters.findIndex((c) => c.name === n.cluster)]!;
      const root = join(dir, "nodes", n.name);
      await mkdir(root, { recursive: true });
      const log = join(dir, `kubelet-${n.name}.log`);
      const cert = await issueCert(cp.ca, root, {
        name: "kubelet-serving",
        cn: `system:node:${n.short}`,
        usage: "server",
        hosts: ["localhost", "127.0.0.1"],
      });
      const argv = kubeletArgv(plan, n, {
        bun: o.bun ?? process.execPath,
        kubeconfig: await cp.kubeconfigFile("kubelet.kubeconfig"),
        root,
        api: {
          port: await freePort(),
          certFile: cert.certPath,
          keyFile: cert.keyPath,
          caFile: cp.ca.certPath,
        },
      });
      const d = new Daemon(`kosmos-kubelet(${n.name})`, argv, log);
      kubelets.push(d);
      state.kubelets.push({ node: n.short, cluster: n.cluster, pid: d.pid, log });
    }
    for (const [i, c] of plan.clusters.entries()) {
      const client = new KubeClient(kubeConfigFromYaml(planes[i]!.kubeconfig()));
      const want = plan.nodes.filter((n) => n.cluster === c.name).length;
      await waitUntil(
        `${want} Ready Nodes in ${c.name}`,
        async () => {
          const nodes = await client.list<{ status?: { conditions?: { type: string; status: string }[] } }>(
            "/api/v1/nodes",
          );
          const ready = nodes.items.filter((x) =>
            x.status?.conditions?.some((k) => k.type === "Ready" && k.status === "True"),
          );
          return ready.length === want;
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      ).finally(() => client.close());
    }
    state.ready = true;
    return { state, stop };
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}

export async function readKubeState(lab: string): Promise<LabKubeState | undefined> {
  const f = kubeStateFile(lab);
  if (!existsSync(f)) return undefined;
  return JSON.parse(await readFile(f, "utf8")) as LabKubeState;
}

/**
 * Start the supervisor detached and wait until it reports the clusters up (or fails, with its log).
 * `argv`: how to run `kosmosctl lab k8s-supervise --name <lab>`.
 */
export async function launchSupervisor(
  lab: string,
  argv: string[],
  timeoutMs = 180_000,
): Promise<LabKubeState> {
  const log = join(labFiles(lab).dir, "kubernetes.log");
  const fd = openSync(log, "a");
  try {
    const p = Bun.spawn(["setsid", "-f", ...argv], { stdin: "ignore", stdout: fd, stderr: fd });
    await p.exited;
  } finally {
    closeSync(fd);
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await readKubeState(lab).catch(() => undefined);
    if (st?.ready) return st;
    if (st?.error || (st && !isRunning(st.supervisorPid)))
      throw new Error(
        `the lab's Kubernetes clusters failed: ${st.error ?? "supervisor exited"} (log: ${log})`,
      );
    if (Date.now() > deadline)
      throw new Error(`the lab's Kubernetes clusters were not up in ${timeoutMs} ms (log: ${log})`);
    await Bun.sleep(200);
  }
}

/** Stop the supervisor (it stops kubelets, control planes, etcd) and wait until it is gone. */
export async function stopLabKubernetes(lab: string): Promise<boolean> {
  const st = await readKubeState(lab).catch(() => undefined);
  if (!st) return false;
  const pids = [st.supervisorPid, ...st.kubelets.map((k) => k.pid)];
  try {
    process.kill(st.supervisorPid, "SIGTERM");
  } catch {
    /* gone already */
  }
  const deadline = Date.now() + 60_000;
  while (pids.some(isRunning) && Date.now() < deadline) await Bun.sleep(100);
  for (const p of pids.filter(isRunning)) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  await rm(kubeStateFile(lab), { force: true });
  return true;
}

/** The supervisor's body: start, publish the state, stop on SIGTERM/SIGINT. */
export async function superviseLabKubernetes(plan: LabPlan): Promise<void> {
  const file = kubeStateFile(plan.name);
  await writeFile(
    file,
    JSON.stringify({ supervisorPid: process.pid, ready: false, clusters: [], kubelets: [] }),
  );
  let running: RunningLabKube;
  try {
    running = await startLabKubernetes(plan);
  } catch (e) {
    const st: LabKubeState = {
      supervisorPid: process.pid,
      ready: false,
      error: (e as Error).message,
      clusters: [],
      kubelets: [],
    };
    await writeFile(file, JSON.stringify(st, null, 2));
    process.exit(1);
  }
  await writeFile(file, JSON.stringify(running.state, null, 2));
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  await running.stop();
  process.exit(0);
}
