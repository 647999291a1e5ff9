import { describe, expect, test } from "bun:test";
import {
  allocateClusterSetIPs,
  type ClusterView,
  desiredInCluster,
  diffCluster,
  type EndpointSliceObject,
  LABEL_AUTO_CREATED,
  LABEL_MANAGED,
  LABEL_SERVICE_NAME,
  LABEL_SOURCE_CLUSTER,
  parseGlobals,
  parseRange,
  planAutoExports,
  planMcs,
  reachableAddress,
  type ServiceExportObject,
  type ServiceObject,
  topologyRecords,
} from "../../internal/mcs/index.ts";
import { TopologySchema } from "../../internal/topology/index.ts";

const svc = (
  ns: string,
  name: string,
  spec: ServiceObject["spec"] = {},
  annotations?: Record<string, string>,
): ServiceObject => ({
  metadata: { namespace: ns, name, ...(annotations ? { annotations } : {}) },
  spec: { ports: [{ name: "http", port: 80, protocol: "TCP" }], ...spec },
});
const exp = (
  ns: string,
  name: string,
  created = "2026-01-01T00:00:00Z",
  labels?: Record<string, string>,
): ServiceExportObject => ({
  metadata: { namespace: ns, name, creationTimestamp: created, ...(labels ? { labels } : {}) },
});
const slice = (
  ns: string,
  svcName: string,
  name: string,
  addrs: string[],
  ready = true,
): EndpointSliceObject => ({
  metadata: { namespace: ns, name, labels: { "kubernetes.io/service-name": svcName } },
  addressType: "IPv4",
  endpoints: addrs.map((a, i) => ({
    addresses: [a],
    conditions: { ready },
    nodeName: `n${i}`,
    targetRef: { kind: "Pod", name: `p${i}` },
  })),
  ports: [{ name: "http", port: 8080, protocol: "TCP" }],
});
const view = (name: string, o: Partial<ClusterView>): ClusterView => ({
  name,
  globalCIDRs: {},
  services: [],
  exports: [],
  slices: [],
  ...o,
});

describe("planMcs", () => {
  test("a Service exported from two clusters: one import, both clusters' slices, no conflict", () => {
    const p = planMcs([
      view("c1", {
        services: [svc("demo", "echo")],
        exports: [exp("demo", "echo")],
        slices: [slice("demo", "echo", "echo-a", ["10.1.0.5"])],
      }),
      view("c2", {
        services: [svc("demo", "echo")],
        exports: [exp("demo", "echo")],
        slices: [slice("demo", "echo", "echo-b", ["10.2.0.7"])],
      }),
      view("c3", {}),
    ]);
    expect(p.imports).toHaveLength(1);
    expect(p.imports[0]).toMatchObject({
      namespace: "demo",
      name: "echo",
      type: "ClusterSetIP",
      clusters: ["c1", "c2"],
    });
    expect(p.imports[0]!.ports).toEqual([{ name: "http", port: 80, protocol: "TCP" }]);
    expect(p.imports[0]!.slices.map((s) => s.cluster)).toEqual(["c1", "c2"]);
    expect(p.exports.every((e) => e.conditions.find((c) => c.type === "Conflict")!.status === "False")).toBe(
      true,
    );
  });

  test("an export without a Service is Valid=False NoService and contributes nothing", () => {
    const p = planMcs([view("c1", { exports: [exp("demo", "ghost")] })]);
    expect(p.imports).toHaveLength(0);
    expect(p.exports[0]!.conditions).toEqual([
      { type: "Valid", status: "False", reason: "NoService", message: expect.any(String) },
    ]);
  });

  test("ExternalName services cannot be exported", () => {
    const p = planMcs([
      view("c1", { services: [svc("d", "x", { type: "ExternalName" })], exports: [exp("d", "x")] }),
    ]);
    expect(p.exports[0]!.conditions[0]).toMatchObject({ status: "False", reason: "ServiceTypeExternalName" });
  });

  test("ports: union; a conflicting definition loses to the oldest export and is reported on the newer one", () => {
    const p = planMcs([
      view("old", {
        services: [svc("d", "s", { ports: [{ name: "http", port: 80, protocol: "TCP" }] })],
        exports: [exp("d", "s", "2026-01-01T00:00:00Z")],
      }),
      view("new", {
        services: [
          svc("d", "s", {
            ports: [
              { name: "http", port: 8080, protocol: "TCP" },
              { name: "dns", port: 53, protocol: "UDP" },
            ],
          }),
        ],
        exports: [exp("d", "s", "2026-02-01T00:00:00Z")],
      }),
    ]);
    expect(p.imports[0]!.ports).toEqual([
      { name: "dns", port: 53, protocol: "UDP" },
      { name: "http", port: 80, protocol: "TCP" },
    ]);
    const c = (cl: string) =>
      p.exports.find((e) => e.cluster === cl)!.conditions.find((x) => x.type === "Conflict")!;
    expect(c("old")).toMatchObject({ status: "False" });
    expect(c("new")).toMatchObject({ status: "True", reason: "PortConflict" });
    expect(c("new").message).toContain("8080/TCP");
  });

  test("type and session affinity follow the oldest export; the other is flagged", () => {
    const p = planMcs([
      view("a", {
        services: [svc("d", "s", { clusterIP: "None" })],
        exports: [exp("d", "s", "2026-03-01T00:00:00Z")],
      }),
      view("b", {
        services: [svc("d", "s", { sessionAffinity: "ClientIP" })],
        exports: [exp("d", "s", "2026-01-01T00:00:00Z")],
      }),
    ]);
    expect(p.imports[0]).toMatchObject({
      type: "ClusterSetIP",
      sessionAffinity: "ClientIP",
      sessionAffinityTimeout: 10800,
    });
    const a = p.exports.find((e) => e.cluster === "a")!.conditions.find((x) => x.type === "Conflict")!;
    expect(a).toMatchObject({ status: "True", reason: "TypeConflict" });
    expect(a.message).toContain("sessionAffinity None");
  });

  test("the planner ignores slices it made itself (no feedback loop)", () => {
    const own = slice("d", "s", "mine", ["10.9.9.9"]);
    own.metadata.labels!["endpointslice.kubernetes.io/managed-by"] = "mcs.kosmos.io";
    const p = planMcs([view("a", { services: [svc("d", "s")], exports: [exp("d", "s")], slices: [own] })]);
    expect(p.imports[0]!.slices).toHaveLength(0);
  });
});

describe("desiredInCluster", () => {
  const p = planMcs([
    view("c1", {
      services: [svc("demo", "echo")],
      exports: [exp("demo", "echo")],
      slices: [slice("demo", "echo", "echo-a", ["10.244.1.5"])],
    }),
    view("c2", {
      services: [svc("demo", "echo")],
      exports: [exp("demo", "echo")],
      slices: [slice("demo", "echo", "echo-b", ["10.244.2.7"])],
    }),
  ]);
  const globals = new Map([
    ["c1", parseGlobals({ "10.244.0.0/16": "242.1.0.0/16" })],
    ["c2", parseGlobals({})],
  ]);
  const ips = new Map([["demo/echo", "241.0.0.10"]]);

  test("another cluster's pod IPs are translated to its global CIDR; the local ones are kept", () => {
    const inC2 = desiredInCluster(p, "c2", globals, ips);
    const byCluster = Object.fromEntries(
      inC2.slices.map((s) => [s.metadata.labels![LABEL_SOURCE_CLUSTER]!, s.endpoints![0]!.addresses[0]]),
    );
    expect(byCluster).toEqual({ c1: "242.1.1.5", c2: "10.244.2.7" });
    const inC1 = desiredInCluster(p, "c1", globals, ips);
    expect(inC1.slices.map((s) => s.endpoints![0]!.addresses[0]).sort()).toEqual([
      "10.244.1.5",
      "10.244.2.7",
    ]);
  });

  test("imports carry the ClusterSetIP and the MCS labels; endpoints lose the source targetRef", () => {
    const d = desiredInCluster(p, "c2", globals, ips);
    expect(d.imports[0]!.spec).toMatchObject({ ips: ["241.0.0.10"], type: "ClusterSetIP" });
    expect(d.imports[0]!.metadata.labels![LABEL_MANAGED]).toBe("true");
    expect(d.slices[0]!.metadata.labels![LABEL_SERVICE_NAME]).toBe("echo");
    expect(d.slices[0]!.endpoints![0]!.targetRef).toBeUndefined();
    expect(d.slices[0]!.metadata.name.length).toBeLessThanOrEqual(253);
  });

  test("diff: nothing to do once the cluster holds the desired objects (key order does not matter)", () => {
    const d = desiredInCluster(p, "c2", globals, ips);
    const reverse = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(reverse)
        : v && typeof v === "object"
          ? Object.fromEntries(
              Object.entries(v)
                .reverse()
                .map(([k, x]) => [k, reverse(x)]),
            )
          : v;
    const reordered = d.imports.map((i) => ({ ...i, spec: reverse(i.spec) as typeof i.spec }));
    const { ops } = diffCluster(d, { imports: reordered, slices: d.slices, exports: [] }, []);
    expect(ops.filter((o) => o.kind !== "importStatus")).toEqual([]);
  });

  test("diff: a hand-made ServiceImport of the same name is left alone and reported", () => {
    const d = desiredInCluster(p, "c2", globals, ips);
    const mine = { ...d.imports[0]!, metadata: { name: "echo", namespace: "demo" } };
    const { ops, foreign } = diffCluster(d, { imports: [mine], slices: [], exports: [] }, []);
    expect(foreign).toEqual(["ServiceImport demo/echo"]);
    expect(ops.some((o) => o.kind === "update" && o.resource === "serviceimports")).toBe(false);
  });

  test("diff: managed objects no longer wanted are deleted, foreign ones never", () => {
    const stale = {
      ...desiredInCluster(p, "c2", globals, ips).slices[0]!,
      metadata: { name: "old", namespace: "demo", labels: { [LABEL_MANAGED]: "true" } },
    };
    const theirs = { ...stale, metadata: { name: "theirs", namespace: "demo" } };
    const { ops } = diffCluster(
      { imports: [], slices: [] },
      { imports: [], slices: [stale, theirs], exports: [] },
      [],
    );
    expect(ops).toEqual([{ kind: "delete", resource: "endpointslices", namespace: "demo", name: "old" }]);
  });
});

describe("reachableAddress", () => {
  test("maps 1:1 by prefix inside a mapped CIDR, IPv4 and IPv6; leaves others", () => {
    const g = parseGlobals({ "10.244.0.0/16": "242.1.0.0/16", "fd00:10::/64": "fd99:1::/64" });
    expect(reachableAddress("10.244.3.9", g)).toBe("242.1.3.9");
    expect(reachableAddress("10.245.0.1", g)).toBe("10.245.0.1");
    expect(reachableAddress("fd00:10::abc", g)).toBe("fd99:1::abc");
  });
});

describe("allocateClusterSetIPs", () => {
  const range = parseRange("241.0.0.0/24");
  test("keeps an address already written, gives new keys distinct addresses, deterministically", () => {
    const a = allocateClusterSetIPs(["d/a", "d/b", "d/c"], new Map([["d/b", ["241.0.0.7"]]]), range);
    expect(a.get("d/b")).toBe("241.0.0.7");
    expect(new Set(a.values()).size).toBe(3);
    expect(allocateClusterSetIPs(["d/c", "d/a", "d/b"], new Map([["d/b", ["241.0.0.7"]]]), range)).toEqual(a);
  });
  test("two keys claiming one address (a race): the first keeps it, the other moves", () => {
    const a = allocateClusterSetIPs(
      ["d/a", "d/b"],
      new Map([
        ["d/a", ["241.0.0.9"]],
        ["d/b", ["241.0.0.9"]],
      ]),
      range,
    );
    expect(a.get("d/a")).toBe("241.0.0.9");
    expect(a.get("d/b")).not.toBe("241.0.0.9");
  });
  test("addresses outside the range are replaced; never network or broadcast; a full range is an error", () => {
    const small = parseRange("241.0.0.0/30");
    const a = allocateClusterSetIPs(["x/a", "x/b"], new Map([["x/a", ["10.0.0.1"]]]), small);
    expect([...a.values()].sort()).toEqual(["241.0.0.1", "241.0.0.2"]);
    expect(() => allocateClusterSetIPs(["x/a", "x/b", "x/c"], new Map(), small)).toThrow(/full/);
  });
  test("many keys: all distinct and inside the range", () => {
    const keys = Array.from({ length: 250 }, (_, i) => `ns/s${i}`);
    const a = allocateClusterSetIPs(keys, new Map(), range);
    expect(new Set(a.values()).size).toBe(250);
  });
});

describe("planAutoExports", () => {
  const o = { prefixes: ["kosmos-e2e"], reserved: ["kube-system"] };
  test("annotation or namespace prefix export; reserved namespaces never", () => {
    const r = planAutoExports(
      [
        svc("kosmos-e2e-1", "a"),
        svc("plain", "b", {}, { "kosmos.io/auto-create-mcs": "" }),
        svc("plain", "c"),
        svc("kube-system", "d", {}, { "kosmos.io/auto-create-mcs": "true" }),
      ],
      [],
      o,
    );
    expect(r.create.map((e) => `${e.metadata.namespace}/${e.metadata.name}`)).toEqual([
      "kosmos-e2e-1/a",
      "plain/b",
    ]);
    expect(r.create[0]!.metadata.labels![LABEL_AUTO_CREATED]).toBe("true");
  });
  test("a hand-made export of a non-qualifying Service is never deleted (upstream's bug); an auto one is", () => {
    const r = planAutoExports(
      [svc("plain", "c")],
      [exp("plain", "c"), exp("plain", "gone", undefined, { [LABEL_AUTO_CREATED]: "true" })],
      o,
    );
    expect(r).toEqual({ create: [], delete: [{ namespace: "plain", name: "gone" }] });
  });
});

describe("topologyRecords", () => {
  test("imports and per-slice endpoints for the agents: ClusterNode names, unset ready = ready, source addresses", () => {
    const s = slice("demo", "echo", "echo-a", ["10.244.1.5"]);
    delete s.endpoints![0]!.conditions;
    const plan = planMcs([
      view("c1", { services: [svc("demo", "echo")], exports: [exp("demo", "echo")], slices: [s] }),
    ]);
    const r = topologyRecords({ plan, ips: new Map([["demo/echo", "241.0.0.3"]]), clusters: ["c1"] });
    expect(r.serviceImports).toEqual([
      {
        name: "demo/echo",
        namespace: "demo",
        service: "echo",
        type: "ClusterSetIP",
        ips: ["241.0.0.3"],
        ports: [{ name: "http", port: 80, protocol: "TCP" }],
        sessionAffinity: "None",
        clusters: ["c1"],
      },
    ]);
    expect(r.serviceEndpoints[0]).toMatchObject({
      name: "demo/echo/c1/echo-a",
      ports: [{ name: "http", port: 8080, protocol: "TCP" }],
      endpoints: [{ addresses: ["10.244.1.5"], ready: true, node: "c1-n0" }],
    });
    expect(TopologySchema.safeParse({ clusters: [], nodes: [], ...r }).success).toBe(true);
  });
});
