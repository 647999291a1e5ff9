import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type V1Node,
  Watch,
} from "@kubernetes/client-node";
import {
  errorCode,
  type FakeApiServer,
  kubeConfigFromYaml,
  loadKosmosCrds,
  startFakeApiServer,
} from "../../internal/kube/index.ts";

let api: FakeApiServer;
beforeAll(async () => {
  api = await startFakeApiServer({ crds: loadKosmosCrds(), historyLimit: 50, serviceCIDR: "10.96.0.0/12" });
});
afterAll(async () => {
  await api.stop();
});

const kc = () => kubeConfigFromYaml(api.kubeconfig());
const node = (name: string, labels: Record<string, string> = {}): V1Node => ({
  metadata: { name, labels },
  spec: { podCIDRs: ["10.244.1.0/24"] },
});

async function until<T>(f: () => T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    await Bun.sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("fake apiserver with the real client-node", () => {
  test("CRUD, resourceVersion and 409 conflicts", async () => {
    const core = kc().makeApiClient(CoreV1Api);
    const created = await core.createNode({ body: node("n1", { role: "a" }) });
    expect(created.metadata?.uid).toBeString();
    const rv = created.metadata!.resourceVersion!;
    await expect(core.createNode({ body: node("n1") })).rejects.toMatchObject({ code: 409 });
    const updated = await core.replaceNode({
      name: "n1",
      body: { ...created, metadata: { ...created.metadata, labels: { role: "b" } } },
    });
    expect(Number(updated.metadata!.resourceVersion)).toBeGreaterThan(Number(rv));
    // stale resourceVersion → 409 Conflict
    const err = await core
      .replaceNode({
        name: "n1",
        body: { ...created, metadata: { ...created.metadata, labels: { role: "c" } } },
      })
      .catch((e: unknown) => e);
    expect(errorCode(err)).toBe(409);
    expect(String((err as { body?: string }).body)).toContain('"reason":"Conflict"');
    await expect(core.readNode({ name: "nope" })).rejects.toMatchObject({ code: 404 });
    await core.deleteNode({ name: "n1" });
    await expect(core.readNode({ name: "n1" })).rejects.toMatchObject({ code: 404 });
  });

  test("label selectors: =, !=, in, notin, exists, !exists", async () => {
    const core = kc().makeApiClient(CoreV1Api);
    await core.createNode({ body: node("s1", { zone: "a", gw: "true" }) });
    await core.createNode({ body: node("s2", { zone: "b" }) });
    await core.createNode({ body: node("s3", { zone: "c" }) });
    const names = async (labelSelector: string) =>
      (await core.listNode({ labelSelector })).items
        .map((n) => n.metadata!.name)
        .filter((n) => n!.startsWith("s"));
    expect(await names("zone=a")).toEqual(["s1"]);
    expect(await names("zone!=a")).toEqual(["s2", "s3"]);
    expect(await names("zone in (a, c)")).toEqual(["s1", "s3"]);
    expect(await names("zone notin (a,c)")).toEqual(["s2"]);
    expect(await names("gw")).toEqual(["s1"]);
    expect(await names("!gw,zone")).toEqual(["s2", "s3"]);
    for (const n of ["s1", "s2", "s3"]) await core.deleteNode({ name: n });
  });

  test("patches: merge, json, strategic; status subresource", async () => {
    const core = kc().makeApiClient(CoreV1Api);
    await core.createNode({ body: node("p1") });
    const merged = await core.patchNode(
      { name: "p1", body: { metadata: { labels: { x: "1" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect(merged.metadata?.labels).toEqual({ x: "1" });
    const jp = await core.patchNode(
      { name: "p1", body: [{ op: "add", path: "/metadata/labels/y", value: "2" }] },
      setHeaderOptions("Content-Type", PatchStrategy.JsonPatch),
    );
    expect(jp.metadata?.labels).toEqual({ x: "1", y: "2" });
    // status set through the main resource is ignored; through /status it sticks
    const s1 = await core.replaceNode({ name: "p1", body: { ...jp, status: { phase: "Running" } } });
    expect(s1.status).toBeUndefined();
    const s2 = await core.replaceNodeStatus({ name: "p1", body: { ...jp, status: { phase: "Running" } } });
    expect(s2.status?.phase).toBe("Running");
    await core.deleteNode({ name: "p1" });
  });

  test("CRD kinds: defaulting, pruning, validation (422), status subresource", async () => {
    const co = kc().makeApiClient(CustomObjectsApi);
    const created = (await co.createClusterCustomObject({
      group: "kosmos.io",
      version: "v1alpha1",
      plural: "clusters",
      body: {
        apiVersion: "kosmos.io/v1alpha1",
        kind: "Cluster",
        metadata: { name: "c1" },
        spec: { clusterLinkOptions: { networkType: "gateway", bogus: 1 } },
      },
    })) as { spec: { clusterLinkOptions: Record<string, unknown> }; metadata: { generation: number } };
    expect(created.spec.clusterLinkOptions.bridgeCIDRs).toEqual({ ip: "220.0.0.0/8", ip6: "9480::/16" });
    expect(created.spec.clusterLinkOptions.bogus).toBeUndefined();
    expect(created.metadata.generation).toBe(1);
    const bad = await co
      .createClusterCustomObject({
        group: "kosmos.io",
        version: "v1alpha1",
        plural: "clusters",
        body: {
          apiVersion: "kosmos.io/v1alpha1",
          kind: "Cluster",
          metadata: { name: "c2" },
          spec: { clusterLinkOptions: { networkType: "mesh" } },
        },
      })
      .catch((e: unknown) => e);
    expect(errorCode(bad)).toBe(422);
    expect(String((bad as { body?: string }).body)).toContain(
      "spec.clusterLinkOptions.networkType: Unsupported value",
    );
    const st = (await co.patchClusterCustomObjectStatus(
      {
        group: "kosmos.io",
        version: "v1alpha1",
        plural: "clusters",
        name: "c1",
        body: { status: { clusterLinkStatus: { podCIDRs: ["10.244.0.0/16"] } } },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    )) as { status: { clusterLinkStatus: { podCIDRs: string[] } }; metadata: { generation: number } };
    expect(st.status.clusterLinkStatus.podCIDRs).toEqual(["10.244.0.0/16"]);
    expect(st.metadata.generation).toBe(1);
    await co.deleteClusterCustomObject({
      group: "kosmos.io",
      version: "v1alpha1",
      plural: "clusters",
      name: "c1",
    });
  });

  test("Lease in a namespace; namespaced create in a missing namespace is 404", async () => {
    const coord = kc().makeApiClient(CoordinationV1Api);
    const l = await coord.createNamespacedLease({
      namespace: "kube-system",
      body: { metadata: { name: "l1" }, spec: { holderIdentity: "a", leaseDurationSeconds: 15 } },
    });
    expect(l.metadata?.namespace).toBe("kube-system");
    await expect(
      coord.createNamespacedLease({ namespace: "nowhere", body: { metadata: { name: "l1" }, spec: {} } }),
    ).rejects.toMatchObject({ code: 404 });
  });

  test("Service outside the service CIDR is rejected with the apiserver's message", async () => {
    const core = kc().makeApiClient(CoreV1Api);
    const err = await core
      .createNamespacedService({
        namespace: "default",
        body: { metadata: { name: "probe" }, spec: { clusterIP: "0.0.0.1", ports: [{ port: 80 }] } },
      })
      .catch((e: unknown) => e);
    expect(errorCode(err)).toBe(422);
    expect(String((err as { body?: string }).body)).toContain("The range of valid IPs is 10.96.0.0/12");
  });

  test("informer: add/update/delete, bookmarks, 410 Expired → relist", async () => {
    const config = kc();
    const core = config.makeApiClient(CoreV1Api);
    const informer = makeInformer(
      config,
      "/api/v1/nodes",
      () => core.listNode({ labelSelector: "inf=yes" }),
      "inf=yes",
    );
    const seen: string[] = [];
    informer.on("add", (n) => seen.push(`add:${n.metadata?.name}`));
    informer.on("update", (n) => seen.push(`update:${n.metadata?.name}`));
    informer.on("delete", (n) => seen.push(`delete:${n.metadata?.name}`));
    await informer.start();
    try {
      await core.createNode({ body: node("w1", { inf: "yes" }) });
      await core.createNode({ body: node("ignored", { inf: "no" }) });
      await until(() => seen.includes("add:w1"), "add");
      await core.patchNode(
        { name: "w1", body: { metadata: { labels: { extra: "1" } } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
      await until(() => seen.includes("update:w1"), "update");
      // Force history loss while disconnected: the resumed watch gets 410 and the informer relists.
      api.store.compact();
      api.closeWatches();
      await core.createNode({ body: node("w2", { inf: "yes" }) });
      await until(() => seen.includes("add:w2"), "relist after 410");
      await core.deleteNode({ name: "w1" });
      await until(() => seen.includes("delete:w1"), "delete");
      expect(seen).not.toContain("add:ignored");
      expect(informer.list().map((n) => n.metadata?.name)).toEqual(["w2"]);
    } finally {
      await informer.stop();
      await core.deleteNode({ name: "ignored" }).catch(() => undefined);
      await core.deleteNode({ name: "w2" }).catch(() => undefined);
    }
  });

  test("raw Watch: BOOKMARK events and 410 ERROR event for an expired version", async () => {
    const w = new Watch(kc());
    const events: { type: string; rv?: string; code?: number }[] = [];
    let ended = false;
    const req = await w.watch(
      "/api/v1/namespaces",
      { allowWatchBookmarks: true, resourceVersion: String(api.store.resourceVersion()) },
      (type, obj: { metadata?: { resourceVersion?: string }; code?: number }) =>
        events.push({ type, rv: obj.metadata?.resourceVersion, code: obj.code }),
      () => {
        ended = true;
      },
    );
    await until(() => api.watchCount() > 0, "watch open");
    api.bookmark();
    await until(() => events.find((e) => e.type === "BOOKMARK"), "bookmark");
    expect(events[0]!.rv).toBe(String(api.store.resourceVersion()));
    req.abort();
    api.store.compact();
    const errs: { type: string; code?: number }[] = [];
    await w.watch(
      "/api/v1/namespaces",
      { resourceVersion: "1" },
      (type, obj: { code?: number }) => errs.push({ type, code: obj.code }),
      () => {
        ended = true;
      },
    );
    await until(() => errs.length > 0 && ended, "410");
    expect(errs[0]).toEqual({ type: "ERROR", code: 410 });
  });
});
