import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as dnsPacket from "dns-packet";
import { startAgentDns, upstreamsWithout } from "../../internal/dns/index.ts";
import { openStore, type Store } from "../../internal/store/index.ts";
import type { MemberState, Topology } from "../../internal/topology/index.ts";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const topo = (vip: string): Topology => ({
  clusters: [
    {
      name: "c1",
      networkType: "p2p",
      ipFamily: "ipv4",
      podCIDRs: [],
      serviceCIDRs: [],
      globalCIDRs: {},
      bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
      localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
    },
  ],
  nodes: [{ name: "c1-n1", cluster: "c1", ipv4: "192.168.1.1", podCIDRs: [], gatewayCandidate: false }],
  serviceImports: [
    {
      name: "demo/db",
      namespace: "demo",
      service: "db",
      type: "Headless",
      ips: [],
      ports: [],
      sessionAffinity: "None",
      clusters: ["c1"],
    },
    {
      name: "demo/echo",
      namespace: "demo",
      service: "echo",
      type: "ClusterSetIP",
      ips: [vip],
      ports: [],
      sessionAffinity: "None",
      clusters: ["c1"],
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
      ports: [],
      endpoints: [
        { addresses: ["10.1.0.5"], ready: true, node: "c1-n1" },
        { addresses: ["10.1.0.6"], ready: true, node: "c1-n2" },
      ],
    },
  ],
});

async function ask(port: number, name: string): Promise<string[]> {
  let done: (b: Buffer) => void = () => undefined;
  const got = new Promise<Buffer>((r) => {
    done = r;
  });
  const s = await Bun.udpSocket({ socket: { data: (_s, d) => done(Buffer.from(d)) } });
  s.send(dnsPacket.encode({ type: "query", id: 1, questions: [{ type: "A", name }] }), port, "127.0.0.1");
  const r = dnsPacket.decode(await got);
  s.close();
  return (r.answers ?? []).map((a) => String((a as { data: unknown }).data));
}

test("the agent hook answers from the replica, follows a new seed, and drops endpoints of dead nodes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kosmos-dns-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const store: Store = await openStore(join(dir, "r.db"), { node: "c1-n1" });
  cleanup.push(() => store.close());
  store.seed(topo("241.0.0.1"));
  let live: Record<string, MemberState> = {};
  const dns = await startAgentDns(
    { node: "c1-n1", store, liveness: () => live },
    { listen: "127.0.0.1:0", upstreams: [], refreshMs: 0 },
  );
  cleanup.push(() => dns.stop());
  expect(await ask(dns.port, "echo.demo.svc.clusterset.local")).toEqual(["241.0.0.1"]);
  store.seed(topo("241.0.0.2"));
  expect(await ask(dns.port, "echo.demo.svc.clusterset.local")).toEqual(["241.0.0.2"]);
  expect(await ask(dns.port, "db.demo.svc.clusterset.local")).toEqual(["10.1.0.5", "10.1.0.6"]);
  live = { "c1-n2": "dead" };
  expect(await ask(dns.port, "db.demo.svc.clusterset.local")).toEqual(["10.1.0.5"]);
});

test("the agent never forwards to itself (a hostNetwork pod's resolv.conf names the node-local DNS)", () => {
  const self = { address: "192.168.3.1", port: 53 };
  expect(upstreamsWithout(self, [self])).toEqual([]);
  expect(upstreamsWithout(self, [self, { address: "10.96.0.10", port: 53 }])).toEqual([
    { address: "10.96.0.10", port: 53 },
  ]);
  expect(upstreamsWithout(self, [{ address: "192.168.3.1", port: 5353 }])).toHaveLength(1);
});
