/**
 * A root and two leaves on one etcd for the ClusterTree tests: every cluster runs kube-controller-manager
 * (ReplicaSets, ServiceAccounts and their tokens, node lifecycle: it lifts the not-ready taint the API
 * server puts on new Nodes) and kube-scheduler; each leaf also runs a kubelet stand-in (test/helpers/kubelet-standin.ts) that registers Nodes and marks
 * the pods bound to them Running.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Component,
  ControlPlane,
  type Etcd,
  findAssets,
  freePort,
  issueCert,
  startEtcd,
} from "../../internal/controlplane/index.ts";
import {
  applyObjects,
  type KubeClient,
  kubeClient,
  loadKosmosCrds,
  waitEstablished,
} from "../../internal/kube/index.ts";
import { type KubeletStandIn, type StandInNode, startKubeletStandIn } from "./kubelet-standin.ts";

export interface TreeLab {
  dir: string;
  etcd: Etcd;
  root: ControlPlane;
  leaves: ControlPlane[];
  rootClient: KubeClient;
  leafClients: KubeClient[];
  kubelets: KubeletStandIn[];
  stop(): Promise<void>;
}

export interface TreeLabOptions {
  /** Components of each leaf besides its API server (default controller-manager and scheduler). */
  leafComponents?: Component[];
  /** Run a kubelet stand-in per leaf (default true); false: the leaves have no Nodes at all. */
  standIn?: boolean;
}

export async function startTreeLab(leafNodes: StandInNode[][], o: TreeLabOptions = {}): Promise<TreeLab> {
  const dir = await mkdtemp(join(tmpdir(), "kosmos-tree-"));
  const assets = findAssets();
  const etcd = await startEtcd(assets, join(dir, "etcd"));
  const tag = `ct${process.pid.toString(36)}`;
  const started: ControlPlane[] = [];
  const kubelets: KubeletStandIn[] = [];
  const clients: KubeClient[] = [];
  const stop = async (): Promise<void> => {
    for (const k of kubelets) await k.stop().catch(() => undefined);
    for (const c of clients) c.close();
    for (const cp of started) await cp.stop().catch(() => undefined);
    await etcd.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const planes = await Promise.all([
      ControlPlane.start({
        name: `${tag}r`,
        etcd,
        assets,
        dir: join(dir, "root"),
        components: ["controller-manager", "scheduler"],
      }),
      ...leafNodes.map((_, i) =>
        ControlPlane.start({
          name: `${tag}l${i + 1}`,
          etcd,
          assets,
          dir: join(dir, `leaf${i + 1}`),
          components: o.leafComponents ?? ["controller-manager", "scheduler"],
          serviceCIDR: `10.${100 + i}.0.0/16`,
        }),
      ),
    ]);
    started.push(...planes);
    const [root, ...leaves] = planes as [ControlPlane, ...ControlPlane[]];
    const rootClient = kubeClient({ yaml: root.kubeconfig() });
    const leafClients = leaves.map((l) => kubeClient({ yaml: l.kubeconfig() }));
    clients.push(rootClient, ...leafClients);
    await applyObjects(rootClient, loadKosmosCrds());
    await waitEstablished(rootClient, "clusters.kosmos.io");
    if (o.standIn !== false)
      for (const [i, c] of leafClients.entries()) kubelets.push(await startKubeletStandIn(c, leafNodes[i]!));
    return { dir, etcd, root, leaves, rootClient, leafClients, kubelets, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** A Cluster CR with the leaf's kubeconfig inline (upstream's field). */
export function clusterObject(
  name: string,
  leaf: ControlPlane,
  tree: Record<string, unknown> = { enable: true },
): unknown {
  return {
    apiVersion: "kosmos.io/v1alpha1",
    kind: "Cluster",
    metadata: { name },
    spec: {
      kubeconfig: Buffer.from(leaf.kubeconfig()).toString("base64"),
      clusterLinkOptions: { enable: false },
      clusterTreeOptions: tree,
    },
  };
}

/**
 * A tiny HTTPS kubelet for one leaf node (the stand-in runs none): a certificate of the leaf's CA
 * (which the leaf API server verifies), answers every request with `hello from <node> <url>`,
 * accepts an exec upgrade, and records the URLs it saw. The node's status is pointed at it.
 */
export async function startRecordingLeafKubelet(
  leafCp: ControlPlane,
  leaf: KubeClient,
  node = "l1-b",
): Promise<{ server: Server; saw: string[] }> {
  const kc = await issueCert(leafCp.ca, leafCp.dir, {
    name: `${node.replace(/[^a-z0-9]/g, "")}-kubelet`,
    cn: node,
    usage: "server",
    hosts: ["127.0.0.1"],
  });
  const saw: string[] = [];
  const server = createServer({
    cert: await Bun.file(kc.certPath).text(),
    key: await Bun.file(kc.keyPath).text(),
  });
  server.on("request", (req, res) => {
    saw.push(req.url ?? "");
    res.writeHead(200, { "Content-Type": "text/plain" }).end(`hello from ${node} ${req.url}\n`);
  });
  server.on("upgrade", (req, socket) => {
    saw.push(req.url ?? "");
    socket.end(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
    );
  });
  const port = await new Promise<number>((r) =>
    server.listen(0, "127.0.0.1", () => r((server.address() as { port: number }).port)),
  );
  await leaf.patch(
    `/api/v1/nodes/${node}/status`,
    {
      status: {
        addresses: [{ type: "InternalIP", address: "127.0.0.1" }],
        daemonEndpoints: { kubeletEndpoint: { Port: port } },
      },
    },
    "merge",
  );
  return { server, saw };
}

/**
 * `cmd/kosmos-clustertree.ts` as its own process against the lab's root (no leader election, logs at
 * warn, dropped unless $CT_BENCH_LOG is set), with its HTTP endpoints (`/status`, `/metrics`) on a free loopback port.
 */
export async function spawnClusterTree(
  lab: TreeLab,
  extraArgs: string[] = [],
): Promise<{ proc: ReturnType<typeof Bun.spawn>; listen: string }> {
  const kcFile = join(lab.dir, "root.kubeconfig");
  await Bun.write(kcFile, lab.root.kubeconfig());
  const listen = `127.0.0.1:${await freePort()}`;
  const proc = Bun.spawn(
    [
      process.execPath,
      join(import.meta.dir, "../../cmd/kosmos-clustertree.ts"),
      "--kubeconfig",
      kcFile,
      "--no-leader-elect",
      "--listen",
      listen,
      ...extraArgs,
    ],
    {
      stdout: "ignore",
      // CT_BENCH_LOG=1: its log (warn and up) on this process's stderr
      stderr: process.env.CT_BENCH_LOG ? "inherit" : "ignore",
      env: { ...process.env, KOSMOS_LOG_LEVEL: "warn" },
    },
  );
  return { proc, listen };
}
