import { afterEach, describe, expect, test } from "bun:test";
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { type RunningController, startController } from "../../internal/controller/index.ts";
import {
  type FakeApiServer,
  kubeConfigFromYaml,
  loadKosmosCrds,
  startFakeApiServer,
} from "../../internal/kube/index.ts";
import type { Topology } from "../../internal/topology/index.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function until<T>(
  f: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
): Promise<T> {
  for (let i = 0; i < 1000; i++) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    await Bun.sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * A KubeConfig for `yaml` whose Lease reads are recorded once they complete (with the holder they
 * saw). The elector decides on each read before it schedules the next one, so after n reads it has
 * made at least n - 1 decisions.
 */
function recordingLeaseReads(yaml: string): { kc: KubeConfig; holders: Array<string | undefined> } {
  const kc = kubeConfigFromYaml(yaml);
  const holders: Array<string | undefined> = [];
  const make = kc.makeApiClient.bind(kc);
  kc.makeApiClient = ((cls: Parameters<typeof make>[0]) => {
    const api = make(cls);
    if (api instanceof CoordinationV1Api) {
      const read = api.readNamespacedLease.bind(api);
      api.readNamespacedLease = (async (param: Parameters<typeof read>[0]) => {
        const lease = await read(param);
        holders.push(lease.spec?.holderIdentity);
        return lease;
      }) as typeof read;
    }
    return api;
  }) as typeof kc.makeApiClient;
  return { kc, holders };
}

/** A fake agent: records POST /v1/topology bodies with a valid bearer token. */
function fakeAgent(token: string) {
  const got: Topology[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (req) => {
      if (req.headers.get("authorization") !== `Bearer ${token}`) return new Response("no", { status: 401 });
      got.push((await req.json()) as Topology);
      return new Response(null, { status: 204 });
    },
  });
  cleanups.push(() => server.stop(true));
  return { url: `http://127.0.0.1:${server.port}`, got };
}

async function setup() {
  const host = await startFakeApiServer({ crds: loadKosmosCrds() });
  const member = await startFakeApiServer({ serviceCIDR: "10.96.0.0/12" });
  cleanups.push(
    () => host.stop(),
    () => member.stop(),
  );
  const hkc = kubeConfigFromYaml(host.kubeconfig());
  const core = hkc.makeApiClient(CoreV1Api);
  const custom = hkc.makeApiClient(CustomObjectsApi);
  await core.createNamespace({ body: { metadata: { name: "kosmos-system" } } });
  await core.createNamespacedSecret({
    namespace: "kosmos-system",
    body: {
      metadata: { name: "member-a" },
      stringData: {},
      data: { kubeconfig: Buffer.from(member.kubeconfig()).toString("base64") },
    },
  });
  const mcore = kubeConfigFromYaml(member.kubeconfig()).makeApiClient(CoreV1Api);
  for (const [i, n] of ["m1", "m2"].entries()) {
    await mcore.createNode({
      body: {
        metadata: { name: n, labels: i === 0 ? { "kosmos.io/gateway": "true" } : {} },
        spec: { podCIDRs: [`10.244.${i}.0/24`] },
        status: { addresses: [{ type: "InternalIP", address: `192.168.0.${i + 1}` }] },
      },
    });
  }
  await custom.createClusterCustomObject({
    group: "kosmos.io",
    version: "v1alpha1",
    plural: "clusters",
    body: {
      apiVersion: "kosmos.io/v1alpha1",
      kind: "Cluster",
      metadata: { name: "a" },
      spec: {
        kubeconfigSecretRef: { name: "member-a" },
        clusterLinkOptions: { networkType: "gateway", cni: "flannel" },
      },
    },
  });
  return { host, member, custom, mcore };
}

const start = async (
  host: FakeApiServer,
  agentUrl: string,
  extra: Partial<Parameters<typeof startController>[0]> = {},
): Promise<RunningController> => {
  const c = await startController({
    kubeconfig: host.kubeconfig(),
    agents: [{ url: agentUrl, token: "s3cret" }],
    minBackoffMs: 20,
    maxBackoffMs: 100,
    ...extra,
  });
  cleanups.push(() => c.stop());
  return c;
};

describe("kosmos-controller against fake apiservers", () => {
  test("member Nodes → ClusterNodes + Cluster status → topology pushed to the agent", async () => {
    const { host, custom, mcore } = await setup();
    const agent = fakeAgent("s3cret");
    const ctl = await start(host, agent.url);
    const last = () => agent.got[agent.got.length - 1];
    await until(
      () => last()?.nodes.length === 2 && last()!.clusters[0]!.serviceCIDRs.length > 0,
      "topology pushed",
    );
    const t = last()!;
    expect(t.clusters).toMatchObject([
      {
        name: "a",
        networkType: "gateway",
        podCIDRs: ["10.244.0.0/24", "10.244.1.0/24"],
        serviceCIDRs: ["10.96.0.0/12"],
      },
    ]);
    expect(t.nodes.map((n) => [n.name, n.ipv4, n.gatewayCandidate])).toEqual([
      ["a-m1", "192.168.0.1", true],
      ["a-m2", "192.168.0.2", false],
    ]);
    const cl = (await custom.getClusterCustomObject({
      group: "kosmos.io",
      version: "v1alpha1",
      plural: "clusters",
      name: "a",
    })) as { status: { nodeCount: number; conditions: { status: string }[] } };
    expect(cl.status.nodeCount).toBe(2);
    expect(cl.status.conditions[0]!.status).toBe("True");
    // a member node leaves → its ClusterNode goes, and the agent learns it
    await mcore.deleteNode({ name: "m2" });
    await until(() => last()?.nodes.length === 1, "node removal pushed");
    const cns = (await custom.listClusterCustomObject({
      group: "kosmos.io",
      version: "v1alpha1",
      plural: "clusternodes",
    })) as { items: unknown[] };
    expect(cns.items.length).toBe(1);
    expect(ctl.isLeader()).toBe(true);
  });

  test("survives a host API-server restart with history loss (relist), then keeps seeding", async () => {
    const { host } = await setup();
    const agent = fakeAgent("s3cret");
    await start(host, agent.url);
    const last = () => agent.got[agent.got.length - 1];
    await until(() => last()?.nodes.length === 2, "initial push");
    await host.stop();
    host.store.compact(); // resumed watches will get 410 Expired
    await Bun.sleep(150); // let the informers notice and back off at least once
    await host.start();
    const res = await fetch(`${host.url}/apis/kosmos.io/v1alpha1/clusters/a`, {
      method: "PATCH",
      headers: { "content-type": "application/merge-patch+json" },
      body: JSON.stringify({
        spec: { clusterLinkOptions: { globalCIDRsMap: { "10.244.0.0/24": "20.0.0.0/24" } } },
      }),
    });
    expect(res.status).toBe(200);
    await until(
      () => last()?.clusters[0]?.globalCIDRs["10.244.0.0/24"] === "20.0.0.0/24",
      "push after restart",
    );
  });

  test("two replicas: exactly one leader seeds; the other takes over when it stops", async () => {
    const { host } = await setup();
    const agent = fakeAgent("s3cret");
    // 2 s leases: a renews every ~0.7 s, so a loaded machine does not let the lease expire under b.
    const a = await start(host, agent.url, { leaderElection: true, identity: "a", leaseDurationSeconds: 2 });
    await until(() => a.isLeader(), "a leads");
    const { kc, holders } = recordingLeaseReads(host.kubeconfig());
    const b = await start(host, agent.url, {
      kubeconfig: kc,
      leaderElection: true,
      identity: "b",
      leaseDurationSeconds: 2,
    });
    // b has looked at the lease three times (so decided at least twice) and saw a holding it each time.
    await until(() => holders.length >= 3, "b to read the lease three times");
    expect(holders.slice(0, 3)).toEqual(["a", "a", "a"]);
    expect(b.isLeader()).toBe(false);
    expect(a.isLeader()).toBe(true);
    await a.stop();
    await until(() => b.isLeader(), "b takes over");
  });
});
