/**
 * Serve one Hono app on a TLS TCP port and, optionally, a plain-HTTP admin unix socket (mode 0600).
 * Each listener has its own fetch wrapper that passes `ServerBindings` as the Hono env; the
 * `transport` field is set by the listener, never from request data, so it cannot be spoofed.
 */
import { chmod, rm } from "node:fs/promises";
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import type { Logger } from "../observability/index.ts";

export interface ServerBindings {
  /** The Bun server (hono/bun's getBunServer reads `env.server`). */
  server: Server<unknown>;
  transport: "tcp" | "unix";
  /** Client address for rate limiting ("unix" for the socket). */
  remoteAddress: string;
}

export interface FetchApp {
  fetch(req: Request, env: ServerBindings): Response | Promise<Response>;
}

export interface StartServerOptions {
  app: FetchApp;
  // biome-ignore lint/suspicious/noExplicitAny: hono's Bun websocket handler is typed with its own data type
  websocket: WebSocketHandler<any>;
  tcp?: { hostname: string; port: number; tls: { cert: string; key: string } };
  unixSocket?: string;
  logger: Logger;
  /** Max websocket message size in bytes (default 16 MiB). */
  maxPayloadLength?: number;
  /** Max HTTP request body (uploads; default 64 GiB — the exec routes enforce their own limit). */
  maxRequestBodySize?: number;
  /** Websocket idle timeout in seconds; pings are sent so live peers keep it open (default 60). */
  wsIdleTimeoutSec?: number;
}

export interface RunningServer {
  stop(): Promise<void>;
  /** TCP port (0 when no TCP listener) */
  port: number;
  /** https://host:port of the TCP listener */
  url?: string;
  unixSocket?: string;
}

export async function startServer(opts: StartServerOptions): Promise<RunningServer> {
  const base = opts.websocket;
  const websocket = {
    ...base,
    // Hand handlers a Uint8Array whose .buffer is exactly the message (hono reads `.buffer`).
    message(ws: ServerWebSocket<unknown>, msg: string | Buffer<ArrayBuffer>) {
      if (typeof msg !== "string" && (msg.byteOffset !== 0 || msg.byteLength !== msg.buffer.byteLength)) {
        msg = Buffer.from(new Uint8Array(msg));
      }
      return base.message?.(ws, msg);
    },
    // Wake writers waiting for backpressure to clear (see internal/exec/ws.ts).
    drain(ws: ServerWebSocket<unknown>) {
      const data = ws.data as { drainWaiters?: Set<() => void> } | undefined;
      if (data?.drainWaiters) for (const w of [...data.drainWaiters]) w();
      base.drain?.(ws);
    },
    maxPayloadLength: opts.maxPayloadLength ?? 16 * 1024 * 1024,
    idleTimeout: opts.wsIdleTimeoutSec ?? 60,
    sendPings: true,
    backpressureLimit: 4 * 1024 * 1024,
    closeOnBackpressureLimit: false,
  };
  const servers: Server<unknown>[] = [];
  let port = 0;
  let url: string | undefined;
  if (opts.tcp) {
    const tcp = Bun.serve({
      hostname: opts.tcp.hostname,
      port: opts.tcp.port,
      tls: { cert: opts.tcp.tls.cert, key: opts.tcp.tls.key },
      idleTimeout: 120,
      maxRequestBodySize: opts.maxRequestBodySize ?? 64 * 1024 ** 3,
      websocket,
      fetch(req, server) {
        const ip = server.requestIP(req);
        return opts.app.fetch(req, { server, transport: "tcp", remoteAddress: ip?.address ?? "unknown" });
      },
    });
    servers.push(tcp);
    port = tcp.port ?? 0;
    const host = opts.tcp.hostname.includes(":") ? `[${opts.tcp.hostname}]` : opts.tcp.hostname;
    url = `https://${host}:${port}`;
    opts.logger.info({ url }, "api listening (tls)");
  }
  if (opts.unixSocket) {
    const path = opts.unixSocket;
    await rm(path, { force: true });
    const unix = Bun.serve({
      unix: path,
      websocket,
      fetch(req, server) {
        return opts.app.fetch(req, { server, transport: "unix", remoteAddress: "unix" });
      },
    });
    await chmod(path, 0o600);
    servers.push(unix);
    opts.logger.info({ unixSocket: path }, "api listening (unix)");
  }
  return {
    port,
    url,
    unixSocket: opts.unixSocket,
    async stop() {
      for (const s of servers) await s.stop(true);
      if (opts.unixSocket) await rm(opts.unixSocket, { force: true });
    },
  };
}
