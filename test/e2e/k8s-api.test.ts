/**
 * The Kubernetes layer against a real kube-apiserver (v1.28.7, envtest assets): the CRDs as
 * `kosmosctl install` applies them keep their defaults and enums (and `kubectl explain` shows them),
 * objects written by upstream Kosmos' tools round-trip, manifests arrive as kubectl would send them
 * (`defaultMode: 0400` is octal), server-side apply after a client-side `kubectl apply` does not
 * conflict, the raw client reports refusals clearly, Lease election hands over, and informers back
 * off exponentially while the API server is down, then re-watch (relisting on 410) when it is back.
 */
import { describe, expect, test } from "bun:test";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { installObjects } from "../../internal/cli/k8s-objects.ts";
import {
  applyObjects,
  Informer,
  KubeApiError,
  KubeClient,
  kubeConfigFromYaml,
  type KubeObject,
  loadKosmosCrds,
  microTime,
  startLeaderElection,
} from "../../internal/kube/index.ts";
import { silentLogger } from "../../internal/observability/index.ts";
import { clientOf, kubeSuite, uniqueName } from "../helpers/k8s.ts";
import { startTcpProxy } from "../helpers/tcp-proxy.ts";
import { until } from "./helpers.ts";

const k8s = kubeSuite();
const T = 60_000;
const CLUSTERS = "/apis/kosmos.io/v1alpha1/clusters";
const CLUSTER_NODES = "/apis/kosmos.io/v1alpha1/clusternodes";
const kubectl = Bun.which("kubectl");

type Obj = KubeObject & { spec?: Record<string, unknown>; status?: Record<string, unknown> };

async function runKubectl(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const file = join(k8s.plane().dir, "kubectl.kubeconfig");
  await writeFile(file, k8s.plane().kubeconfig());
  const p = Bun.spawn([kubectl!, "--kubeconfig", file, ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, out, err };
}

describe.skipIf(k8s.skip)("Kosmos CRDs and objects on a real API server", () => {
  test(
    "install's CRDs keep defaults and enums: bogus values refused, omitted ones defaulted",
    async () => {
      const c = k8s.admin();
      await applyObjects(c, loadKosmosCrds());
      const bad = await c
        .create(CLUSTERS, {
          apiVersion: "kosmos.io/v1alpha1",
          kind: "Cluster",
          metadata: { name: "bogus" },
          spec: { clusterLinkOptions: { networkType: "bogus", ipFamily: "ipv5" } },
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(bad).toBeInstanceOf(KubeApiError);
      expect((bad as KubeApiError).status).toBe(422);
      expect((bad as KubeApiError).message).toContain(
        'spec.clusterLinkOptions.networkType: Unsupported value: "bogus"',
      );
      expect((bad as KubeApiError).message).toContain(
        'spec.clusterLinkOptions.ipFamily: Unsupported value: "ipv5"',
      );
      const name = uniqueName("defaults");
      const made = await c.create<Obj>(CLUSTERS, {
        apiVersion: "kosmos.io/v1alpha1",
        kind: "Cluster",
        metadata: { name },
        spec: { clusterLinkOptions: {}, kubeconfigSecretRef: { name: "s" } },
      });
      expect(made.spec).toEqual({
        namespace: "kosmos-system",
        kubeconfigSecretRef: { name: "s", namespace: "kosmos-system", key: "kubeconfig" },
        clusterLinkOptions: {
          enable: true,
          cni: "calico",
          defaultNICName: "*",
          networkType: "p2p",
          ipFamily: "ipv4",
          useIPPool: false,
          bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
          localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
        },
      });
      const gn = await c.create<Obj>("/apis/kosmos.io/v1alpha1/globalnodes", {
        apiVersion: "kosmos.io/v1alpha1",
        kind: "GlobalNode",
        metadata: { name: uniqueName("gn") },
        spec: { nodeIP: "192.168.0.9" },
      });
      expect(gn.spec?.state).toBe("free");
      await c.delete(`${CLUSTERS}/${name}`);
    },
    T,
  );

  test.skipIf(!kubectl)(
    "kubectl explain shows the schema and its descriptions",
    async () => {
      const r = await runKubectl(["explain", "clusters.spec.clusterLinkOptions.networkType"]);
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expect(r.out).toContain("FIELD: networkType <string>");
      expect(r.out).toContain("p2p: every node tunnels to every remote node");
      const leaf = await runKubectl(["explain", "clusters.spec.clusterTreeOptions.leafModels.nodeSelector"]);
      expect(leaf.out).toContain("labelSelector");
    },
    T,
  );

  test(
    "objects written by upstream's tools round-trip: leafModels, clusterTreeStatus by PUT, roles [Gateway], ClusterNodes without clusterName",
    async () => {
      const c = k8s.admin();
      const name = uniqueName("upstream");
      const leafModels = [
        {
          leafNodeName: "az1",
          labels: { zone: "az1" },
          taints: [{ key: "k", value: "v", effect: "NoSchedule" }],
          nodeSelector: { labelSelector: { matchLabels: { zone: "az1" } } },
        },
        { leafNodeName: "n2", nodeSelector: { nodeName: "node-2" } },
      ];
      const made = await c.create<Obj>(CLUSTERS, {
        apiVersion: "kosmos.io/v1alpha1",
        kind: "Cluster",
        metadata: { name },
        spec: {
          kubeconfig: Buffer.from("apiVersion: v1\nkind: Config\n").toString("base64"),
          clusterTreeOptions: { enable: true, leafModels },
        },
      });
      expect(made.spec?.clusterTreeOptions).toEqual({ enable: true, leafModels });
      // Upstream writes status with a PUT on the object (its CRD has no status subresource).
      const status = {
        clusterTreeStatus: { leafNodeItems: [{ leafNodeName: "az1" }] },
        clusterLinkStatus: { podCIDRs: ["10.0.0.0/16"], serviceCIDRs: [] },
      };
      await c.replace(`${CLUSTERS}/${name}`, { ...made, status });
      expect((await c.get<Obj>(`${CLUSTERS}/${name}`)).status).toEqual(status);
      const cn = uniqueName("cn");
      const node = await c.create<Obj>(CLUSTER_NODES, {
        apiVersion: "kosmos.io/v1alpha1",
        kind: "ClusterNode",
        metadata: { name: cn },
        spec: { ip: "192.168.1.5", roles: ["Gateway"], interfaceName: "eth0" },
      });
      expect(node.spec).toEqual({ ip: "192.168.1.5", roles: ["Gateway"], interfaceName: "eth0" });
      await c.delete(`${CLUSTER_NODES}/${cn}`);
      await c.delete(`${CLUSTERS}/${name}`);
    },
    T,
  );

  test(
    "manifests arrive as kubectl sends them: defaultMode 0400 is octal (256), probe DaemonSet not installed",
    async () => {
      const objs = installObjects();
      expect(objs.map((o) => o.metadata.name)).not.toContain("kosmos-probe");
      await applyObjects(k8s.admin(), objs);
      const ds = await k8s.admin().get<Obj>("/apis/apps/v1/namespaces/kosmos-system/daemonsets/kosmos-agent");
      const vols = (
        ds.spec as { template: { spec: { volumes: { name: string; secret?: { defaultMode: number } }[] } } }
      ).template.spec.volumes;
      expect(vols.find((v) => v.name === "secret")?.secret?.defaultMode).toBe(0o400);
    },
    T,
  );

  test.skipIf(!kubectl)(
    "server-side apply after a client-side kubectl apply: no field conflicts, same objects",
    async () => {
      const file = join(k8s.plane().dir, "controller.yaml");
      const { stringify } = await import("yaml");
      const objs = installObjects().filter((o) => o.kind === "Deployment" || o.kind === "Namespace");
      await k8s.admin().delete("/apis/apps/v1/namespaces/kosmos-system/deployments/kosmos-controller");
      await writeFile(file, objs.map((o) => stringify(o)).join("---\n"));
      const r = await runKubectl(["apply", "-f", file]);
      expect(r.code).toBe(0);
      expect(r.out).toContain("deployment.apps/kosmos-controller created");
      await applyObjects(k8s.admin(), objs, { fieldManager: "kosmosctl-test" });
      const d = await k8s
        .admin()
        .get<Obj>("/apis/apps/v1/namespaces/kosmos-system/deployments/kosmos-controller");
      const env = (
        d.spec as { template: { spec: { containers: { env: { name: string; valueFrom?: unknown }[] }[] } } }
      ).template.spec.containers[0]!.env;
      expect(env.find((e) => e.name === "POD_NAME")?.valueFrom).toEqual({
        fieldRef: { apiVersion: "v1", fieldPath: "metadata.name" },
      });
    },
    T,
  );

  test(
    "the raw client: a bad token is a 401 with a hint; an unreachable server says so",
    async () => {
      const bad = clientOf(k8s.plane(), "not-a-valid-token");
      const e = (await bad.get("/api/v1/namespaces").then(
        () => undefined,
        (x: unknown) => x,
      )) as KubeApiError;
      expect(e.status).toBe(401);
      expect(e.hint).toContain("credentials were refused");
      bad.close();
      const { kubeconfigYaml } = await import("../../internal/controlplane/index.ts");
      const { KubeClient, kubeConfigFromYaml } = await import("../../internal/kube/index.ts");
      const gone = new KubeClient(
        kubeConfigFromYaml(
          kubeconfigYaml({
            name: "x",
            server: "https://127.0.0.1:1",
            caPem: k8s.plane().ca.pem,
            token: "t",
            user: "u",
          }),
        ),
      );
      const u = (await gone.get("/api").then(
        () => undefined,
        (x: unknown) => x,
      )) as KubeApiError;
      expect(u.unreachable).toBe(true);
      expect(u.status).toBe(0);
      expect(u.hint).toContain("API server running");
    },
    T,
  );
});

describe.skipIf(k8s.skip)("Lease election on a real API server", () => {
  test(
    "MicroTime is accepted; one of two candidates leads, the other takes over when it releases or stops renewing",
    async () => {
      expect(microTime(new Date("2026-12-02T09:54:23.362Z"))).toBe("2026-12-02T09:54:23.362000Z");
      const c = k8s.admin();
      await c
        .create("/api/v1/namespaces", {
          apiVersion: "v1",
          kind: "Namespace",
          metadata: { name: "lease-test" },
        })
        .catch(() => undefined);
      const lease = uniqueName("lease");
      const events: string[] = [];
      const elector = (id: string) =>
        startLeaderElection({
          client: c,
          namespace: "lease-test",
          name: lease,
          identity: id,
          leaseDurationSeconds: 2,
          renewDeadlineMs: 1500,
          retryPeriodMs: 300,
          logger: silentLogger(),
          onStartedLeading: () => events.push(`${id} leads`),
          onStoppedLeading: () => events.push(`${id} stops`),
        });
      const a = elector("a");
      await until("a leads", 10_000, async () => a.isLeader());
      const b = elector("b");
      // b sees a live holder, and says who it is (proof that b read the Lease, not that time passed).
      await until("b sees a", 10_000, async () => b.holder() === "a");
      expect(b.isLeader()).toBe(false);
      expect(a.healthy() && b.healthy()).toBe(true);
      const held = await c.get<Obj>(`/apis/coordination.k8s.io/v1/namespaces/lease-test/leases/${lease}`);
      expect((held.spec as { renewTime: string }).renewTime).toMatch(/\.\d{6}Z$/);
      await a.stop(); // releases the Lease
      await until("b takes over", 10_000, async () => b.isLeader());
      expect(events).toEqual(["a leads", "a stops", "b leads"]);
      await b.stop();
    },
    T,
  );
});

describe.skipIf(k8s.skip)("informers against a stopped and restarted API server", () => {
  test("exponential backoff while it is down (not a constant 200 ms), then re-watch and see the changes", async () => {
    const c = k8s.admin();
    const ns = uniqueName("inf");
    await c.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    const path = `/api/v1/namespaces/${ns}/configmaps`;
    const seen = new Set<string>();
    const inf = new Informer<Obj>({ client: c, path, name: "cm", minBackoffMs: 200, maxBackoffMs: 30_000 });
    inf.on("add", (o) => seen.add(o.metadata.name)).start();
    await inf.waitSynced();
    await c.create(path, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "before" } });
    await until("the watch delivers", 10_000, async () => seen.has("before"));
    await k8s.plane().stopApiServer();
    const downAt = Date.now();
    await until("a few failed retries", 20_000, async () => inf.failures >= 5);
    // 200, 400, 800, 1600 ms (±20 %) between the first five tries: ≥ 2.4 s (a constant 200 ms: 0.8 s).
    expect(Date.now() - downAt).toBeGreaterThan(2_000);
    const failuresAt = inf.failures;
    await k8s.plane().restartApiServer();
    await c.create(path, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "after" } });
    await until("the informer is back", 60_000, async () => seen.has("after"));
    expect(failuresAt).toBeLessThan(8);
    expect(
      inf
        .list()
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(["after", "before"]);
    await inf.stop();
  }, 120_000);

  test("a watch whose connection goes silent (no FIN, no RST) is abandoned after idleTimeoutMs and resumed", async () => {
    const admin = k8s.admin();
    const ns = uniqueName("silent");
    await admin.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    const path = `/api/v1/namespaces/${ns}/configmaps`;
    const proxy = await startTcpProxy({ host: "127.0.0.1", port: k8s.plane().port });
    const c = new KubeClient(
      kubeConfigFromYaml(k8s.plane().kubeconfig({ server: `https://127.0.0.1:${proxy.port}` })),
    );
    const seen = new Set<string>();
    const inf = new Informer<Obj>({ client: c, path, name: "cm", minBackoffMs: 100, idleTimeoutMs: 2_000 });
    try {
      inf.on("add", (o) => seen.add(o.metadata.name)).start();
      await inf.waitSynced();
      await admin.create(path, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "before" } });
      await until("the watch delivers", 10_000, async () => seen.has("before"));
      expect(proxy.blackhole()).toBeGreaterThan(0);
      await admin.create(path, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "after" } });
      // Only a new connection can bring "after": the old one forwards nothing and is never closed.
      await until("the informer resumed on a new connection", 30_000, async () => seen.has("after"));
      expect(inf.stalls).toBeGreaterThan(0);
      expect(inf.health()).toBe("connected");
    } finally {
      await inf.stop();
      c.close();
      await proxy.close();
    }
  }, 60_000);

  test("a quiet resource stays connected across silent resumes; an API server that stops answering is failing", async () => {
    const c = k8s.admin();
    const ns = uniqueName("quiet");
    await c.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    const path = `/api/v1/namespaces/${ns}/configmaps`;
    const seen = new Set<string>();
    const inf = new Informer<Obj>({ client: c, path, name: "cm", minBackoffMs: 100, idleTimeoutMs: 1_000 });
    const plane = k8s.plane();
    try {
      inf.on("add", (o) => seen.add(o.metadata.name)).start();
      await inf.waitSynced();
      // nothing changes in the namespace: the watch is resumed every second, and that is no failure
      await until("two silent resumes", 20_000, async () => inf.stalls >= 2);
      expect(inf.health()).toBe("connected");
      expect(inf.failures).toBe(0);
      plane.freezeApiServer();
      try {
        // the next resume is not accepted (min(idle, 30 s) = 1 s): failing, as readiness must say
        await until("failing while the API server hangs", 20_000, async () => inf.health() === "failing");
        expect(inf.lastError).toContain("not accepted");
      } finally {
        plane.thawApiServer();
      }
      // the watch is accepted again: connected, though the namespace still has nothing to tell
      await until("connected again, no event needed", 30_000, async () => inf.health() === "connected");
      await c.create(path, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "after" } });
      await until("connected again and caught up", 30_000, async () => seen.has("after"));
      expect(inf.health()).toBe("connected");
    } finally {
      await inf.stop();
    }
  }, 90_000);
});
