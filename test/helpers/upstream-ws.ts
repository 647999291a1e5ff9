/**
 * An independent websocket client for tests, written against RFC 6455 on node:tls, that dials the
 * way upstream Kosmos' Go node-agent client does (gorilla/websocket): the request target is sent
 * byte for byte as given (upstream's `/cmd/?command=sh&&args=-c&&args=echo+hi`, no normalisation
 * by a URL class), HTTP Basic auth, masked binary/text frames, the result read from the close frame.
 * It can also drop the TCP connection without a close frame (a client that just goes away).
 */
import { createHash, randomBytes } from "node:crypto";
import { connect, type TLSSocket } from "node:tls";

export interface WsMessage {
  type: "text" | "binary";
  data: Uint8Array;
}

export interface UpstreamWs {
  /** HTTP status of the handshake (101 when upgraded) and, when refused, the response body. */
  status: number;
  body: string;
  /** Every text/binary message received so far, in order. */
  messages: WsMessage[];
  /** Resolves with the close frame's code and reason (1006 when the connection ended without one). */
  closed: Promise<{ code: number; reason: string }>;
  sendText(s: string): void;
  sendBinary(b: Uint8Array): void;
  /** Destroy the TCP connection: no close frame, no FIN handshake with the server's websocket layer. */
  drop(): void;
  /** Text of every message, concatenated (PTY output). */
  text(): string;
}

/** Go's url.QueryEscape: unreserved bytes stay, space becomes '+', everything else %XX. */
export function goQueryEscape(s: string): string {
  let out = "";
  for (const b of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else if (c === " ") out += "+";
    else out += `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

const OP = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

function encodeFrame(opcode: number, payload: Uint8Array): Buffer {
  const len = payload.byteLength;
  const head = len < 126 ? 2 : len < 65_536 ? 4 : 10;
  const out = Buffer.alloc(head + 4 + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else if (len < 65_536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(len), 2);
  }
  const mask = randomBytes(4);
  mask.copy(out, head);
  for (let i = 0; i < len; i++) out[head + 4 + i] = (payload[i] as number) ^ (mask[i % 4] as number);
  return out;
}

/** Parses server frames (unmasked) from a growing buffer. */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private fragmentOp = 0;

  constructor(
    private readonly onMessage: (m: WsMessage) => void,
    private readonly onControl: (op: number, payload: Buffer) => void,
  ) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (this.buf.length < 2) return;
      const fin = ((this.buf[0] as number) & 0x80) !== 0;
      const op = (this.buf[0] as number) & 0x0f;
      let len = (this.buf[1] as number) & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      if (this.buf.length < at + len) return;
      const payload = Buffer.from(this.buf.subarray(at, at + len));
      this.buf = this.buf.subarray(at + len);
      if (op >= OP.close) {
        this.onControl(op, payload);
        continue;
      }
      if (op !== OP.continuation) this.fragmentOp = op;
      this.fragments.push(payload);
      if (!fin) continue;
      const data = Buffer.concat(this.fragments);
      this.fragments = [];
      this.onMessage({ type: this.fragmentOp === OP.text ? "text" : "binary", data });
    }
  }
}

/**
 * Dial `https://host:port` + `target` (sent as is) with Basic credentials. Resolves after the
 * handshake response, upgraded or not.
 */
export function dialUpstream(
  url: string,
  target: string,
  basic: { user: string; password: string },
  /** more request headers (e.g. Sec-WebSocket-Protocol for /v1/exec) */
  headers: Record<string, string> = {},
): Promise<UpstreamWs> {
  const u = new URL(url);
  const key = randomBytes(16).toString("base64");
  const accept = createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
  const auth = Buffer.from(`${basic.user}:${basic.password}`).toString("base64");
  // gorilla/websocket: Host and User-Agent first (net/http), then its headers sorted by name
  const request = [
    `GET ${target} HTTP/1.1`,
    `Host: ${u.host}`,
    "User-Agent: Go-http-client/1.1",
    `Authorization: Basic ${auth}`,
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
    "Upgrade: websocket",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    "",
    "",
  ].join("\r\n");
  return new Promise((resolve, reject) => {
    const sock: TLSSocket = connect({
      host: u.hostname.replace(/^\[|\]$/g, ""),
      port: Number(u.port),
      rejectUnauthorized: false, // upstream's client: InsecureSkipVerify
    });
    const messages: WsMessage[] = [];
    let closeResult: { code: number; reason: string } | null = null;
    let settleClosed: (r: { code: number; reason: string }) => void = () => {};
    const closed = new Promise<{ code: number; reason: string }>((r) => {
      settleClosed = r;
    });
    const send = (op: number, payload: Uint8Array) => {
      if (!sock.destroyed) sock.write(encodeFrame(op, payload));
    };
    const frames = new FrameReader(
      (m) => messages.push(m),
      (op, payload) => {
        if (op === OP.ping) send(OP.pong, payload);
        else if (op === OP.close && !closeResult) {
          closeResult = {
            code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005,
            reason: payload.subarray(2).toString("utf8"),
          };
          send(OP.close, payload.subarray(0, 2));
          sock.end();
        }
      },
    );
    let head = Buffer.alloc(0);
    let upgraded = false;
    const ws: Omit<UpstreamWs, "status" | "body"> = {
      messages,
      closed,
      sendText: (s) => send(OP.text, new TextEncoder().encode(s)),
      sendBinary: (b) => send(OP.binary, b),
      drop: () => sock.destroy(),
      text: () => messages.map((m) => new TextDecoder().decode(m.data)).join(""),
    };
    sock.once("secureConnect", () => sock.write(request));
    sock.on("data", (chunk: Buffer) => {
      if (upgraded) {
        frames.push(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      const text = head.subarray(0, end).toString("latin1");
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      if (status !== 101) {
        sock.end();
        resolve({ ...ws, status, body: head.subarray(end + 4).toString("utf8") });
        return;
      }
      if (!new RegExp(`^sec-websocket-accept: ${accept.replace(/[+/]/g, "\\$&")}\\s*$`, "im").test(text)) {
        sock.destroy();
        reject(new Error("bad Sec-WebSocket-Accept in the handshake response"));
        return;
      }
      upgraded = true;
      resolve({ ...ws, status, body: "" });
      const rest = head.subarray(end + 4);
      if (rest.length) frames.push(Buffer.from(rest));
    });
    sock.on("error", (e) => {
      if (!upgraded) reject(e);
    });
    sock.on("close", () => settleClosed(closeResult ?? { code: 1006, reason: "" }));
  });
}
