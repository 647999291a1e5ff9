/**
 * The node-local DNS server: UDP and TCP on one address, answers `clusterset.local` from the zone
 * the caller keeps current (built from the replica), forwards every other name to the upstream
 * servers (the cluster's DNS), and rate-limits per source address (a flood from one pod cannot
 * starve the others: its excess queries are dropped, everyone else is answered).
 */
import type { TCPSocketListener, Socket as TcpSocket, udp } from "bun";
import type { Logger } from "../observability/index.ts";
import { errorReply, handleQuery } from "./handle.ts";
import { RateLimiter } from "./ratelimit.ts";
import type { Zone } from "./zone.ts";

export interface Upstream {
  address: string;
  port: number;
}

export interface DnsServerOptions {
  address: string;
  /** 0: any free port (tests). */
  port: number;
  zone: () => Zone;
  upstreams?: Upstream[];
  forwardTimeoutMs?: number;
  /** Per source address (default 200 qps, burst 400). */
  rateLimit?: { qps: number; burst: number };
  logger?: Logger;
  now?: () => number;
}

export interface DnsStats {
  queries: number;
  answered: number;
  nxdomain: number;
  forwarded: number;
  formerr: number;
  rateLimited: number;
  dropped: number;
  servfail: number;
}

export interface RunningDns {
  address: string;
  port: number;
  stats(): DnsStats;
  stop(): Promise<void>;
}

const MAX_TCP_MESSAGE = 65_535;

export async function startDnsServer(o: DnsServerOptions): Promise<RunningDns> {
  const stats = zeroStats();
  const limiter = new RateLimiter(o.rateLimit?.qps ?? 200, o.rateLimit?.burst ?? 400);
  const now = o.now ?? Date.now;
  const timeout = o.forwardTimeoutMs ?? 2000;
  const upstreams = o.upstreams ?? [];
  const pending = new Map<
    number,
    { id: number; reply: (b: Buffer) => void; timer: ReturnType<typeof setTimeout> }
  >();
  let nextId = Math.floor(Math.random() * 0xffff);

  // One socket towards the upstreams; queries get a fresh id there, mapped back on the reply.
  const up: udp.Socket<"buffer"> = await Bun.udpSocket({
    socket: {
      data(_s, data) {
        const b = Buffer.from(data);
        if (b.length < 12) return;
        const p = pending.get(b.readUInt16BE(0));
        if (!p) return;
        pending.delete(b.readUInt16BE(0));
        clearTimeout(p.timer);
        b.writeUInt16BE(p.id, 0);
        p.reply(b);
      },
    },
  });

  function forward(query: Buffer, reply: (b: Buffer) => void): void {
    const target = upstreams[0];
    if (!target) {
      stats.servfail++;
      reply(errorReply(query, "REFUSED"));
      return;
    }
    let id = nextId;
    for (let i = 0; i < 0x10000 && pending.has(id); i++) id = (id + 1) & 0xffff;
    nextId = (id + 1) & 0xffff;
    const copy = Buffer.from(query);
    const orig = copy.readUInt16BE(0);
    copy.writeUInt16BE(id, 0);
    const timer = setTimeout(() => {
      pending.delete(id);
      stats.servfail++;
      reply(errorReply(query, "SERVFAIL"));
    }, timeout);
    pending.set(id, { id: orig, reply, timer });
    stats.forwarded++;
    up.send(copy, target.port, target.address);
  }

  function serve(buf: Buffer, src: string, transport: "udp" | "tcp", reply: (b: Buffer) => void): void {
    stats.queries++;
    if (!limiter.allow(src, now())) {
      stats.rateLimited++;
      return;
    }
    let out: ReturnType<typeof handleQuery>;
    try {
      out = handleQuery(buf, o.zone(), transport);
    } catch (e) {
      o.logger?.warn({ err: (e as Error).message }, "dns: query failed");
      stats.servfail++;
      if (buf.length >= 12) reply(errorReply(buf, "SERVFAIL"));
      return;
    }
    if (out.kind === "drop") {
      stats.dropped++;
      return;
    }
    if (out.kind === "forward") {
      forward(buf, reply);
      return;
    }
    if (out.rcode === "FORMERR") stats.formerr++;
    else if (out.rcode === "NXDOMAIN") stats.nxdomain++;
    else stats.answered++;
    reply(out.bytes);
  }

  // Port 0 (tests): the UDP port the kernel picks may be taken for TCP; pick again.
  let bound: Awaited<ReturnType<typeof bindDns>> | undefined;
  for (let attempt = 0; !bound; attempt++) {
    try {
      bound = await bindDns(o.address, o.port, serve, stats);
    } catch (e) {
      if (o.port !== 0 || attempt >= 20 || (e as { code?: string }).code !== "EADDRINUSE") throw e;
    }
  }
  const { udpSock, tcp } = bound;

  o.logger?.info({ address: o.address, port: udpSock.port, upstreams }, "dns: serving clusterset.local");
  return {
    address: o.address,
    port: udpSock.port,
    stats: () => ({ ...stats }),
    async stop() {
      for (const p of pending.values()) clearTimeout(p.timer);
      pending.clear();
      udpSock.close();
      up.close();
      tcp.stop(true);
    },
  };
}

function zeroStats(): DnsStats {
  return {
    queries: 0,
    answered: 0,
    nxdomain: 0,
    forwarded: 0,
    formerr: 0,
    rateLimited: 0,
    dropped: 0,
    servfail: 0,
  };
}

type Serve = (buf: Buffer, src: string, transport: "udp" | "tcp", reply: (b: Buffer) => void) => void;

/** The UDP socket on `port` and a TCP listener on the same port number, both handing queries to `serve`. */
async function bindDns(
  address: string,
  port: number,
  serve: Serve,
  stats: DnsStats,
): Promise<{ udpSock: udp.Socket<"buffer">; tcp: TCPSocketListener<{ buf: Buffer }> }> {
  const udpSock: udp.Socket<"buffer"> = await Bun.udpSocket({
    hostname: address,
    port,
    socket: {
      data(s, data, port, addr) {
        serve(Buffer.from(data), addr, "udp", (b) => {
          s.send(b, port, addr);
        });
      },
    },
  });

  // TCP: 2-byte length prefix per message (RFC 1035 4.2.2); a connection may carry several.
  let tcp: TCPSocketListener<{ buf: Buffer }>;
  try {
    tcp = Bun.listen<{ buf: Buffer }>({
      hostname: address,
      port: udpSock.port,
      socket: {
        open(s) {
          s.data = { buf: Buffer.alloc(0) };
        },
        data(s: TcpSocket<{ buf: Buffer }>, chunk) {
          s.data.buf = Buffer.concat([s.data.buf, Buffer.from(chunk)]);
          while (s.data.buf.length >= 2) {
            const len = s.data.buf.readUInt16BE(0);
            if (len > MAX_TCP_MESSAGE || len < 12) {
              stats.dropped++;
              s.end();
              return;
            }
            if (s.data.buf.length < 2 + len) return;
            const msg = s.data.buf.subarray(2, 2 + len);
            s.data.buf = s.data.buf.subarray(2 + len);
            serve(Buffer.from(msg), s.remoteAddress, "tcp", (b) => {
              const head = Buffer.alloc(2);
              head.writeUInt16BE(b.length, 0);
              s.write(Buffer.concat([head, b]));
            });
          }
        },
      },
    });
  } catch (e) {
    udpSock.close();
    throw e;
  }
  return { udpSock, tcp };
}
