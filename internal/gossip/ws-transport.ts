/**
 * Gossip over websockets: binary frames, one outbound connection per peer address (a ws:// or
 * wss:// URL of the peer's /v1/gossip route), lazy reconnect with exponential backoff, bounded
 * per-peer queues while connecting (overflow drops the oldest frame; anti-entropy repairs). The cost
 * of addresses nobody answers at (nodes listed in the topology that run no agent) is bounded too: a
 * connection attempt is given up after connectTimeoutMs, and at most maxConnecting attempts are in
 * flight (frames for further new peers are dropped meanwhile).
 * Inbound frames arrive through the hono route from `gossipRoute()`.
 *
 * TLS: agents serve self-signed certificates. Pass the peer certificate (PEM) as `ca` to pin it;
 * without `ca`, certificates are not verified and the HMAC layer (codec.ts) is what authenticates.
 */
import type { MiddlewareHandler } from "hono";
import { upgradeWebSocket } from "hono/bun";
import type { Transport } from "./ports.ts";

export interface WsTransportOptions {
  /** Pinned certificate / CA (PEM) for wss:// peers. */
  ca?: string;
  /** Frames kept per peer while (re)connecting. */
  maxQueue?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Give up a connection attempt that is not open after this long (default 3000 ms). */
  connectTimeoutMs?: number;
  /** Connection attempts in flight at most (default 128: gossip pings at most 32 new peers/s, 3 s each). */
  maxConnecting?: number;
  /** Time source for backoff (default Date.now). */
  now?: () => number;
}

export interface WsTransportStats {
  framesOut: number;
  framesIn: number;
  dropped: number;
  connects: number;
  connectFailures: number;
}

interface Peer {
  ws: WebSocket | null;
  open: boolean;
  queue: Uint8Array[];
  failures: number;
  nextAttempt: number;
}

export class WsTransport implements Transport {
  readonly stats: WsTransportStats = {
    framesOut: 0,
    framesIn: 0,
    dropped: 0,
    connects: 0,
    connectFailures: 0,
  };
  private readonly peers = new Map<string, Peer>();
  private connecting = 0;
  private handler: ((b: Uint8Array) => void) | null = null;
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly o: WsTransportOptions = {}) {
    this.now = o.now ?? Date.now;
  }

  onMessage(cb: (bytes: Uint8Array) => void): void {
    this.handler = cb;
  }

  /** Hand an inbound frame to the gossip node (used by the server route). */
  deliver(data: unknown): void {
    if (this.closed || !this.handler) return;
    let bytes: Uint8Array | null = null;
    if (data instanceof Uint8Array) bytes = data;
    else if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    if (!bytes) return; // text frames are not gossip
    this.stats.framesIn += 1;
    this.handler(bytes);
  }

  send(to: string, bytes: Uint8Array): void {
    if (this.closed) return;
    let p = this.peers.get(to);
    if (!p) {
      p = { ws: null, open: false, queue: [], failures: 0, nextAttempt: 0 };
      this.peers.set(to, p);
    }
    if (p.open && p.ws) {
      p.ws.send(bytes);
      this.stats.framesOut += 1;
      return;
    }
    p.queue.push(bytes);
    if (p.queue.length > (this.o.maxQueue ?? 256)) {
      p.queue.shift();
      this.stats.dropped += 1;
    }
    if (!p.ws && this.now() >= p.nextAttempt) {
      if (this.connecting < (this.o.maxConnecting ?? 128)) this.connect(to, p);
      else {
        this.stats.dropped += p.queue.length;
        p.queue = [];
      }
    }
  }

  /**
   * Drop the outbound connection to `to`, so that the next frame opens a new one at once. For a
   * peer that restarted (Codec.onRestart): when its machine was gone (links down) our connection
   * to its old process stays "open" until a TCP retransmission meets the new kernel, seconds later,
   * and every frame sent meanwhile (acks, refutations, rows) is lost.
   */
  reset(to: string): void {
    const p = this.peers.get(to);
    if (!p?.ws) return;
    const ws = p.ws;
    p.ws = null;
    p.open = false;
    p.failures = 0;
    p.nextAttempt = 0;
    try {
      ws.close();
    } catch {
      /* already closing */
    }
  }

  /** Connection attempts in flight (for tests and metrics). */
  get pendingConnects(): number {
    return this.connecting;
  }

  private connect(url: string, p: Peer): void {
    const tls = url.startsWith("wss:")
      ? this.o.ca
        ? { ca: this.o.ca }
        : { rejectUnauthorized: false }
      : undefined;
    let ws: WebSocket;
    try {
      ws = tls ? new WebSocket(url, { tls }) : new WebSocket(url);
    } catch {
      this.failed(p);
      return;
    }
    ws.binaryType = "arraybuffer";
    p.ws = ws;
    this.connecting += 1;
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      this.connecting -= 1;
      clearTimeout(timer);
    };
    const timer = setTimeout(() => {
      if (p.ws !== ws || p.open) return;
      settle();
      p.ws = null;
      this.failed(p);
      try {
        ws.close();
      } catch {
        /* already closing */
      }
    }, this.o.connectTimeoutMs ?? 3000);
    timer.unref();
    ws.onopen = () => {
      settle();
      if (p.ws !== ws) {
        ws.close();
        return;
      }
      p.open = true;
      p.failures = 0;
      this.stats.connects += 1;
      for (const f of p.queue.splice(0)) {
        ws.send(f);
        this.stats.framesOut += 1;
      }
    };
    ws.onmessage = (ev) => this.deliver(ev.data);
    ws.onclose = () => {
      settle();
      if (p.ws !== ws) return;
      const wasOpen = p.open;
      p.ws = null;
      p.open = false;
      if (!wasOpen) this.failed(p);
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  private failed(p: Peer): void {
    p.failures += 1;
    this.stats.connectFailures += 1;
    const min = this.o.reconnectMinMs ?? 250;
    const max = this.o.reconnectMaxMs ?? 10_000;
    p.nextAttempt = this.now() + Math.min(max, min * 2 ** Math.min(16, p.failures - 1));
    // frames queued for an unreachable peer are dropped: anti-entropy repairs later
    this.stats.dropped += p.queue.length;
    p.queue = [];
  }

  /** Close every connection; further sends are ignored. */
  close(): void {
    this.closed = true;
    for (const p of this.peers.values()) p.ws?.close();
    this.peers.clear();
  }
}

/** The hono route the agent mounts at /v1/gossip (serve with `websocket` from "hono/bun"). */
export function gossipRoute(transport: WsTransport): MiddlewareHandler {
  return upgradeWebSocket(() => ({
    onMessage(evt) {
      transport.deliver(evt.data);
    },
  }));
}
