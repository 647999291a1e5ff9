/**
 * A loopback TCP proxy for fault injection: `blackhole()` silences the connections open now — nothing
 * is forwarded either way and nothing is closed (no FIN, no RST), as when a peer vanishes or a NAT
 * entry is dropped — while new connections pass as before.
 */
import { createConnection, createServer, type Socket } from "node:net";

export interface TcpProxy {
  port: number;
  /** Connections proxied so far. */
  accepted(): number;
  /** Silence every open connection; returns how many. */
  blackhole(): number;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const open = new Set<[Socket, Socket]>();
  const held: Socket[] = [];
  let accepted = 0;
  const server = createServer((client) => {
    accepted++;
    const upstream = createConnection(target);
    const pair: [Socket, Socket] = [client, upstream];
    open.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = (): void => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  const port = await new Promise<number>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)),
  );
  return {
    port,
    accepted: () => accepted,
    blackhole() {
      const n = open.size;
      for (const pair of open) {
        const [client, upstream] = pair;
        client.unpipe(upstream);
        upstream.unpipe(client);
        for (const s of pair) {
          s.removeAllListeners("data");
          s.removeAllListeners("close");
          s.on("close", () => undefined);
          s.pause();
          held.push(s);
        }
      }
      open.clear();
      return n;
    },
    async close() {
      for (const pair of open) for (const s of pair) s.destroy();
      for (const s of held) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
