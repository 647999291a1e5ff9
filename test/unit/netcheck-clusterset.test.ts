/**
 * The pure parts of `kosmosctl check --lab -p dns` (clusterset names): expected answers from API
 * objects and from an agent's zone, and the verdict on real replies — the agent's own DNS handler
 * answering our encoded queries (right, wrong address, stale, NXDOMAIN, headless, AAAA) — plus the
 * probe script's output parsing.
 */
import { describe, expect, test } from "bun:test";
import * as dnsPacket from "dns-packet";
import { buildZone, handleQuery } from "../../internal/dns/index.ts";
import {
  type ClustersetName,
  encodeQuery,
  type EndpointSliceLike,
  expectedFromApi,
  expectedFromZone,
  hexBytes,
  interpretReply,
  parseResolverOutput,
  queryTypes,
} from "../../internal/netcheck/index.ts";
import type { Topology } from "../../internal/topology/index.ts";

const cluster = (name: string, globalCIDRs: Record<string, string> = {}) => ({
  name,
  networkType: "p2p" as const,
  ipFamily: "dual" as const,
  podCIDRs: [],
  serviceCIDRs: [],
  globalCIDRs,
  bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
  localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
});

const importOf = (service: string, type: "ClusterSetIP" | "Headless", ips: string[] = []) => ({
  name: `demo/${service}`,
  namespace: "demo",
  service,
  type,
  ips,
  ports: [{ port: 8080, protocol: "TCP" as const }],
  sessionAffinity: "None" as const,
  clusters: ["c1", "c2"],
});

/** c1 maps its pod CIDR to 242.1/16; `echo` has a ClusterSetIP, `db` is headless over both clusters. */
const topo: Topology = {
  clusters: [cluster("c1", { "10.244.0.0/16": "242.1.0.0/16" }), cluster("c2"), cluster("c3")],
  nodes: [],
  serviceImports: [importOf("echo", "ClusterSetIP", ["241.0.0.10"]), importOf("db", "Headless")],
  serviceEndpoints: [
    {
      name: "demo/db/c1/a",
      namespace: "demo",
      service: "db",
      cluster: "c1",
      slice: "a",
      addressType: "IPv4",
      ports: [{ port: 8080, protocol: "TCP" }],
      endpoints: [
        { addresses: ["10.244.1.5"], ready: true },
        { addresses: ["10.244.1.6"], ready: false },
      ],
    },
    {
      name: "demo/db/c2/b",
      namespace: "demo",
      service: "db",
      cluster: "c2",
      slice: "b",
      addressType: "IPv6",
      ports: [{ port: 8080, protocol: "TCP" }],
      endpoints: [{ addresses: ["fd10:2::7"], ready: true }],
    },
  ],
};

/** The reply the agent's DNS handler gives to our query, from the zone `t` builds for c3. */
function agentReply(t: Topology, name: string, type: "A" | "AAAA", id: number): Buffer {
  const out = handleQuery(Buffer.from(encodeQuery(name, type, id), "hex"), buildZone(t, "c3"), "udp");
  if (out.kind !== "reply") throw new Error(`agent did not reply: ${out.kind}`);
  return out.bytes;
}

const byName = (names: ClustersetName[], n: string) => names.find((x) => x.name === n)!;

describe("expected answers", () => {
  test("from API objects: ClusterSetIP = the import's IPs; Headless = ready addresses of the imported slices", () => {
    const slice = (
      name: string,
      service: string,
      endpoints: EndpointSliceLike["endpoints"],
      managedBy = "mcs.kosmos.io",
    ): EndpointSliceLike => ({
      metadata: {
        name,
        namespace: "demo",
        labels: {
          "multicluster.kubernetes.io/service-name": service,
          "endpointslice.kubernetes.io/managed-by": managedBy,
        },
      },
      endpoints,
    });
    const names = expectedFromApi(
      [
        {
          metadata: { name: "echo", namespace: "demo" },
          spec: { type: "ClusterSetIP", ips: ["241.0.0.10"] },
        },
        { metadata: { name: "db", namespace: "demo" }, spec: { type: "Headless" } },
      ],
      [
        slice("db-c1", "db", [
          { addresses: ["242.1.1.5"], conditions: { ready: true } },
          { addresses: ["242.1.1.6"], conditions: { ready: false } },
          { addresses: ["242.1.1.4"] }, // unset ready is ready
        ]),
        slice("db-c2", "db", [{ addresses: ["fd10:2::7"] }]),
        slice("echo-c1", "echo", [{ addresses: ["242.1.1.9"] }]),
        slice("db-local", "db", [{ addresses: ["10.9.9.9"] }], "endpointslice-controller.k8s.io"),
      ],
    );
    expect(names.map((n) => n.name)).toEqual([
      "db.demo.svc.clusterset.local",
      "echo.demo.svc.clusterset.local",
    ]);
    const db = byName(names, "db.demo.svc.clusterset.local");
    expect(db).toMatchObject({
      headless: true,
      want: { A: ["242.1.1.4", "242.1.1.5"], AAAA: ["fd10:2::7"] },
    });
    expect(queryTypes(db)).toEqual(["A", "AAAA"]);
    const echo = byName(names, "echo.demo.svc.clusterset.local");
    expect(echo).toMatchObject({ headless: false, want: { A: ["241.0.0.10"], AAAA: [] } });
    expect(queryTypes(echo)).toEqual(["A"]);
  });

  test("from an agent's zone: the same names, endpoints through the source cluster's global CIDRs", () => {
    const names = expectedFromZone(buildZone(topo, "c3"));
    expect(byName(names, "db.demo.svc.clusterset.local").want).toEqual({
      A: ["242.1.1.5"],
      AAAA: ["fd10:2::7"],
    });
    expect(byName(names, "echo.demo.svc.clusterset.local").want).toEqual({ A: ["241.0.0.10"], AAAA: [] });
  });
});

describe("the verdict on a resolver's reply", () => {
  const echo = "echo.demo.svc.clusterset.local";
  const db = "db.demo.svc.clusterset.local";

  test("the agent's answer equal to the expected one passes (ClusterSetIP, headless A and AAAA)", () => {
    expect(
      interpretReply(agentReply(topo, echo, "A", 7), "", { id: 7, type: "A", want: ["241.0.0.10"] }),
    ).toEqual({
      ok: true,
      got: ["241.0.0.10"],
      detail: "answered 241.0.0.10",
    });
    expect(
      interpretReply(agentReply(topo, db, "A", 8), "", { id: 8, type: "A", want: ["242.1.1.5"] }).ok,
    ).toBe(true);
    const v6 = interpretReply(agentReply(topo, db, "AAAA", 9), "", {
      id: 9,
      type: "AAAA",
      want: ["fd10:2::7"],
    });
    expect(v6).toMatchObject({ ok: true, got: ["fd10:2::7"] });
  });

  test("a wrong address fails with got vs want", () => {
    const v = interpretReply(agentReply(topo, echo, "A", 7), "", { id: 7, type: "A", want: ["241.0.0.11"] });
    expect(v).toEqual({
      ok: false,
      got: ["241.0.0.10"],
      hop: "wrong address",
      detail: "answered 241.0.0.10, want 241.0.0.11",
    });
  });

  test("a headless answer missing a ready endpoint is a wrong address; the order does not matter", () => {
    const v = interpretReply(agentReply(topo, db, "A", 5), "", {
      id: 5,
      type: "A",
      want: ["242.1.1.7", "242.1.1.5"],
    });
    expect(v).toMatchObject({ ok: false, hop: "wrong address", got: ["242.1.1.5"] });
    const both = {
      ...topo,
      serviceEndpoints: topo.serviceEndpoints!.map((r) => ({
        ...r,
        endpoints: r.endpoints.map((e) => ({ ...e, ready: true })),
      })),
    };
    const ok = interpretReply(agentReply(both, db, "A", 5), "", {
      id: 5,
      type: "A",
      want: ["242.1.1.6", "242.1.1.5"],
    });
    expect(ok).toMatchObject({ ok: true, got: ["242.1.1.5", "242.1.1.6"] });
  });

  test("an answer equal to the agent's replica but not to the API server's is stale", () => {
    const v = interpretReply(agentReply(topo, echo, "A", 3), "", {
      id: 3,
      type: "A",
      want: ["241.0.0.20"],
      stale: ["241.0.0.10"],
    });
    expect(v).toMatchObject({ ok: false, hop: "stale", got: ["241.0.0.10"] });
  });

  test("an answer without the endpoints of a node gossip declares dead is named so (the API server lists them)", () => {
    const db = "db.demo.svc.clusterset.local";
    const both = {
      ...topo,
      serviceEndpoints: topo.serviceEndpoints!.map((r) => ({
        ...r,
        endpoints: r.endpoints.map((e, i) => ({ ...e, ready: true, node: `c1-n${i + 1}` })),
      })),
    };
    // The agent's view: c1-n2 is dead, so its endpoint 242.1.1.6 is left out of the answer.
    const members = { "c1-n2": "dead" as const };
    const live = expectedFromZone(buildZone(both, "c3", members));
    const all = expectedFromZone(buildZone(both, "c3"));
    const out = handleQuery(
      Buffer.from(encodeQuery(db, "A", 21), "hex"),
      buildZone(both, "c3", members),
      "udp",
    );
    if (out.kind !== "reply") throw new Error("no reply");
    const v = interpretReply(out.bytes, "", {
      id: 21,
      type: "A",
      want: ["242.1.1.5", "242.1.1.6"],
      stale: byName(live, db).want.A,
      withDeadNodes: byName(all, db).want.A,
    });
    expect(v).toEqual({
      ok: false,
      got: ["242.1.1.5"],
      hop: "dead node",
      detail:
        "answered 242.1.1.5: the agent leaves out 242.1.1.6, on nodes gossip declares dead; the API server lists them",
    });
  });

  test("a name the agent does not know is NXDOMAIN", () => {
    const v = interpretReply(agentReply(topo, "nope.demo.svc.clusterset.local", "A", 4), "", {
      id: 4,
      type: "A",
      want: ["241.0.0.30"],
    });
    expect(v).toMatchObject({ ok: false, hop: "NXDOMAIN", got: [] });
  });

  test("no reply, a reply to another query, another rcode", () => {
    expect(
      interpretReply(undefined, "no answer from 192.168.3.1 in 2 s", { id: 1, type: "A", want: [] }),
    ).toEqual({
      ok: false,
      got: [],
      hop: "no answer",
      detail: "no answer from 192.168.3.1 in 2 s",
    });
    const other = agentReply(topo, echo, "A", 2);
    expect(interpretReply(other, "", { id: 1, type: "A", want: ["241.0.0.10"] })).toMatchObject({
      ok: false,
      hop: "no answer",
      detail: "reply with id 2, expected 1",
    });
    const refused = dnsPacket.encode({
      type: "response",
      id: 6,
      flags: 5,
      questions: [{ type: "A", name: echo }],
    });
    expect(interpretReply(refused, "", { id: 6, type: "A", want: [] })).toMatchObject({
      ok: false,
      hop: "rcode",
      detail: "the resolver answered REFUSED",
    });
  });
});

describe("the probe script's output", () => {
  test("resolver line, replies as od hex, failures; hex parses back to the bytes", () => {
    const bytes = agentReply(topo, "echo.demo.svc.clusterset.local", "A", 11);
    const od = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    const p = parseResolverOutput(
      `resolver 192.168.3.1\n0\tok\t ${od}\n1\tfail\tno answer from 192.168.3.1 in 2 s\nnoise\n`,
    );
    expect(p.resolver).toBe("192.168.3.1");
    expect(hexBytes(p.replies.get("0")!.hex!)).toEqual(bytes);
    expect(p.replies.get("1")).toEqual({ detail: "no answer from 192.168.3.1 in 2 s" });
    expect(p.error).toBeUndefined();
    expect(parseResolverOutput("", "nsenter: no such process").error).toBe("nsenter: no such process");
    expect(parseResolverOutput("resolver -\n").resolver).toBe("");
    expect(hexBytes("zz 01")).toBeUndefined();
  });
});
