/**
 * A peer that restarts gets a fresh connection: Codec.onRestart reports a known sender showing a
 * newer epoch, and WsTransport.reset drops the outbound connection to it (the agent wires the two:
 * a connection to a process that vanished with its machine stays "open" for seconds otherwise).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { Hono } from "hono";
import { websocket } from "hono/bun";
import { Codec } from "../../internal/gossip/index.ts";
import { gossipRoute, WsTransport } from "../../internal/gossip/ws-transport.ts";

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

const ping = { t: "ping", id: 1, to: "a" } as const;

describe("peer restart", () => {
  test("Codec.onRestart fires once per newer epoch of a known sender, never for the first or a stale one", () => {
    const rx = new Codec({ secret: "k", name: "a", addr: "ws://a", epoch: 1 });
    const seen: string[] = [];
    rx.onRestart = (from, addr) => seen.push(`${from} ${addr}`);
    const b1 = new Codec({ secret: "k", name: "b", addr: "ws://b", epoch: 100 });
    rx.decode(b1.encode(ping));
    rx.decode(b1.encode(ping));
    expect(seen).toEqual([]);
    const b2 = new Codec({ secret: "k", name: "b", addr: "ws://b2", epoch: 200 });
    rx.decode(b2.encode(ping));
    rx.decode(b2.encode(ping));
    expect(seen).toEqual(["b ws://b2"]);
    expect(rx.tryDecode(b1.encode(ping))).toBeNull(); // the old process: stale epoch, refused
    expect(seen).toEqual(["b ws://b2"]);
  });

  test("WsTransport.reset closes the connection to a peer; the next frame opens a new one and arrives", async () => {
    const got: number[] = [];
    const server = new WsTransport();
    server.onMessage((bytes) => got.push(bytes[0] ?? -1));
    const app = new Hono();
    app.get("/v1/gossip", gossipRoute(server));
    const srv = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: app.fetch, websocket });
    const addr = `ws://127.0.0.1:${srv.port}/v1/gossip`;
    const client = new WsTransport();
    cleanups.push(() => {
      client.close();
      server.close();
      srv.stop(true);
    });
    const until = async (pred: () => boolean) => {
      for (let i = 0; i < 500 && !pred(); i++) await Bun.sleep(10);
      return pred();
    };
    client.send(addr, new Uint8Array([1]));
    expect(await until(() => got.length === 1)).toBe(true);
    expect(client.stats.connects).toBe(1);
    client.reset(addr);
    client.reset("ws://127.0.0.1:1/v1/gossip"); // unknown peer: nothing to do
    client.send(addr, new Uint8Array([2]));
    expect(await until(() => got.length === 2)).toBe(true);
    expect(got).toEqual([1, 2]);
    expect(client.stats.connects).toBe(2);
  });
});
