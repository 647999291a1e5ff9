/**
 * `kosmosctl install / join / unjoin / uninstall / get`, the real CLI against real control planes
 * (API server, controller-manager and scheduler from the envtest assets; one etcd): a host and a
 * member cluster, each with two Nodes of a kubelet stand-in (test/helpers/kubelet-standin.ts) so the
 * real scheduler binds the pods and the real controller-manager computes the rollout. Everything is
 * idempotent, refusals are clear, and uninstall leaves nothing behind — members included.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  assetsProblem,
  ControlPlane,
  type Etcd,
  findAssets,
  startEtcd,
} from "../../internal/controlplane/index.ts";
import { type KubeClient, type KubeObject, kubeClient } from "../../internal/kube/index.ts";
import { startKubeletStandIn, type KubeletStandIn } from "../helpers/kubelet-standin.ts";
import { until } from "../helpers/wait.ts";

const problem = assetsProblem();
if (problem) console.warn(`SKIPPED: kosmosctl against real control planes: ${problem}`);
const REPO = resolve(import.meta.dir, "../..");
const NS = "/api/v1/namespaces/kosmos-system";
const T = 90_000;

let dir = "";
let etcd: Etcd | undefined;
const planes: ControlPlane[] = [];
const standIns: KubeletStandIn[] = [];
const files: Record<"host" | "member" | "bare", string> = { host: "", member: "", bare: "" };
const clients: Record<"host" | "member", KubeClient | undefined> = { host: undefined, member: undefined };
const host = (): KubeClient => clients.host!;
const member = (): KubeClient => clients.member!;

beforeAll(async () => {
  if (problem) return;
  dir = await mkdtemp(join(tmpdir(), "kosmos-install-"));
  const assets = findAssets();
  etcd = await startEtcd(assets, join(dir, "etcd"));
  const start = (name: string, components: ("controller-manager" | "scheduler")[]) =>
    ControlPlane.start({
      name: `ki${process.pid.toString(36)}${name}`,
      etcd,
      assets,
      dir: join(dir, name),
      components,
    });
  const made = await Promise.all([
    start("host", ["controller-manager", "scheduler"]),
    start("member", ["controller-manager", "scheduler"]),
    start("bare", []),
  ]);
  planes.push(...made);
  for (const [i, k] of (["host", "member", "bare"] as const).entries()) {
    files[k] = join(dir, `${k}.kubeconfig`);
    await writeFile(files[k], made[i]!.kubeconfig());
  }
  clients.host = kubeClient({ file: files.host });
  clients.member = kubeClient({ file: files.member });
  standIns.push(
    await startKubeletStandIn(host(), [
      { name: "h1", ip: "192.168.10.1" },
      { name: "h2", ip: "192.168.10.2" },
    ]),
    await startKubeletStandIn(member(), [
      { name: "m1", ip: "192.168.20.1" },
      { name: "m2", ip: "192.168.20.2" },
    ]),
  );
}, T);

afterAll(async () => {
  for (const s of standIns) await s.stop().catch(() => undefined);
  for (const c of Object.values(clients)) c?.close();
  for (const p of planes) await p.stop().catch(() => undefined);
  await etcd?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, T);

async function kosmosctl(args: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const p = Bun.spawn([process.execPath, join(REPO, "cmd/kosmosctl.ts"), ...args], {
    env: { ...process.env, NO_COLOR: "1", KUBECONFIG: "/nonexistent" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { stdout, stderr, exitCode };
}

const exists = (c: KubeClient, path: string): Promise<boolean> =>
  c.get(path).then(
    () => true,
    () => false,
  );
const secretData = async (c: KubeClient, name: string): Promise<Record<string, string>> =>
  (await c.get<KubeObject & { data: Record<string, string> }>(`${NS}/secrets/${name}`)).data;

/** Every object install/join creates, present or not, on one cluster. */
async function kosmosObjects(c: KubeClient): Promise<string[]> {
  const paths = [
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/clusters.kosmos.io",
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/clusternodes.kosmos.io",
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/globalnodes.kosmos.io",
    "/apis/rbac.authorization.k8s.io/v1/clusterroles/kosmos-controller",
    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kosmos-controller",
    NS,
  ];
  const out: string[] = [];
  for (const p of paths) if (await exists(c, p)) out.push(p.split("/").slice(-2).join("/"));
  return out;
}

const joinArgs = (extra: string[] = []) => [
  "join",
  "cluster",
  "--name",
  "m1",
  "--kubeconfig",
  files.member,
  "--host-kubeconfig",
  files.host,
  "--timeout",
  "60",
  ...extra,
];

describe.skipIf(problem !== undefined)("kosmosctl on real control planes", () => {
  test(
    "join before install: a clear error, nothing created on the member",
    async () => {
      const r = await kosmosctl(joinArgs());
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain("error: Secret kosmos-system/kosmos-token not found on the host cluster");
      expect(r.stderr).toContain("hint: run `kosmosctl install` there first");
      expect(await kosmosObjects(member())).toEqual([]);
    },
    T,
  );

  test(
    "install rolls out (controller 2/2 available, agents on both nodes); re-install keeps the secrets",
    async () => {
      const installHost = [
        "install",
        "--kubeconfig",
        files.host,
        "--cluster-name",
        "hostc",
        "--timeout",
        "60",
      ];
      const r = await kosmosctl(installHost);
      expect(r.stderr).not.toContain("error");
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain("secrets: created kosmos-token, kosmos-secret.");
      expect(r.stdout).toContain("Kosmos installed.");
      expect(r.stderr).toContain("kosmos-controller 2/2, kosmos-agent 2/2");
      const token = await secretData(host(), "kosmos-token");
      const again = await kosmosctl(installHost);
      expect(again.exitCode).toBe(0);
      expect(again.stdout).toContain("kept existing kosmos-token, kosmos-secret");
      expect(await secretData(host(), "kosmos-token")).toEqual(token);
      expect(await exists(host(), "/apis/apps/v1/namespaces/kosmos-system/daemonsets/kosmos-probe")).toBe(
        false,
      );
    },
    T,
  );

  test(
    "bad flags are refused before anything is written",
    async () => {
      const r = await kosmosctl(joinArgs(["--network-type", "bogus"]));
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain('--network-type must be one of p2p, gateway (got "bogus")');
      expect(await exists(host(), "/apis/kosmos.io/v1alpha1/clusters/m1")).toBe(false);
    },
    T,
  );

  test(
    "join installs the agents with the host's secrets and waits for them; the Cluster gets its defaults",
    async () => {
      const r = await kosmosctl(joinArgs(["--network-type", "gateway"]));
      expect(r.stderr).not.toContain("error");
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain("cluster m1 joined");
      expect(r.stderr).toContain("kosmos-agent 2/2");
      expect(await secretData(member(), "kosmos-token")).toEqual(await secretData(host(), "kosmos-token"));
      expect(await secretData(member(), "kosmos-secret")).toEqual(await secretData(host(), "kosmos-secret"));
      const c = await host().get<KubeObject & { spec: { clusterLinkOptions: Record<string, unknown> } }>(
        "/apis/kosmos.io/v1alpha1/clusters/m1",
      );
      expect(c.spec.clusterLinkOptions).toMatchObject({
        networkType: "gateway",
        ipFamily: "ipv4",
        cni: "calico",
        enable: true,
      });
      const get = await kosmosctl(["get", "clusters", "--kubeconfig", files.host, "-o", "json"]);
      expect((JSON.parse(get.stdout) as { items: KubeObject[] }).items.map((i) => i.metadata.name)).toEqual([
        "m1",
      ]);
      expect(
        await exists(member(), "/apis/apps/v1/namespaces/kosmos-system/deployments/kosmos-controller"),
      ).toBe(false);
    },
    T,
  );

  test(
    "unjoin without a controller running removes the member's agents, Cluster, Secret and ClusterNodes",
    async () => {
      // What a controller made earlier, before it was stopped.
      await host().create("/apis/kosmos.io/v1alpha1/clusternodes", {
        apiVersion: "kosmos.io/v1alpha1",
        kind: "ClusterNode",
        metadata: { name: "m1-m1", labels: { "kosmos.io/cluster": "m1" } },
        spec: { clusterName: "m1", nodeName: "m1", ip: "192.168.20.1" },
      });
      const r = await kosmosctl(["unjoin", "cluster", "--name", "m1", "--host-kubeconfig", files.host]);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain("cluster m1 unjoined");
      expect(await exists(host(), "/apis/kosmos.io/v1alpha1/clusternodes/m1-m1")).toBe(false);
      expect(await exists(host(), "/apis/kosmos.io/v1alpha1/clusters/m1")).toBe(false);
      expect(await exists(host(), `${NS}/secrets/kosmos-member-m1`)).toBe(false);
      expect(await exists(member(), "/apis/apps/v1/namespaces/kosmos-system/daemonsets/kosmos-agent")).toBe(
        false,
      );
    },
    T,
  );

  test(
    "uninstall with a member joined: the member's agents and secrets go too; install right after works",
    async () => {
      const j = await kosmosctl(joinArgs()); // waits for the member's namespace from the unjoin to go first
      expect(j.exitCode).toBe(0);
      const r = await kosmosctl(["uninstall", "--kubeconfig", files.host, "--timeout", "60"]);
      expect(r.stderr).not.toContain("error");
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toContain("member m1: agents removed");
      expect(await kosmosObjects(host())).toEqual([]);
      expect(await exists(member(), `${NS}/secrets/kosmos-token`)).toBe(false);
      expect(await exists(member(), "/apis/apps/v1/namespaces/kosmos-system/daemonsets/kosmos-agent")).toBe(
        false,
      );
      const again = await kosmosctl(["install", "--kubeconfig", files.host, "--timeout", "60"]);
      expect(again.stderr).not.toContain("error");
      expect(again.exitCode).toBe(0);
    },
    T,
  );

  test(
    "install while the namespace is still being deleted waits for it, then installs",
    async () => {
      await host().delete(NS);
      const r = await kosmosctl(["install", "--kubeconfig", files.host, "--timeout", "60"]);
      expect(r.stderr).toContain(
        "namespace kosmos-system is being deleted (a recent uninstall): waiting for it to go",
      );
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain("Kosmos installed.");
      const u = await kosmosctl(["uninstall", "--kubeconfig", files.host, "--timeout", "60"]);
      expect(u.exitCode).toBe(0);
    },
    T,
  );

  test(
    "nothing rolls out (no controller-manager): install times out with a clear error and a hint",
    async () => {
      const r = await kosmosctl(["install", "--kubeconfig", files.bare, "--timeout", "3"]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(
        "error: timed out after 3s waiting for the rollout: deployment/kosmos-controller 0/2",
      );
      expect(r.stderr).toContain("hint: kubectl -n kosmos-system get pods -o wide");
    },
    T,
  );

  // The stand-in is what the ClusterTree e2e's leaves run on: a write of it that fails (the leaf API
  // server restarting) must be retried, as a kubelet's would be, or the pod stays terminating forever.
  test(
    "the kubelet stand-in finishes a pod's deletion when its first delete fails",
    async () => {
      const base = kubeClient({ file: files.bare });
      let failures = 1;
      const flaky = new Proxy(base, {
        get(target, prop, recv) {
          if (prop === "delete" && failures > 0)
            return () => {
              failures--;
              return Promise.reject(new Error("injected: the API server is restarting"));
            };
          const v = Reflect.get(target, prop, recv) as unknown;
          return typeof v === "function" ? v.bind(target) : v;
        },
      }) as KubeClient;
      const standIn = await startKubeletStandIn(flaky, [{ name: "b1", ip: "192.168.30.1" }]);
      const ns = `standin-${process.pid}`;
      try {
        await base.create("/api/v1/namespaces", {
          apiVersion: "v1",
          kind: "Namespace",
          metadata: { name: ns },
        });
        await base.create(`/api/v1/namespaces/${ns}/serviceaccounts`, {
          apiVersion: "v1",
          kind: "ServiceAccount",
          metadata: { name: "default" },
        });
        const pod = `/api/v1/namespaces/${ns}/pods/p`;
        await base.create(`/api/v1/namespaces/${ns}/pods`, {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "p" },
          spec: {
            nodeName: "b1",
            automountServiceAccountToken: false,
            containers: [{ name: "c", image: "nginx:1.27" }],
          },
        });
        const phase = async () =>
          (await base.get<KubeObject & { status?: { phase?: string } }>(pod)).status?.phase;
        await until(
          async () => (await phase()) === "Running",
          "the pod Running",
          20_000,
          100,
          () => standIn.describe(),
        );
        await base.delete(pod, { gracePeriodSeconds: 30 });
        await until(
          () => exists(base, pod).then((x) => !x),
          "the pod gone",
          20_000,
          100,
          () => standIn.describe(),
        );
        expect(failures).toBe(0);
        expect(standIn.describe()).toMatch(/deleted [1-9]\d* \(failed 1\), retries [1-9]/);
      } finally {
        await standIn.stop();
        await base.delete(`/api/v1/namespaces/${ns}`).catch(() => undefined);
        base.close();
      }
    },
    T,
  );
});
