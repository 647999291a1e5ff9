import { afterEach, describe, expect, test } from "bun:test";
import * as dnsPacket from "dns-packet";
import {
  buildZone,
  handleQuery,
  RateLimiter,
  resolve,
  type RunningDns,
  startDnsServer,
} from "../../internal/dns/index.ts";
import type { Topology } from "../../internal/topology/index.ts";

const cluster = (name: string, globalCIDRs: Record<string, string> = {}) => ({
  name,
  networkType: "p2p" as const,
  ipFamily: "ipv4" as const,
  podCIDRs: [],
  serviceCIDRs: [],
  globalCIDRs,
  bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
  localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
});

const topo: Topology = {
  clusters: [cluster("c1", { "10.244.0.0/16": "242.1.0.0/16" }), cluster("c2")],
  nodes: [],
  serviceImports: [
    {
      name: "demo/echo",
      namespace: "demo",
      service: "echo",
      type: "ClusterSetIP",
      ips: ["241.0.0.10"],
      ports: [{ name: "http", port: 80, protocol: "TCP" }],
      sessionAffinity: "None",
      clusters: ["c1", "c2"],
    },
    {
      name: "demo/db",
      namespace: "demo",
      service: "db",
      type: "Headless",
      ips: [],
      ports: [{ name: "sql", port: 5432, protocol: "TCP" }],
      sessionAffinity: "None",
      clusters: ["c1", "c2"],
    },
  ],
  serviceEndpoints: [
    {
      name: "demo/db/c1/a",
      namespace: "demo",
      service: "db",
      cluster: "c1",
      slice: "a",
      addressType: "IPv4",
      ports: [{ name: "sql", port: 15432, protocol: "TCP" }],
      endpoints: [
        { addresses: ["10.244.1.5"], ready: true, hostname: "db-0", node: "c1-n1" },
        { addresses: ["10.244.1.6"], ready: false, hostname: "db-1", node: "c1-n1" },
      ],
    },
    {
      name: "demo/db/c2/b",
      namespace: "demo",
      service: "db",
      cluster: "c2",
      slice: "b",
      addressType: "IPv4",
      ports: [{ name: "sql", port: 5432, protocol: "TCP" }],
      endpoints: [{ addresses: ["10.245.1.7"], ready: true, hostname: "db-0", node: "c2-n1" }],
    },
  ],
};

describe("resolver (pure)", () => {
  const zone = buildZone(topo, "c2");
  const a = (n: string, t = "A") => {
    const r = resolve(zone, n, t);
    return r.kind === "answer" ? { rcode: r.rcode, data: r.answers.map((x) => x.data) } : r;
  };
  test("ClusterSetIP service: A → the VIP; AAAA → NODATA; case and trailing dot do not matter", () => {
    expect(a("echo.demo.svc.clusterset.local")).toEqual({ rcode: "NOERROR", data: ["241.0.0.10"] });
    expect(a("ECHO.demo.svc.clusterset.local.")).toEqual({ rcode: "NOERROR", data: ["241.0.0.10"] });
    expect(a("echo.demo.svc.clusterset.local", "AAAA")).toEqual({ rcode: "NOERROR", data: [] });
  });
  test("headless: ready endpoints (another cluster's through its global CIDR); per-host names", () => {
    expect(a("db.demo.svc.clusterset.local")).toEqual({
      rcode: "NOERROR",
      data: ["10.245.1.7", "242.1.1.5"],
    });
    expect(a("db-0.c1.db.demo.svc.clusterset.local")).toEqual({ rcode: "NOERROR", data: ["242.1.1.5"] });
    expect(a("db-1.c1.db.demo.svc.clusterset.local")).toEqual({ rcode: "NXDOMAIN", data: [] });
  });
  test("SRV per named port: ClusterSetIP → the service name; headless → each host with its own port", () => {
    expect(a("_http._tcp.echo.demo.svc.clusterset.local", "SRV")).toEqual({
      rcode: "NOERROR",
      data: [{ priority: 0, weight: 100, port: 80, target: "echo.demo.svc.clusterset.local" }],
    });
    const r = resolve(zone, "_sql._tcp.db.demo.svc.clusterset.local", "SRV");
    expect(r.kind === "answer" && r.answers.map((x) => x.data)).toEqual([
      { priority: 0, weight: 100, port: 15432, target: "db-0.c1.db.demo.svc.clusterset.local" },
      { priority: 0, weight: 100, port: 5432, target: "db-0.c2.db.demo.svc.clusterset.local" },
    ]);
  });
  test("unknown names in the zone are NXDOMAIN; other names are forwarded", () => {
    expect(a("nope.demo.svc.clusterset.local")).toEqual({ rcode: "NXDOMAIN", data: [] });
    expect(resolve(zone, "example.org", "A")).toEqual({ kind: "forward" });
    expect(resolve(zone, "kubernetes.default.svc.cluster.local", "A")).toEqual({ kind: "forward" });
  });
  test("endpoints on a node gossip declares dead leave the answers", () => {
    const z = buildZone(topo, "c2", { "c1-n1": "dead" });
    const r = resolve(z, "db.demo.svc.clusterset.local", "A");
    expect(r.kind === "answer" && r.answers.map((x) => x.data)).toEqual(["10.245.1.7"]);
  });
});

describe("handleQuery (wire)", () => {
  const zone = buildZone(topo, "c2");
  const query = (name: string, type: dnsPacket.RecordType = "A") =>
    dnsPacket.encode({
      type: "query",
      id: 4242,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type, name, class: "IN" }],
    });
  test("an answer is authoritative, echoes the id and the question", () => {
    const out = handleQuery(query("echo.demo.svc.clusterset.local"), zone, "udp");
    if (out.kind !== "reply") throw new Error(out.kind);
    const r = dnsPacket.decode(out.bytes);
    expect(r.id).toBe(4242);
    expect(r.flag_aa).toBe(true);
    expect(r.answers).toEqual([
      {
        name: "echo.demo.svc.clusterset.local",
        type: "A",
        ttl: 5,
        class: "IN",
        flush: false,
        data: "241.0.0.10",
      },
    ]);
  });
  test("garbage with a header → FORMERR; shorter than a header → dropped; oversized UDP → FORMERR", () => {
    const junk = Buffer.concat([
      Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00, 0x05, 0, 0, 0, 0, 0, 0]),
      Buffer.from("zzzz"),
    ]);
    const out = handleQuery(junk, zone, "udp");
    expect(out.kind === "reply" && out.rcode).toBe("FORMERR");
    expect(out.kind === "reply" && out.bytes.readUInt16BE(0)).toBe(0x1234);
    expect(handleQuery(Buffer.from([1, 2, 3]), zone, "udp").kind).toBe("drop");
    const big = Buffer.concat([query("echo.demo.svc.clusterset.local"), Buffer.alloc(600)]);
    expect(handleQuery(big, zone, "udp")).toMatchObject({ kind: "reply", rcode: "FORMERR" });
  });
  test("other names → forward", () => {
    expect(handleQuery(query("example.org"), zone, "udp")).toEqual({ kind: "forward", id: 4242 });
  });
});

describe("RateLimiter", () => {
  test("a source over its budget is refused; others are not; tokens come back with time", () => {
    const r = new RateLimiter(10, 5);
    const got = Array.from({ length: 8 }, () => r.allow("a", 0));
    expect(got.filter(Boolean).length).toBe(5);
    expect(r.allow("b", 0)).toBe(true);
    expect(r.allow("a", 1000)).toBe(true);
  });
});

describe("DNS server (UDP/TCP on loopback)", () => {
  const running: RunningDns[] = [];
  afterEach(async () => {
    for (const r of running.splice(0)) await r.stop();
  });

  async function udpAsk(
    port: number,
    msg: Buffer,
    timeoutMs = 1500,
  ): Promise<dnsPacket.DecodedPacket | undefined> {
    let done: (b: Buffer | undefined) => void = () => undefined;
    const p = new Promise<Buffer | undefined>((r) => {
      done = r;
    });
    const s = await Bun.udpSocket({ socket: { data: (_s, d) => done(Buffer.from(d)) } });
    const t = setTimeout(() => done(undefined), timeoutMs);
    s.send(msg, port, "127.0.0.1");
    const b = await p;
    clearTimeout(t);
    s.close();
    return b ? dnsPacket.decode(b) : undefined;
  }

  async function tcpAsk(port: number, msg: Buffer): Promise<dnsPacket.DecodedPacket> {
    let buf = Buffer.alloc(0);
    let done: (b: Buffer) => void = () => undefined;
    const p = new Promise<Buffer>((r) => {
      done = r;
    });
    const sock = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data(_s, d) {
          buf = Buffer.concat([buf, Buffer.from(d)]);
          if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0))
            done(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        },
      },
    });
    const head = Buffer.alloc(2);
    head.writeUInt16BE(msg.length, 0);
    sock.write(Buffer.concat([head, msg]));
    const b = await p;
    sock.end();
    return dnsPacket.decode(b);
  }

  const q = (name: string, id = 7) =>
    dnsPacket.encode({
      type: "query",
      id,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type: "A", name, class: "IN" }],
    });

  test("answers clusterset names on UDP and TCP, forwards the rest to the upstream", async () => {
    // the upstream: the same server code, answering nothing itself (empty zone), refusing forwards
    const zone = buildZone(topo, "c2");
    const upstream = await Bun.udpSocket({
      hostname: "127.0.0.1",
      socket: {
        data(s, d, port, addr) {
          const m = dnsPacket.decode(Buffer.from(d));
          s.send(
            dnsPacket.encode({
              type: "response",
              id: m.id,
              questions: m.questions,
              answers: [{ type: "A", name: m.questions![0]!.name, ttl: 30, data: "192.0.2.1" }],
            }),
            port,
            addr,
          );
        },
      },
    });
    const dns = await startDnsServer({
      address: "127.0.0.1",
      port: 0,
      zone: () => zone,
      upstreams: [{ address: "127.0.0.1", port: upstream.port }],
    });
    running.push(dns);
    expect((await udpAsk(dns.port, q("echo.demo.svc.clusterset.local")))!.answers![0]).toMatchObject({
      data: "241.0.0.10",
    });
    expect((await tcpAsk(dns.port, q("db.demo.svc.clusterset.local"))).answers!.map((a) => (a as { data: unknown }).data)).toEqual([
      "10.245.1.7",
      "242.1.1.5",
    ]);
    const fwd = (await udpAsk(dns.port, q("example.org", 99)))!;
    expect(fwd.id).toBe(99);
    expect(fwd.answers![0]).toMatchObject({ data: "192.0.2.1" });
    expect(dns.stats()).toMatchObject({ answered: 2, forwarded: 1 });
    upstream.close();
  });

  test("a flood from one source is cut at its budget; another source is still answered; garbage does not hurt", async () => {
    const zone = buildZone(topo, "c2");
    const dns = await startDnsServer({
      address: "127.0.0.1",
      port: 0,
      zone: () => zone,
      rateLimit: { qps: 1, burst: 20 },
    });
    running.push(dns);
    const flood = await Bun.udpSocket({ hostname: "127.0.0.1", socket: { data() {} } });
    flood.send(Buffer.from("not dns at all, but long enough"), dns.port, "127.0.0.1");
    for (let i = 0; i < 200; i++) flood.send(q("echo.demo.svc.clusterset.local", i), dns.port, "127.0.0.1");
    // wait for the server to have seen them all (a state, not a sleep)
    for (let i = 0; i < 500 && dns.stats().queries < 201; i++) await Bun.sleep(5);
    expect(dns.stats().queries).toBe(201);
    expect(dns.stats().rateLimited).toBeGreaterThanOrEqual(175);
    expect(dns.stats().formerr).toBe(1);
    flood.close();
    // another pod (source address) is answered normally
    let done: (b: Buffer) => void = () => undefined;
    const got = new Promise<Buffer>((r) => {
      done = r;
    });
    const other = await Bun.udpSocket({
      hostname: "127.0.0.2",
      socket: { data: (_s, d) => done(Buffer.from(d)) },
    });
    other.send(q("echo.demo.svc.clusterset.local", 777), dns.port, "127.0.0.1");
    expect(dnsPacket.decode(await got).answers![0]).toMatchObject({ data: "241.0.0.10" });
    other.close();
  });
});
