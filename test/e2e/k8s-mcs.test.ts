/**
 * The MCS controller (internal/mcs) against three real control planes: c1 (also the host holding the
 * Cluster objects, its pod CIDR mapped to a global CIDR), c2 and c3. Services exported from c1 and c2
 * become one ServiceImport in every cluster with one ClusterSetIP, EndpointSlices whose addresses reach
 * the pods from there (c1's translated to its global CIDR elsewhere), kept in step by watch; conflicts
 * and missing Services are reported as conditions; auto-export never deletes a hand-made export when
 * a Cluster joins (upstream's bug); the ClusterSetIP survives a controller restart.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  assetsProblem,
  ControlPlane,
  type Etcd,
  findAssets,
  startEtcd,
} from "../../internal/controlplane/index.ts";
import { applyObjects, type KubeClient, kubeClient, loadKosmosCrds } from "../../internal/kube/index.ts";
import {
  type EndpointSliceObject,
  LABEL_AUTO_CREATED,
  LABEL_MANAGED,
  LABEL_SERVICE_NAME,
  LABEL_SOURCE_CLUSTER,
  mcsCrds,
  type RunningMcs,
  SERVICE_EXPORTS,
  SERVICE_IMPORTS,
  type ServiceExportObject,
  type ServiceImportObject,
  startMcs,
} from "../../internal/mcs/index.ts";
import { ApplyError, applyOps } from "../../internal/mcs/apply.ts";
import { silentLogger } from "../../internal/observability/index.ts";
import { uniqueName } from "../helpers/k8s.ts";
import { until } from "./helpers.ts";

const problem = assetsProblem();
if (problem) console.warn(`SKIPPED: MCS controller against real control planes: ${problem}`);
const T = 120_000;
const W = 30_000;
const CLUSTERS = "/apis/kosmos.io/v1alpha1/clusters";

let dir = "";
let etcd: Etcd | undefined;
const planes: ControlPlane[] = [];
const c: Record<string, KubeClient> = {};
let mcs: RunningMcs | undefined;
const ns = uniqueName("demo");

const nsPath = (kind: string, n = ns): string => kind.replace(/\/([a-z]+)$/, `/namespaces/${n}/$1`);

async function addCluster(name: string, globalCIDRsMap?: Record<string, string>): Promise<void> {
  const i = ["c1", "c2", "c3"].indexOf(name);
  await c.c1!.create(CLUSTERS, {
    apiVersion: "kosmos.io/v1alpha1",
    kind: "Cluster",
    metadata: { name },
    spec: {
      kubeconfig: Buffer.from(planes[i]!.kubeconfig()).toString("base64"),
      clusterLinkOptions: { networkType: "p2p", ...(globalCIDRsMap ? { globalCIDRsMap } : {}) },
    },
  });
}

async function service(
  cl: string,
  name: string,
  ports: { name?: string; port: number; protocol?: string }[],
  extra: Record<string, unknown> = {},
): Promise<void> {
  await c[cl]!.create(nsPath("/api/v1/services"), {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, ...extra },
    spec: { ports },
  });
}

async function slice(cl: string, svc: string, name: string, addrs: string[]): Promise<void> {
  await c[cl]!.create(nsPath("/apis/discovery.k8s.io/v1/endpointslices"), {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name,
      labels: { "kubernetes.io/service-name": svc, "endpointslice.kubernetes.io/managed-by": "test" },
    },
    addressType: "IPv4",
    endpoints: addrs.map((a) => ({ addresses: [a], conditions: { ready: true }, nodeName: "n1" })),
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  });
}

const exportIt = (cl: string, name: string): Promise<unknown> =>
  c[cl]!.create(nsPath(SERVICE_EXPORTS), {
    apiVersion: "multicluster.x-k8s.io/v1alpha1",
    kind: "ServiceExport",
    metadata: { name },
  });
const getImport = (cl: string, name: string): Promise<ServiceImportObject> =>
  c[cl]!.get<ServiceImportObject>(`${nsPath(SERVICE_IMPORTS)}/${name}`);
const getExport = (cl: string, name: string): Promise<ServiceExportObject> =>
  c[cl]!.get<ServiceExportObject>(`${nsPath(SERVICE_EXPORTS)}/${name}`);
const importedSlices = async (cl: string, name: string): Promise<EndpointSliceObject[]> =>
  (
    await c[cl]!.list<EndpointSliceObject>(nsPath("/apis/discovery.k8s.io/v1/endpointslices"), {
      labelSelector: `${LABEL_SERVICE_NAME}=${name}`,
    })
  ).items;
const addressesBySource = async (cl: string, name: string): Promise<Record<string, string[]>> => {
  const out: Record<string, string[]> = {};
  for (const s of await importedSlices(cl, name)) {
    const src = s.metadata.labels![LABEL_SOURCE_CLUSTER]!;
    out[src] = [...(out[src] ?? []), ...(s.endpoints ?? []).flatMap((e) => e.addresses)].sort();
  }
  return out;
};
const cond = (e: ServiceExportObject, type: string) => e.status?.conditions?.find((x) => x.type === type);
const start = (): Promise<RunningMcs> =>
  startMcs({
    kubeconfig: planes[0]!.kubeconfig(),
    clustersetCIDR: "241.0.0.0/24",
    autoPrefixes: ["auto-"],
    minBackoffMs: 100,
    maxBackoffMs: 2000,
  });

beforeAll(async () => {
  if (problem) return;
  dir = await mkdtemp(join(tmpdir(), "kosmos-mcs-"));
  const assets = findAssets();
  etcd = await startEtcd(assets, join(dir, "etcd"));
  const tag = `mcs${process.pid.toString(36)}`;
  planes.push(
    ...(await Promise.all(
      ["c1", "c2", "c3"].map((n) =>
        ControlPlane.start({ name: `${tag}${n}`, etcd, assets, dir: join(dir, n) }),
      ),
    )),
  );
  ["c1", "c2", "c3"].forEach((n, i) => {
    c[n] = kubeClient({ yaml: planes[i]!.kubeconfig() });
  });
  await applyObjects(
    c.c1!,
    loadKosmosCrds().filter((o) => o.metadata.name.endsWith("kosmos.io")),
  );
  for (const n of ["c1", "c2"]) {
    await applyObjects(c[n]!, mcsCrds());
    await c[n]!.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
  }
  await addCluster("c1", { "10.244.0.0/16": "242.1.0.0/16" });
  await addCluster("c2");
  mcs = await start();
}, T);

afterAll(async () => {
  await mcs?.stop().catch(() => undefined);
  for (const k of Object.values(c)) k.close();
  for (const p of planes) await p.stop().catch(() => undefined);
  await etcd?.stop().catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
}, T);

describe.skipIf(problem !== undefined)("MCS controller on three real control planes", () => {
  let vip = "";

  test(
    "exported from c1 and c2: one import per cluster, one ClusterSetIP, reachable addresses",
    async () => {
      await service("c1", "echo", [{ name: "http", port: 80 }]);
      await service("c2", "echo", [{ name: "http", port: 80 }]);
      await slice("c1", "echo", "echo-c1", ["10.244.1.5", "10.244.1.6"]);
      await slice("c2", "echo", "echo-c2", ["10.245.2.7"]);
      await exportIt("c1", "echo");
      await exportIt("c2", "echo");
      const si = await until("ServiceImport in c1", W, async () => {
        const i = await getImport("c1", "echo");
        return i.status?.clusters?.length === 2 ? i : undefined;
      });
      expect(si.spec).toMatchObject({
        type: "ClusterSetIP",
        ports: [{ name: "http", port: 80, protocol: "TCP" }],
      });
      vip = si.spec!.ips![0]!;
      expect(vip).toMatch(/^241\.0\.0\.\d+$/);
      // c2's import is written by the same reconcile, but after c1's: wait for it rather than race it.
      const si2 = await until("ServiceImport in c2", W, async () => {
        const i = await getImport("c2", "echo").catch(() => undefined);
        return i?.status?.clusters?.length === 2 ? i : undefined;
      });
      expect(si2.spec!.ips).toEqual([vip]);
      await until("imported slices in c2", W, async () => {
        const a = await addressesBySource("c2", "echo");
        // c1's pods are reached by their global IPs from c2; c2's own stay as they are.
        return JSON.stringify(a) === JSON.stringify({ c1: ["242.1.1.5", "242.1.1.6"], c2: ["10.245.2.7"] });
      });
      expect(await addressesBySource("c1", "echo")).toEqual({
        c1: ["10.244.1.5", "10.244.1.6"],
        c2: ["10.245.2.7"],
      });
      const e = await until("export conditions", W, async () => {
        const x = await getExport("c2", "echo");
        return cond(x, "Conflict") ? x : undefined;
      });
      expect(cond(e, "Valid")).toMatchObject({ status: "True", reason: "ServiceExported" });
      expect(cond(e, "Conflict")).toMatchObject({ status: "False" });
    },
    T,
  );

  test(
    "an endpoint change in c2 reaches c1's imported slice by watch",
    async () => {
      await c.c2!.patch(
        `${nsPath("/apis/discovery.k8s.io/v1/endpointslices")}/echo-c2`,
        { endpoints: [{ addresses: ["10.245.2.8"], conditions: { ready: true } }] },
        "merge",
      );
      await until(
        "c1 sees the new c2 endpoint",
        W,
        async () => (await addressesBySource("c1", "echo")).c2?.[0] === "10.245.2.8",
      );
    },
    T,
  );

  test(
    "a joining cluster gets the imports; a hand-made export of a non-qualifying Service survives (upstream deletes it)",
    async () => {
      await service("c1", "manual", [{ port: 9000 }]);
      await exportIt("c1", "manual");
      await service("c1", "auto", [{ port: 7000 }], { annotations: { "kosmos.io/auto-create-mcs": "" } });
      await until(
        "auto export",
        W,
        async () => (await getExport("c1", "auto")).metadata.labels?.[LABEL_AUTO_CREATED] === "true",
      );
      await addCluster("c3");
      const si = await until("ServiceImport in the new cluster c3 (namespace and CRDs made)", W, async () =>
        getImport("c3", "echo"),
      );
      expect(si.spec!.ips).toEqual([vip]);
      await until("manual import in c3", W, async () => getImport("c3", "manual"));
      await mcs!.idle();
      expect((await getExport("c1", "manual")).metadata.name).toBe("manual");
      expect(await addressesBySource("c3", "echo")).toEqual({
        c1: ["242.1.1.5", "242.1.1.6"],
        c2: ["10.245.2.8"],
      });
    },
    T,
  );

  test(
    "a member API server that hangs (SIGSTOP) holds up only itself: the plan and the other clusters move on",
    async () => {
      const frozen = planes[1]!; // c2: planned and applied after c1, before c3
      frozen.freezeApiServer();
      try {
        await c.c1!.patch(
          `${nsPath("/apis/discovery.k8s.io/v1/endpointslices")}/echo-c1`,
          { endpoints: [{ addresses: ["10.244.1.9"], conditions: { ready: true } }] },
          "merge",
        );
        // Bounded below the 30 s a request to the frozen server waits before it fails: a controller
        // that applies cluster after cluster cannot pass while c2 hangs.
        const bound = 20_000;
        await until("the agents' plan has c1's new endpoint while c2 hangs", bound, async () =>
          mcs!
            .state()
            ?.plan.imports.find((i) => i.name === "echo")
            ?.slices.some(
              (sl) => sl.cluster === "c1" && sl.endpoints.some((e) => e.addresses[0] === "10.244.1.9"),
            ),
        );
        await until(
          "c3's imported slice has c1's new endpoint while c2 hangs",
          bound,
          async () => (await addressesBySource("c3", "echo")).c1?.join() === "242.1.1.9",
        );
      } finally {
        frozen.thawApiServer();
      }
      await until(
        "c2 catches up once it answers again",
        W,
        async () => (await addressesBySource("c2", "echo")).c1?.join() === "242.1.1.9",
      );
    },
    T,
  );

  test(
    "conflicting port definitions: the oldest export wins, the newer one says PortConflict",
    async () => {
      await service("c1", "web", [{ name: "http", port: 80 }]);
      await exportIt("c1", "web");
      await until("web imported", W, async () => getImport("c2", "web"));
      await service("c2", "web", [{ name: "http", port: 8080 }]);
      await exportIt("c2", "web");
      const e = await until("conflict reported", W, async () => {
        const x = await getExport("c2", "web");
        return cond(x, "Conflict")?.status === "True" ? x : undefined;
      });
      expect(cond(e, "Conflict")!.reason).toBe("PortConflict");
      expect((await getImport("c3", "web")).spec!.ports).toEqual([
        { name: "http", port: 80, protocol: "TCP" },
      ]);
    },
    T,
  );

  test(
    "an export without a Service: Valid=False NoService, nothing imported",
    async () => {
      await exportIt("c2", "ghost");
      const e = await until("NoService", W, async () => {
        const x = await getExport("c2", "ghost");
        return cond(x, "Valid") ? x : undefined;
      });
      expect(cond(e, "Valid")).toMatchObject({ status: "False", reason: "NoService" });
      await mcs!.idle();
      await expect(getImport("c3", "ghost")).rejects.toThrow();
    },
    T,
  );

  test(
    "the ClusterSetIP is stable across a controller restart",
    async () => {
      await mcs!.stop();
      mcs = await start();
      await until("restarted controller synced", W, async () => mcs!.synced() && mcs!.state() !== undefined);
      await mcs.idle();
      expect(mcs.state()!.ips.get(`${ns}/echo`)).toBe(vip);
      expect((await getImport("c3", "echo")).spec!.ips).toEqual([vip]);
    },
    T,
  );

  test(
    "unexported everywhere: the imports and their slices go from every cluster",
    async () => {
      await c.c1!.delete(`${nsPath(SERVICE_EXPORTS)}/echo`);
      await c.c2!.delete(`${nsPath(SERVICE_EXPORTS)}/echo`);
      for (const cl of ["c1", "c2", "c3"]) {
        await until(`import gone from ${cl}`, W, async () => {
          try {
            await getImport(cl, "echo");
            return false;
          } catch {
            return (await importedSlices(cl, "echo")).length === 0;
          }
        });
      }
    },
    T,
  );

  test(
    "an update from a cache that lags our own write (stale resourceVersion) lands on a managed object, never on a foreign one",
    async () => {
      const slices = nsPath("/apis/discovery.k8s.io/v1/endpointslices");
      const slice = (name: string, managed: boolean, ip: string): EndpointSliceObject => ({
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: {
          name,
          namespace: ns,
          labels: { [LABEL_SERVICE_NAME]: "stale", ...(managed ? { [LABEL_MANAGED]: "true" } : {}) },
        },
        addressType: "IPv4",
        endpoints: [{ addresses: [ip] }],
        ports: [],
      });
      const noAuto = { create: [], delete: [] };
      // the controller would rightly delete managed slices nothing asks for: applyOps alone here
      await mcs?.stop();
      mcs = undefined;
      const ours = await c.c1!.create<EndpointSliceObject>(slices, slice("stale-ours", true, "10.9.0.1"));
      const theirs = await c.c1!.create<EndpointSliceObject>(
        slices,
        slice("stale-theirs", false, "10.9.0.1"),
      );
      // our own write the cache has not seen yet: the resourceVersion moves on
      for (const name of ["stale-ours", "stale-theirs"])
        await c.c1!.patch(`${slices}/${name}`, { endpoints: [{ addresses: ["10.9.0.2"] }] }, "merge");
      const stale = (o: EndpointSliceObject, ip: string) => ({
        kind: "update" as const,
        resource: "endpointslices" as const,
        object: {
          ...slice(o.metadata.name, true, ip),
          metadata: {
            ...slice(o.metadata.name, true, ip).metadata,
            resourceVersion: o.metadata.resourceVersion,
          },
        },
      });
      expect(await applyOps("c1", c.c1!, [stale(ours, "10.9.0.3")], noAuto, [], silentLogger())).toBe(1);
      const got = await c.c1!.get<EndpointSliceObject>(`${slices}/stale-ours`);
      expect(got.endpoints?.[0]?.addresses).toEqual(["10.9.0.3"]);
      // a create of an object of ours that the cache does not show yet replaces it
      const create = {
        kind: "create" as const,
        resource: "endpointslices" as const,
        object: slice("stale-ours", true, "10.9.0.4"),
      };
      expect(await applyOps("c1", c.c1!, [create], noAuto, [], silentLogger())).toBe(1);
      expect(
        (await c.c1!.get<EndpointSliceObject>(`${slices}/stale-ours`)).endpoints?.[0]?.addresses,
      ).toEqual(["10.9.0.4"]);
      // not ours: the conflict stands and nothing is written
      const err = await applyOps("c1", c.c1!, [stale(theirs, "10.9.0.3")], noAuto, [], silentLogger()).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ApplyError);
      expect((err as ApplyError).failures[0]).toContain("the object has been modified");
      const left = await c.c1!.get<EndpointSliceObject>(`${slices}/stale-theirs`);
      expect(left.endpoints?.[0]?.addresses).toEqual(["10.9.0.2"]);
      expect(left.metadata.labels?.[LABEL_MANAGED]).toBeUndefined();
    },
    T,
  );
});
