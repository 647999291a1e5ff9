/**
 * One gossiped row fires ONE control-loop trigger. Before the agent's gossip wiring became
 * startGossip(), a peer's `nodes` row fired three: the store's change ("replica"), gossip's
 * rows listener ("gossip") and the membership following the topology ("membership follows the
 * topology"). A real agent on 127.0.0.1 receives one signed push frame over its websocket.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gossipAddr } from "../../internal/agent/index.ts";
import { Codec, WsTransport } from "../../internal/gossip/index.ts";
import { openStore, type Store } from "../../internal/store/index.ts";
import type { Topology } from "../../internal/topology/index.ts";
import { type RealAgent, startRealAgent } from "../helpers/real-agent.ts";
import { until } from "../helpers/wait.ts";

const SECRET = "agent-triggers-test-secret-0123456789";

const cluster = {
  name: "c1",
  networkType: "p2p" as const,
  ipFamily: "ipv4" as const,
  podCIDRs: ["10.1.0.0/16"],
  serviceCIDRs: ["10.101.0.0/16"],
  globalCIDRs: {},
  bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
  localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
};
const self = {
  name: "t-1",
  cluster: "c1",
  ipv4: "127.0.0.1",
  podCIDRs: ["10.1.1.0/24"],
  gatewayCandidate: false,
};
// loopback, where no agent listens: the agent's probes to it go nowhere else
const added = {
  name: "t-2",
  cluster: "c1",
  ipv4: "127.0.0.2",
  podCIDRs: ["10.1.2.0/24"],
  gatewayCandidate: false,
};

let dir: string;
let real: RealAgent;
let peerStore: Store;
const peer = new WsTransport();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kosmos-triggers-"));
  writeFileSync(join(dir, "secret"), SECRET);
  real = await startRealAgent({ node: self.name, secretFile: join(dir, "secret") });
  peerStore = await openStore(join(dir, "peer.db"), { node: "peer" });
});

afterAll(async () => {
  peer.close();
  peerStore?.close();
  await real?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("a peer's nodes row fires one control-loop trigger, and membership follows it", async () => {
  const { agent } = real;
  const seed: Topology = { clusters: [cluster], nodes: [self] };
  agent.seed(seed);
  // the row a controller-seeded peer gossips: the new node t-2
  const rows = peerStore.seed({ clusters: [cluster], nodes: [self, added] });
  const row = rows.find((r) => r.table === "nodes" && r.key === added.name);
  if (!row) throw new Error("the peer's seed has no row for t-2");

  const reasons: string[] = [];
  const trigger = agent.loop.trigger.bind(agent.loop);
  agent.loop.trigger = (reason, delayMs) => {
    reasons.push(reason);
    trigger(reason, delayMs);
  };
  const codec = new Codec({
    secret: SECRET,
    name: "peer",
    addr: "wss://127.0.0.3:1/v1/gossip",
    epoch: Date.now(),
  });
  peer.send(gossipAddr(real.url), codec.encode({ t: "push", rows: [row] }));
  await until(() => agent.store.get("nodes", added.name) !== undefined, "the gossiped row is in the replica");
  await until(
    () => agent.gossip?.views.memberList().some((m) => m.name === added.name) === true,
    "t-2 is a gossip member",
  );
  await Bun.sleep(0); // one macrotask: a coalesced follow-up (the old membership trigger) would have run
  // The sender itself becomes a member (its own SWIM news, not the row's doing); the periodic
  // resync is not the row's either.
  const fromRow = reasons.filter((r) => !r.startsWith("member peer ") && r !== "resync");
  expect(fromRow).toEqual(["replica"]);
});
