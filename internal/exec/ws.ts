/**
 * Websocket plumbing on top of hono/bun: an upgrade that can answer a subprotocol (needed for
 * v5.channel.k8s.io) and an output helper that respects backpressure.
 */
import type { ServerWebSocket } from "bun";
import type { Context } from "hono";
import { getBunServer } from "hono/bun";
import type { WSContext, WSEvents } from "hono/ws";

export interface WsData {
  events: WSEvents;
  url: URL;
  protocol: string;
  drainWaiters: Set<() => void>;
}

/** Upgrade the request; returns a Response to return from the handler (null when upgrade failed). */
export function upgradeWs(c: Context, events: WSEvents, protocol = ""): Response | null {
  const server = getBunServer<import("bun").Server<WsData>>(c);
  if (!server) return null;
  const data: WsData = { events, url: new URL(c.req.url), protocol, drainWaiters: new Set() };
  const headers = protocol ? { "Sec-WebSocket-Protocol": protocol } : undefined;
  if (!server.upgrade(c.req.raw, { data, headers })) return null;
  return new Response(null);
}

const HIGH_WATER = 1024 * 1024;

/** Sends with backpressure: `send` resolves once the socket's buffer is below the high-water mark. */
export class WsPeer {
  closed = false;
  constructor(private readonly ws: WSContext) {}

  private get raw(): ServerWebSocket<WsData> | undefined {
    return this.ws.raw as ServerWebSocket<WsData> | undefined;
  }

  async send(data: Uint8Array | string): Promise<void> {
    if (this.closed) return;
    const raw = this.raw;
    if (!raw) {
      this.ws.send(data as string);
      return;
    }
    raw.send(data);
    while (!this.closed && raw.getBufferedAmount() > HIGH_WATER) {
      await new Promise<void>((resolve) => {
        const done = () => {
          raw.data.drainWaiters?.delete(done);
          clearTimeout(t);
          resolve();
        };
        const t = setTimeout(done, 50);
        raw.data.drainWaiters?.add(done);
      });
    }
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    // close reasons are limited to 123 bytes
    const enc = new TextEncoder().encode(reason);
    const r = enc.length > 123 ? new TextDecoder().decode(enc.subarray(0, 120)) : reason;
    try {
      this.ws.close(code, r);
    } catch {
      // already closed
    }
  }
}

/** Normalise a hono message payload to bytes (text frames become UTF-8). */
export function messageBytes(data: unknown): Uint8Array {
  if (typeof data === "string") return new TextEncoder().encode(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(0);
}
