import { describe, expect, test } from "bun:test";
import {
  type ClusterInput,
  type NodeInput,
  TopologyError,
  type TopologyInput,
  validateTopology,
} from "../../internal/topology/index.ts";
import { clone, labTopology } from "./topology-fixtures.ts";

function issuesOf(t: unknown): Array<{ path: string; message: string }> {
  try {
    validateTopology(t);
  } catch (e) {
    expect(e).toBeInstanceOf(TopologyError);
    const err = e as TopologyError;
    expect(err.code).toBe("TOPOLOGY_INVALID");
    expect(err.hint.length).toBeGreaterThan(0);
    return err.issues;
  }
  throw new Error("expected a TopologyError");
}

function expectIssue(t: unknown, path: string, fragment: string): void {
  const issues = issuesOf(t);
  const hit = issues.find((i) => i.path === path && i.message.includes(fragment));
  if (!hit) throw new Error(`no issue at ${path} containing "${fragment}"; got ${JSON.stringify(issues)}`);
}

const mutate = (f: (t: TopologyInput & { clusters: ClusterInput[]; nodes: NodeInput[] }) => void) => {
  const t = clone(labTopology()) as TopologyInput & { clusters: ClusterInput[]; nodes: NodeInput[] };
  f(t);
  return t;
};
const c = (t: { clusters: ClusterInput[] }, i: number) => t.clusters[i] as ClusterInput;
const n = (t: { nodes: NodeInput[] }, i: number) => t.nodes[i] as NodeInput;

describe("validateTopology", () => {
  test("the lab topology is valid and comes back canonical with defaults", () => {
    const t = mutate((t) => {
      c(t, 0).podCIDRs = ["10.244.7.7/16", "FD10:1::/48"];
      c(t, 0).globalCIDRs = { "10.244.0.0/16": "242.1.0.0/16" };
    });
    const v = validateTopology(t);
    expect(v.clusters[0]?.podCIDRs).toEqual(["10.244.0.0/16", "fd10:1::/48"]);
    expect(v.clusters[1]?.bridgeCIDRs).toEqual({ ip: "220.0.0.0/8", ip6: "9480::/16" });
    expect(v.nodes[5]?.gatewayCandidate).toBe(false);
  });

  test("schema errors carry the field path", () => {
    expectIssue({ clusters: [{ name: "Bad_Name" }] }, "clusters[0].name", "DNS-1123");
    expectIssue({ clusters: [{ name: "a", networkType: "mesh" }] }, "clusters[0].networkType", "");
  });

  test("malformed CIDRs and IPs", () => {
    expectIssue(
      mutate((t) => {
        c(t, 0).podCIDRs = ["10.244.0.300/16", "fd10:1::/48"];
        c(t, 0).globalCIDRs = {};
      }),
      "clusters[0].podCIDRs[0]",
      "not a valid CIDR",
    );
    expectIssue(
      mutate((t) => {
        c(t, 1).serviceCIDRs = ["10.97.0.0/33"];
      }),
      "clusters[1].serviceCIDRs[0]",
      "not a valid CIDR",
    );
    expectIssue(
      mutate((t) => {
        c(t, 1).bridgeCIDRs = { ip: "fd00::/129", ip6: "9480::/16" };
      }),
      "clusters[1].bridgeCIDRs.ip",
      "not a valid CIDR",
    );
    expectIssue(
      mutate((t) => {
        n(t, 0).ipv4 = "192.168.1.256";
      }),
      "nodes[0].ipv4",
      "not a valid IP",
    );
    expectIssue(
      mutate((t) => {
        n(t, 0).ipv4 = "fd00::1";
      }),
      "nodes[0].ipv4",
      "not an IPv4",
    );
    expectIssue(
      mutate((t) => {
        n(t, 0).podCIDRs = ["nope"];
      }),
      "nodes[0].podCIDRs[0]",
      "not a valid CIDR",
    );
    expectIssue(
      mutate((t) => {
        c(t, 2).podCIDRs = ["fd10:3::/48"];
        c(t, 2).globalCIDRs = {};
      }),
      "clusters[2].podCIDRs[0]",
      "IPv6",
    );
  });

  test("duplicate names and unknown cluster", () => {
    expectIssue(
      mutate((t) => {
        c(t, 2).name = "c1";
      }),
      "clusters[2].name",
      "duplicate cluster name",
    );
    expectIssue(
      mutate((t) => {
        n(t, 1).name = "c1-n1";
      }),
      "nodes[1].name",
      "duplicate node name",
    );
    expectIssue(
      mutate((t) => {
        n(t, 1).cluster = "c9";
      }),
      "nodes[1].cluster",
      'unknown cluster "c9"',
    );
  });

  test("underlay address required by the cluster's ipFamily", () => {
    expectIssue(
      mutate((t) => {
        delete n(t, 0).ipv6;
      }),
      "nodes[0].ipv6",
      "required",
    );
    expectIssue(
      mutate((t) => {
        delete n(t, 5).ipv4;
      }),
      "nodes[5].ipv4",
      "required",
    );
  });

  test("node pod CIDRs inside the cluster's and not overlapping each other", () => {
    expectIssue(
      mutate((t) => {
        n(t, 0).podCIDRs = ["10.250.1.0/24"];
      }),
      "nodes[0].podCIDRs[0]",
      "not inside any podCIDRs",
    );
    expectIssue(
      mutate((t) => {
        n(t, 1).podCIDRs = ["10.244.1.128/25"];
      }),
      "nodes[1].podCIDRs[0]",
      "overlaps nodes[0].podCIDRs[0]",
    );
  });

  test("CIDR overlaps between clusters need a global map on one side", () => {
    expectIssue(
      mutate((t) => {
        c(t, 0).globalCIDRs = {};
        c(t, 2).globalCIDRs = {};
      }),
      "clusters[2].podCIDRs[0]",
      "overlaps clusters[0].podCIDRs[0]",
    );
    // one side mapped is enough
    expect(() =>
      validateTopology(
        mutate((t) => {
          c(t, 0).globalCIDRs = {};
        }),
      ),
    ).not.toThrow();
    expectIssue(
      mutate((t) => {
        c(t, 2).serviceCIDRs = ["10.96.0.0/16"];
      }),
      "clusters[2].serviceCIDRs[0]",
      "overlaps clusters[0].serviceCIDRs[0]",
    );
    expectIssue(
      mutate((t) => {
        c(t, 1).serviceCIDRs = ["10.245.0.0/20"];
      }),
      "clusters[1].serviceCIDRs[0]",
      "overlaps clusters[1].podCIDRs[0]",
    );
  });

  test("global CIDR maps", () => {
    const key = 'clusters[0].globalCIDRs["10.250.0.0/16"]';
    expectIssue(
      mutate((t) => {
        c(t, 0).globalCIDRs = { "10.250.0.0/16": "242.1.0.0/16" };
      }),
      key,
      "not one of the cluster's podCIDRs",
    );
    const k0 = 'clusters[0].globalCIDRs["10.244.0.0/16"]';
    expectIssue(
      mutate((t) => {
        c(t, 0).globalCIDRs = { "10.244.0.0/16": "242.0.0.0/8" };
      }),
      k0,
      "prefix length /8",
    );
    expectIssue(
      mutate((t) => {
        c(t, 0).globalCIDRs = { "10.244.0.0/16": "10.97.0.0/16" };
      }),
      k0,
      "overlaps clusters[1].serviceCIDRs[0]",
    );
    expectIssue(
      mutate((t) => {
        c(t, 0).globalCIDRs = { "10.244.0.0/16": "220.1.0.0/16" };
      }),
      k0,
      "bridgeCIDRs.ip",
    );
    expectIssue(
      mutate((t) => {
        c(t, 0).globalCIDRs = { "10.244.0.0/16": "192.168.0.0/16" };
      }),
      k0,
      "contains the underlay address nodes[0].ipv4",
    );
    expectIssue(
      mutate((t) => {
        c(t, 0).globalCIDRs = { "10.244.0.0/16": "242.3.0.0/16" };
      }),
      'clusters[2].globalCIDRs["10.244.0.0/16"]',
      "overlaps clusters[0].globalCIDRs",
    );
    expectIssue(
      mutate((t) => {
        c(t, 0).globalCIDRs = { "10.244.0.0/16": "fd42::/16" };
      }),
      k0,
      "IPv6",
    );
    expectIssue(
      mutate((t) => {
        c(t, 0).globalCIDRs = { "10.244.0.0/16": "xyz" };
      }),
      k0,
      "not a valid CIDR",
    );
  });

  test("bridge/local CIDRs", () => {
    expectIssue(
      mutate((t) => {
        c(t, 1).bridgeCIDRs = { ip: "221.0.0.0/8", ip6: "9480::/16" };
      }),
      "clusters[1].bridgeCIDRs.ip",
      "all clusters must share",
    );
    expectIssue(
      mutate((t) => {
        c(t, 1).localCIDRs = { ip: "220.0.0.0/8", ip6: "9470::/16" };
      }),
      "clusters[1].localCIDRs.ip",
      "overlaps bridge CIDR",
    );
    expectIssue(
      mutate((t) => {
        c(t, 1).podCIDRs = ["210.245.0.0/16", "fd10:2::/48"];
        t.nodes = [];
      }),
      "clusters[1].podCIDRs[0]",
      "overlaps clusters[0].localCIDRs.ip",
    );
  });

  test("overlay address clashes name both nodes", () => {
    // 192.168.1.1 and 10.168.1.1 share the low 24 bits -> 220.168.1.1 twice.
    const t = mutate((t) => {
      n(t, 5).ipv4 = "10.168.1.1";
    });
    const issues = issuesOf(t);
    const hit = issues.find((i) => i.path === "nodes[5].ipv4");
    expect(hit?.message).toContain('"c3-n1"');
    expect(hit?.message).toContain('"c1-n1"');
    expect(hit?.message).toContain("220.168.1.1");
    // vx-local clash inside a gateway cluster, even for a non-candidate
    expectIssue(
      mutate((t) => {
        n(t, 4).ipv4 = "10.168.2.1";
      }),
      "nodes[4].ipv4",
      "vx-local",
    );
    // a non-candidate gateway-cluster node never holds vx-bridge: no bridge clash with c1-n1
    const ok = mutate((t) => {
      n(t, 4).ipv4 = "10.168.1.1";
    });
    expect(() => validateTopology(ok)).not.toThrow();
  });

  test("gateway clusters need a candidate unless empty", () => {
    expectIssue(
      mutate((t) => {
        n(t, 2).gatewayCandidate = false;
        n(t, 3).gatewayCandidate = false;
      }),
      "clusters[1].networkType",
      "no gatewayCandidate node",
    );
    expect(() =>
      validateTopology(
        mutate((t) => {
          t.nodes = t.nodes.filter((x) => x.cluster !== "c2");
        }),
      ),
    ).not.toThrow();
  });

  test("elastic IP family must be one the cluster uses", () => {
    expectIssue(
      mutate((t) => {
        n(t, 5).elasticIP = "2001:db8::5";
      }),
      "nodes[5].elasticIP",
      "elasticIP family mismatch",
    );
    expectIssue(
      mutate((t) => {
        n(t, 5).elasticIP = "1.2.3";
      }),
      "nodes[5].elasticIP",
      "not a valid IP",
    );
    expect(() =>
      validateTopology(
        mutate((t) => {
          n(t, 0).elasticIP = "2001:db8::1";
        }),
      ),
    ).not.toThrow();
  });

  test("collects every issue at once", () => {
    const issues = issuesOf(
      mutate((t) => {
        n(t, 0).ipv4 = "1.2.3.999";
        n(t, 1).cluster = "zz";
      }),
    );
    expect(issues.map((i) => i.path)).toEqual(expect.arrayContaining(["nodes[0].ipv4", "nodes[1].cluster"]));
  });
});

describe("multi-cluster service rows", () => {
  test("serviceImports and serviceEndpoints pass validation unchanged (an agent seeded over HTTP stores them)", () => {
    const t = clone(labTopology()) as unknown as Record<string, unknown>;
    const imports = [
      {
        name: "demo/echo",
        namespace: "demo",
        service: "echo",
        type: "ClusterSetIP",
        ips: ["241.0.0.10"],
        ports: [{ name: "http", port: 80, protocol: "TCP" }],
        sessionAffinity: "None",
        clusters: ["c1"],
      },
    ];
    const endpoints = [
      {
        name: "demo/echo/c1/echo-abc",
        namespace: "demo",
        service: "echo",
        cluster: "c1",
        slice: "echo-abc",
        addressType: "IPv4",
        ports: [{ name: "http", port: 8080, protocol: "TCP" }],
        endpoints: [{ addresses: ["10.244.1.5"], ready: true }],
      },
    ];
    t.serviceImports = imports;
    t.serviceEndpoints = endpoints;
    const out = validateTopology(t);
    expect(out.serviceImports as unknown).toEqual(imports);
    expect(out.serviceEndpoints as unknown).toEqual(endpoints);
    // Without them, none appear.
    const plain = validateTopology(clone(labTopology()));
    expect("serviceImports" in plain).toBe(false);
  });
});
