/**
 * kosmos-controller on real control planes, with exactly the RBAC of manifests/rbac.yaml (a
 * ServiceAccount token, not admin): a host (API server + controller-manager: garbage collection) and a
 * member whose controller-manager runs as a process and allocates the Nodes' pod CIDRs. ClusterNodes
 * follow the member's Nodes and are owned by their Cluster; status carries the CIDRs detected the way
 * a cluster without control-plane pods allows; an unreachable member is reported without losing its
 * ClusterNodes; a Cluster deleted while no controller runs leaves nothing to discover; and two
 * replicas of the real binary hand over the Lease, their /readyz saying whether they can work.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { install, join as joinMember } from "../../internal/cli/k8s-ops.ts";
import {
  assetsProblem,
  ControlPlane,
  type Etcd,
  findAssets,
  freePort,
  startEtcd,
} from "../../internal/controlplane/index.ts";
import {
  type AgentEndpoint,
  type ClusterNodeObject,
  type ClusterObject,
  type RunningController,
  startController,
} from "../../internal/controller/index.ts";
import { KubeApiError, type KubeClient, type KubeObject, kubeClient } from "../../internal/kube/index.ts";
import type { Topology } from "../../internal/topology/index.ts";
import { until } from "./helpers.ts";

const problem = assetsProblem();
if (problem) console.warn(`SKIPPED: kosmos-controller against real control planes: ${problem}`);
const REPO = resolve(import.meta.dir, "../..");
const T = 120_000;
const CN = "/apis/kosmos.io/v1alpha1/clusternodes";
const CLUSTERS = "/apis/kosmos.io/v1alpha1/clusters";

let dir = "";
let etcd: Etcd | undefined;
let hostCp: ControlPlane | undefined;
let memberCp: ControlPlane | undefined;
let admin: KubeClient | undefined;
let member: KubeClient | undefined;
let saKubeconfig = "";
let controller: RunningController | undefined;
const pushed: Topology[] = [];
const pusher = async (_e: AgentEndpoint, t: Topology): Promise<void> => {
  pushed.push(t);
};

async function serviceAccountToken(c: KubeClient): Promise<string> {
  const r = await c.create<KubeObject & { status: { token: string } }>(
    "/api/v1/namespaces/kosmos-system/serviceaccounts/kosmos-controller/token",
    { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 3600 } },
  );
  return r.status.token;
}

async function addNode(name: string, ip: string, labels: Record<string, string> = {}): Promise<void> {
  await member!.create("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name, labels } });
  await member!.patch(
    `/api/v1/nodes/${name}/status`,
    { status: { addresses: [{ type: "InternalIP", address: ip }] } },
    "strategic",
  );
}

const clusterNodes = async (): Promise<ClusterNodeObject[]> =>
  (await admin!.list<ClusterNodeObject & KubeObject>(CN)).items;
const getCluster = (): Promise<ClusterObject> => admin!.get<ClusterObject & KubeObject>(`${CLUSTERS}/m1`);
const ready = (c: ClusterObject) => c.status?.conditions?.find((x) => x.type === "Ready");

beforeAll(async () => {
  if (problem) return;
  dir = await mkdtemp(join(tmpdir(), "kosmos-ctl-"));
  const assets = findAssets();
  etcd = await startEtcd(assets, join(dir, "etcd"));
  const tag = `kc${process.pid.toString(36)}`;
  [hostCp, memberCp] = await Promise.all([
    ControlPlane.start({
      name: `${tag}h`,
      etcd,
      assets,
      dir: join(dir, "host"),
      components: ["controller-manager"],
    }),
    ControlPlane.start({
      name: `${tag}m`,
      etcd,
      assets,
      dir: join(dir, "member"),
      components: ["controller-manager"],
      clusterCIDR: "10.244.0.0/16",
      serviceCIDR: "10.97.0.0/16",
    }),
  ]);
  admin = kubeClient({ yaml: hostCp.kubeconfig() });
  member = kubeClient({ yaml: memberCp.kubeconfig() });
  await install(admin, { clusterName: "hostc", timeoutMs: 30_000 });
  saKubeconfig = hostCp.kubeconfig({ token: await serviceAccountToken(admin), user: "kosmos-controller" });
  await addNode("n1", "192.168.30.1", { "kosmos.io/gateway": "true" });
  await addNode("n2", "192.168.30.2");
  await joinMember(admin, member, {
    name: "m1",
    memberKubeconfig: memberCp.kubeconfig(),
    networkType: "gateway",
    ipFamily: "ipv4",
    timeoutMs: 30_000,
  });
}, T);

afterAll(async () => {
  await controller?.stop().catch(() => undefined);
  admin?.close();
  member?.close();
  await hostCp?.stop().catch(() => undefined);
  await memberCp?.stop().catch(() => undefined);
  await etcd?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, T);

describe.skipIf(problem !== undefined)("kosmos-controller with the RBAC of manifests/rbac.yaml", () => {
  test(
    "the ServiceAccount token is not admin: other namespaces' Secrets are refused",
    async () => {
      const sa = kubeClient({ yaml: saKubeconfig });
      const e = (await sa.list("/api/v1/namespaces/default/secrets").then(
        () => undefined,
        (x: unknown) => x,
      )) as KubeApiError;
      expect(e).toBeInstanceOf(KubeApiError);
      expect(e.status).toBe(403);
      sa.close();
    },
    T,
  );

  test(
    "member Nodes → ClusterNodes owned by the Cluster; status with CIDRs detected on a process control plane; topology seeded",
    async () => {
      controller = await startController({
        kubeconfig: saKubeconfig,
        agents: [{ url: "http://seed.test", token: "t" }],
        pusher,
        minBackoffMs: 100,
        maxBackoffMs: 2000,
      });
      const nodes = await until("two ClusterNodes", 30_000, async () => {
        const l = await clusterNodes();
        return l.length === 2 ? l : undefined;
      });
      const c = await until("Cluster Ready", 30_000, async () => {
        const x = await getCluster();
        return ready(x)?.status === "True" && x.status?.clusterLinkStatus?.podCIDRs?.length === 2
          ? x
          : undefined;
      });
      expect(nodes.map((n) => n.metadata.name).sort()).toEqual(["m1-n1", "m1-n2"]);
      for (const n of nodes)
        expect(n.metadata.ownerReferences).toEqual([
          {
            apiVersion: "kosmos.io/v1alpha1",
            kind: "Cluster",
            name: "m1",
            uid: c.metadata.uid!,
            controller: true,
          },
        ]);
      expect(nodes.find((n) => n.metadata.name === "m1-n1")?.spec?.roles).toEqual(["gateway"]);
      // Pod CIDRs: allocated to the Nodes by the member's controller-manager (a process: no flags to read).
      const allocated = await Promise.all(
        ["n1", "n2"].map(
          async (n) =>
            (await member!.get<KubeObject & { spec: { podCIDR: string } }>(`/api/v1/nodes/${n}`)).spec
              .podCIDR,
        ),
      );
      expect(c.status?.clusterLinkStatus?.podCIDRs?.slice().sort()).toEqual(allocated.sort());
      for (const p of allocated) expect(p).toMatch(/^10\.244\.\d+\.0\/24$/);
      // Service CIDR: from the Service API's refusal of an out-of-range clusterIP (dry run).
      expect(c.status?.clusterLinkStatus?.serviceCIDRs).toEqual(["10.97.0.0/16"]);
      expect(c.status?.nodeCount).toBe(2);
      const t = await until("a topology with both nodes seeded", 20_000, async () =>
        pushed.findLast((p) => p.nodes.length === 2),
      );
      expect(t.clusters.map((x) => x.name)).toEqual(["m1"]);
    },
    T,
  );

  test(
    "a member Node added and removed is followed",
    async () => {
      await addNode("n3", "192.168.30.3");
      await until("m1-n3 created", 20_000, async () =>
        (await clusterNodes()).some((n) => n.metadata.name === "m1-n3"),
      );
      await member!.delete("/api/v1/nodes/n3");
      await until(
        "m1-n3 deleted",
        20_000,
        async () => !(await clusterNodes()).some((n) => n.metadata.name === "m1-n3"),
      );
    },
    T,
  );

  test(
    "the member's API server down: Ready=False MemberUnreachable, ClusterNodes kept; back: Ready again",
    async () => {
      await memberCp!.stopApiServer();
      const down = await until("MemberUnreachable", 30_000, async () => {
        const x = await getCluster();
        return ready(x)?.reason === "MemberUnreachable" ? x : undefined;
      });
      expect(ready(down)?.status).toBe("False");
      expect(ready(down)?.message).toContain("cannot list the member's Nodes");
      expect((await clusterNodes()).length).toBe(2);
      await memberCp!.restartApiServer();
      await until("Ready again", 60_000, async () => ready(await getCluster())?.status === "True");
      expect((await clusterNodes()).length).toBe(2);
    },
    T,
  );

  test(
    "the Cluster deleted while no controller runs: the garbage collector removes its ClusterNodes; a restarted controller seeds nothing of it",
    async () => {
      await controller!.stop();
      controller = undefined;
      await admin!.delete(`${CLUSTERS}/m1`);
      await until("ClusterNodes garbage-collected", 60_000, async () => (await clusterNodes()).length === 0);
      pushed.length = 0;
      controller = await startController({
        kubeconfig: saKubeconfig,
        agents: [],
        discovery: { token: "t", scheme: "http" },
        pusher,
        minBackoffMs: 100,
        maxBackoffMs: 2000,
      });
      await until("ready", 30_000, async () => controller!.ready().ready && controller!.isLeader());
      await controller.idle();
      expect(controller.seeder.status().agents).toEqual([]);
      expect(pushed).toEqual([]);
      await controller.stop();
      controller = undefined;
    },
    T,
  );
});

interface Replica {
  proc: ReturnType<typeof Bun.spawn>;
  port: number;
}

async function startReplica(kubeconfigFile: string, id: string): Promise<Replica> {
  const port = await freePort();
  const proc = Bun.spawn(
    [
      process.execPath,
      join(REPO, "cmd/kosmos-controller.ts"),
      "--kubeconfig",
      kubeconfigFile,
      "--listen",
      `127.0.0.1:${port}`,
      "--agent",
      "http://127.0.0.1:1",
    ],
    {
      env: { ...process.env, HOSTNAME: id, KOSMOS_TOKEN: "0123456789abcdef0123456789abcdef" },
      stdout: "ignore",
      stderr: "ignore",
    },
  );
  return { proc, port };
}

const status = async (
  r: Replica,
): Promise<{ leader: boolean; ready: { ready: boolean; reason: string } } | undefined> =>
  fetch(`http://127.0.0.1:${r.port}/status`).then(
    (x) => x.json() as never,
    () => undefined,
  );
const readyz = async (r: Replica): Promise<{ code: number; text: string }> =>
  fetch(`http://127.0.0.1:${r.port}/readyz`).then(
    async (x) => ({ code: x.status, text: await x.text() }),
    () => ({ code: 0, text: "" }),
  );

describe.skipIf(problem !== undefined)(
  "two replicas of the kosmos-controller binary (Lease, /readyz)",
  () => {
    test("one leads, both ready; the leader killed: the other takes over; API server down: /readyz 503 with the reason", async () => {
      const file = join(dir, "sa.kubeconfig");
      await writeFile(file, saKubeconfig);
      const a = await startReplica(file, "replica-a");
      const b = await startReplica(file, "replica-b");
      try {
        const [sa, sb] = await until("one leader, two ready", 60_000, async () => {
          const s = [await status(a), await status(b)];
          const standbyKnowsLeader = s.some((x) => x?.ready.reason.startsWith("standby (leader: replica-"));
          return s.every((x) => x?.ready.ready) &&
            s.filter((x) => x?.leader).length === 1 &&
            standbyKnowsLeader
            ? s
            : undefined;
        });
        expect((await readyz(a)).code).toBe(200);
        const [leader, standby] = sa!.leader ? [a, b] : [b, a];
        expect((sa!.leader ? sb : sa)!.ready.reason).toContain(
          `standby (leader: replica-${sa!.leader ? "a" : "b"}-`,
        );
        leader.proc.kill("SIGKILL"); // no release: the standby waits for the Lease (15 s) to expire
        await leader.proc.exited;
        const killedAt = Date.now();
        await until("the standby leads", 40_000, async () => (await status(standby))?.leader === true);
        expect(Date.now() - killedAt).toBeLessThan(30_000);
        await hostCp!.stopApiServer();
        const r = await until("503", 40_000, async () => {
          const x = await readyz(standby);
          return x.code === 503 ? x : undefined;
        });
        // Whichever of its informers (clusters, clusternodes, …) or the Lease notices the outage first.
        expect(r.text).toMatch(/^not ready: (the Lease cannot be read or written|cannot watch [a-z]+: )/);
        await hostCp!.restartApiServer();
        await until("ready again", 60_000, async () => (await readyz(standby)).code === 200);
      } finally {
        a.proc.kill("SIGKILL");
        b.proc.kill("SIGKILL");
        await Promise.all([a.proc.exited, b.proc.exited]);
      }
    }, 180_000);
  },
);
