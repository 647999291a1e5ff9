import { afterEach, describe, expect, test } from "bun:test";
import { Hono } from "hono";
import { websocket } from "hono/bun";
import { GossipNode, MemoryReplica, realClock, realRandom } from "../../internal/gossip/index.ts";
import { gossipRoute, WsTransport } from "../../internal/gossip/ws-transport.ts";

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function agent(name: string, secret: string) {
  const transport = new WsTransport({ reconnectMinMs: 20, reconnectMaxMs: 200 });
  const app = new Hono();
  app.get("/v1/gossip", gossipRoute(transport));
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch, websocket });
  const addr = `ws://127.0.0.1:${server.port}/v1/gossip`;
  const replica = new MemoryReplica();
  const node = new GossipNode({
    name,
    addr,
    secret,
    transport,
    clock: realClock(),
    random: realRandom(),
    replica,
    config: { probeIntervalMs: 100, probeTimeoutMs: 50, gossipIntervalMs: 20, antiEntropyIntervalMs: 100 },
  });
  cleanups.push(() => {
    node.stop();
    transport.close();
    server.stop(true);
  });
  return { node, replica, addr, transport };
}

async function until(pred: () => boolean, maxMs = 5000): Promise<boolean> {
  const end = Date.now() + maxMs;
  while (Date.now() < end) {
    if (pred()) return true;
    await Bun.sleep(10);
  }
  return pred();
}

describe("websocket transport (two Bun servers on 127.0.0.1)", () => {
  test("join through a seed, then rows written on either side replicate", async () => {
    const a = agent("a", "k");
    const b = agent("b", "k");
    a.node.start();
    b.node.start([a.addr]);
    expect(
      await until(() => a.node.memberState("b") === "alive" && b.node.memberState("a") === "alive"),
    ).toBe(true);
    const row = {
      table: "nodes",
      key: "b",
      owner: "b",
      version: 42,
      deleted: false,
      data: { ip: "10.0.0.2" },
    };
    b.replica.merge([row]);
    b.node.publish([row]);
    expect(await until(() => a.replica.get("nodes", "b")?.version === 42)).toBe(true);
    expect(a.transport.stats.framesIn).toBeGreaterThan(0);
  });

  test("a peer with another secret is refused (forged frames counted)", async () => {
    const a = agent("a", "k1");
    const b = agent("b", "k2");
    a.node.start();
    b.node.start([a.addr]);
    expect(await until(() => a.node.codec.stats.rejected.forged > 0)).toBe(true);
    expect(a.node.memberState("b")).toBeUndefined();
  });

  test("unanswered addresses cost bounded sockets: attempts time out, and at most maxConnecting are in flight", async () => {
    // a TCP listener on 127.0.0.1 that accepts and never answers the websocket handshake
    let accepted = 0;
    let open = 0;
    const sink = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open() {
          accepted += 1;
          open += 1;
        },
        data() {},
        close() {
          open -= 1;
        },
      },
    });
    cleanups.push(() => sink.stop(true));
    const t = new WsTransport({ connectTimeoutMs: 150, maxConnecting: 2, reconnectMinMs: 10_000 });
    cleanups.push(() => t.close());
    const frame = new Uint8Array([1, 2, 3]);
    for (let i = 0; i < 5; i++) t.send(`ws://127.0.0.1:${sink.port}/ghost${i}`, frame);
    expect(t.pendingConnects).toBe(2);
    expect(t.stats.dropped).toBe(3);
    expect(await until(() => accepted === 2)).toBe(true);
    // given up after the timeout: the sockets are closed, the frames dropped, a backoff starts
    expect(await until(() => t.pendingConnects === 0 && open === 0, 2000)).toBe(true);
    expect(t.stats.connectFailures).toBe(2);
    expect(t.stats.dropped).toBe(5);
    // within the backoff no new attempt is made for the same address
    t.send(`ws://127.0.0.1:${sink.port}/ghost0`, frame);
    expect(t.pendingConnects).toBe(0);
    expect(accepted).toBe(2);
  });
});
