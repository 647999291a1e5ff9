/**
 * Typed client of the node-agent exec API (used by kosmosctl and the controller).
 * Targets: https://host:port (TLS; pin the agent's SHA-256 fingerprint, or trust a CA) or
 * unix:/path.sock (admin socket, no credentials needed). Auth: bearer token or Basic.
 */
import { X509Certificate } from "node:crypto";
import { open } from "node:fs/promises";
import { connect as tlsConnect } from "node:tls";
import { checkIdentity, type IdentityCheck, normalizeFingerprint } from "../api/index.ts";
import { ExecError } from "./errors.ts";
import {
  type Checksum,
  type GMAC,
  gmacChecksum,
  HEADER_CHECKSUM,
  HEADER_SHA256,
  HEX_LENGTH,
  newGmacParams,
  SHA256_SEE_CHECKSUM,
  SHA256_TRAILER,
  sha256Checksum,
} from "./checksum.ts";
import { fileBody, sha256File, type UploadProgress } from "./filebody.ts";
import type { UploadResult } from "./upload.ts";

export { sha256File, type UploadProgress };
import { type K8sStatus, exitCodeOf, frame, PROTOCOL_V4, PROTOCOL_V5, resizeFrame, STREAM } from "./k8s.ts";

export interface AgentTarget {
  /** https://host:port or unix:/path/to/agent.sock */
  url: string;
  token?: string;
  basic?: { user: string; password: string };
  /** SHA-256 fingerprint of the agent certificate (hex, colons allowed) */
  fingerprint?: string;
  /** PEM CA bundle to verify the agent with (instead of a fingerprint) */
  ca?: string;
}

export interface ExecOptions {
  stdin?: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> | Uint8Array | string;
  tty?: boolean;
  env?: Record<string, string>;
  cwd?: string;
  /** seconds */
  timeout?: number;
  size?: { cols: number; rows: number };
  onStdout?: (chunk: Uint8Array) => void;
  onStderr?: (chunk: Uint8Array) => void;
  /** Called with a function that sends a resize (for SIGWINCH forwarding). */
  onResizer?: (resize: (cols: number, rows: number) => void) => void;
  /**
   * The subprotocol to offer (default: v5.channel.k8s.io, then v4). v4 has no stdin half-close:
   * the end of `stdin` is not signalled, so the command must not wait for it.
   */
  protocol?: typeof PROTOCOL_V5 | typeof PROTOCOL_V4;
}

export interface ExecResult {
  /** the subprotocol the agent chose */
  protocol: string;
  exitCode: number;
  status: K8sStatus;
  /** collected output when no onStdout/onStderr callbacks were given */
  stdout: string;
  stderr: string;
}

export interface UploadOptions {
  mode?: number;
  onProgress?: (p: UploadProgress) => void;
  /**
   * End-to-end checksum: `gmac-aes-256-gcm` (default; keyed, ~5x cheaper than SHA-256, see
   * checksum.ts) or `sha256` (the result then carries the file's SHA-256).
   */
  checksum?: typeof GMAC | "sha256";
}

/** How one upload attempt is checksummed on the wire. */
type WireMode = "gmac-trailer" | "sha256-trailer" | "sha256-first";

/** An agent that predates the client's checksum mode refuses it with this (target untouched). */
const OLD_AGENT = new RegExp(`expected (${SHA256_TRAILER}|${SHA256_SEE_CHECKSUM})$`);

const normalizeFp = normalizeFingerprint;

interface Endpoint {
  http: string;
  ws: string;
  unix?: string;
  hostname: string;
  port: number;
}

function parseTarget(url: string): Endpoint {
  if (url.startsWith("unix:")) {
    const path = url.replace(/^unix:(\/\/)?/, "");
    return { http: "http://localhost", ws: `ws+unix://${path}:`, unix: path, hostname: "", port: 0 };
  }
  const u = new URL(url);
  if (u.protocol !== "https:")
    throw new ExecError(
      "CONNECT_FAILED",
      `unsupported agent URL ${url}`,
      "use https://host:port or unix:/path.sock",
    );
  const base = `${u.protocol}//${u.host}`;
  return {
    http: base,
    ws: base.replace(/^https/, "wss"),
    hostname: u.hostname.replace(/^\[|\]$/g, ""),
    port: Number(u.port || 443),
  };
}

export class AgentClient {
  private readonly ep: Endpoint;
  private pinnedPem: Promise<string | null> | null = null;

  constructor(readonly target: AgentTarget) {
    this.ep = parseTarget(target.url);
  }

  private authHeaders(): Record<string, string> {
    if (this.ep.unix) return {};
    if (this.target.token) return { Authorization: `Bearer ${this.target.token}` };
    if (this.target.basic)
      return {
        Authorization: `Basic ${Buffer.from(`${this.target.basic.user}:${this.target.basic.password}`).toString("base64")}`,
      };
    return {};
  }

  /**
   * With a fingerprint: fetch the agent's certificate once, check its SHA-256, then trust exactly
   * that certificate (as CA) for all connections. Without: the given CA or the system store.
   */
  private async tlsOptions(): Promise<
    { ca?: string; rejectUnauthorized: boolean; checkServerIdentity?: () => undefined } | undefined
  > {
    if (this.ep.unix) return undefined;
    if (this.target.fingerprint) {
      this.pinnedPem ??= this.fetchPinned(normalizeFp(this.target.fingerprint));
      const pem = (await this.pinnedPem) ?? undefined;
      return { ca: pem, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    }
    if (this.target.ca) return { ca: this.target.ca, rejectUnauthorized: true };
    if (this.target.token) {
      // no pin, no CA: the agent proves its certificate with our token first (api/identity.ts)
      this.pinnedPem ??= this.fetchProven(this.target.token);
      const pem = await this.pinnedPem;
      if (pem) return { ca: pem, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    }
    return { rejectUnauthorized: true };
  }

  /**
   * The agent's certificate (PEM) once the identity exchange proves it under `token`; null when
   * the agent has no identity exchange (older agent: the system store decides, as before).
   */
  private async fetchProven(token: string): Promise<string | null> {
    let r: IdentityCheck;
    try {
      r = await checkIdentity(this.ep.http, token);
    } catch (err) {
      throw new ExecError(
        "CONNECT_FAILED",
        `cannot reach ${this.target.url}: ${(err as Error).message}`,
        "is the agent running?",
      );
    }
    if (r.status === 404 || r.status === 401) return null;
    if (r.status === 429)
      throw new ExecError(
        "UNAUTHORIZED",
        `agent ${this.target.url} refused the identity exchange: too many failed authentications or identity exchanges from this address`,
        "wait a minute (every identity exchange counts as a guess until this address authenticates), or pin the certificate with --fingerprint",
      );
    if (!r.proven)
      throw new ExecError(
        "IDENTITY_UNPROVEN",
        `agent ${this.target.url} did not prove its certificate ${r.fingerprint.slice(0, 16)}… with this token: nothing was sent`,
        "a wrong token, or not the agent you meant: pin its certificate with --fingerprint (kosmosctl inspect shows it)",
      );
    return r.certificatePem;
  }

  private fetchPinned(expected: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const sock = tlsConnect({
        host: this.ep.hostname,
        port: this.ep.port,
        rejectUnauthorized: false,
        servername: "localhost",
      });
      sock.once("secureConnect", () => {
        const cert = sock.getPeerCertificate();
        sock.destroy();
        const got = normalizeFp(cert.fingerprint256 ?? "");
        if (got !== expected) {
          reject(
            new ExecError(
              "FINGERPRINT_MISMATCH",
              `agent certificate fingerprint ${got} does not match the pinned ${expected}`,
              "the agent's certificate changed or this is not the agent you meant: check its replica record",
            ),
          );
          return;
        }
        resolve(new X509Certificate(cert.raw).toString());
      });
      sock.once("error", (err: Error) =>
        reject(
          new ExecError(
            "CONNECT_FAILED",
            `cannot reach ${this.target.url}: ${err.message}`,
            "is the agent running?",
          ),
        ),
      );
    });
  }

  /** fetch() against the agent with auth, TLS pinning or the unix socket. */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const tls = await this.tlsOptions();
    const headers = { ...this.authHeaders(), ...(init.headers as Record<string, string> | undefined) };
    try {
      return await fetch(this.ep.http + path, {
        ...init,
        headers,
        ...(this.ep.unix ? { unix: this.ep.unix } : {}),
        ...(tls ? { tls } : {}),
      } as RequestInit);
    } catch (err) {
      throw new ExecError(
        "CONNECT_FAILED",
        `cannot reach ${this.target.url}: ${(err as Error).message}`,
        "is the agent running?",
      );
    }
  }

  /** Open a websocket on `path` (with query) with auth/TLS; resolves once open. */
  async openWs(pathAndQuery: string, protocols?: string[]): Promise<WebSocket> {
    const tls = await this.tlsOptions();
    const opts: Record<string, unknown> = { headers: this.authHeaders() };
    if (protocols) opts.protocols = protocols;
    if (tls) opts.tls = tls;
    const ws = new WebSocket(this.ep.ws + pathAndQuery, opts as unknown as string[]);
    ws.binaryType = "arraybuffer";
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener(
        "error",
        () =>
          reject(
            new ExecError(
              "CONNECT_FAILED",
              `websocket to ${this.target.url}${pathAndQuery.split("?")[0]} failed`,
              "check URL, credentials and the agent logs",
            ),
          ),
        { once: true },
      );
      ws.addEventListener(
        "close",
        (e) =>
          reject(
            new ExecError("CONNECT_FAILED", `connection closed (${e.code} ${e.reason})`, "check credentials"),
          ),
        { once: true },
      );
    });
    return ws;
  }

  /** Run a command (no shell) over /v1/exec; resolves with the remote exit code. */
  async exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const q = new URLSearchParams();
    for (const a of argv) q.append("command", a);
    q.set("stdout", "true");
    q.set("stderr", "true");
    if (opts.stdin !== undefined) q.set("stdin", "true");
    if (opts.tty) q.set("tty", "true");
    if (opts.size) {
      q.set("cols", String(opts.size.cols));
      q.set("rows", String(opts.size.rows));
    }
    for (const [k, v] of Object.entries(opts.env ?? {})) q.append("env", `${k}=${v}`);
    if (opts.cwd) q.set("workingDir", opts.cwd);
    if (opts.timeout) q.set("timeout", String(opts.timeout));
    const ws = await this.openWs(
      `/v1/exec?${q}`,
      opts.protocol ? [opts.protocol] : [PROTOCOL_V5, PROTOCOL_V4],
    );
    const dec = { out: new TextDecoder(), err: new TextDecoder() };
    let stdout = "";
    let stderr = "";
    let status: K8sStatus | null = null;
    const closed = new Promise<void>((resolve) =>
      ws.addEventListener("close", () => resolve(), { once: true }),
    );
    ws.addEventListener("message", (e) => {
      const b = new Uint8Array(e.data as ArrayBuffer);
      const body = b.subarray(1);
      if (b[0] === STREAM.stdout) {
        if (opts.onStdout) opts.onStdout(body);
        else stdout += dec.out.decode(body, { stream: true });
      } else if (b[0] === STREAM.stderr) {
        if (opts.onStderr) opts.onStderr(body);
        else stderr += dec.err.decode(body, { stream: true });
      } else if (b[0] === STREAM.error) {
        status = JSON.parse(new TextDecoder().decode(body)) as K8sStatus;
      }
    });
    opts.onResizer?.((cols, rows) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(resizeFrame(cols, rows));
    });
    if (opts.stdin !== undefined) void this.pumpStdin(ws, opts.stdin);
    await closed;
    const st = status as K8sStatus | null;
    if (!st)
      throw new ExecError(
        "PROTOCOL",
        "connection closed without an exit status",
        "the agent or the network dropped the session",
      );
    return { protocol: ws.protocol, exitCode: exitCodeOf(st), status: st, stdout, stderr };
  }

  private async pumpStdin(ws: WebSocket, input: NonNullable<ExecOptions["stdin"]>): Promise<void> {
    const send = async (chunk: Uint8Array) => {
      for (let off = 0; off < chunk.byteLength; off += 256 * 1024) {
        if (ws.readyState !== WebSocket.OPEN) return;
        ws.send(frame(STREAM.stdin, chunk.subarray(off, off + 256 * 1024)));
        while (ws.readyState === WebSocket.OPEN && ws.bufferedAmount > 1024 * 1024) await Bun.sleep(1);
      }
    };
    if (typeof input === "string") await send(new TextEncoder().encode(input));
    else if (input instanceof Uint8Array) await send(input);
    else {
      const it = input instanceof ReadableStream ? (input as unknown as AsyncIterable<Uint8Array>) : input;
      for await (const chunk of it) await send(chunk);
    }
    // half-close is v5's; a v4 agent would take stream 255 for an unknown stream
    if (ws.readyState === WebSocket.OPEN && ws.protocol === PROTOCOL_V5)
      ws.send(new Uint8Array([STREAM.close, STREAM.stdin]));
  }

  /**
   * Upload a local file to remotePath (atomic on the agent; verified end to end before install).
   * The file is read once: it is checksummed while streaming and the checksum follows the data as
   * a trailer (GMAC under a fresh key sent in `x-kosmos-checksum`, or SHA-256 with
   * `x-kosmos-sha256: trailer`). An agent that predates the mode refuses it with
   * CHECKSUM_MISMATCH (target untouched); the client then falls back to a SHA-256 computed first
   * and sent in `x-kosmos-sha256`, which every agent version understands.
   */
  async upload(localPath: string, remotePath: string, opts: UploadOptions = {}): Promise<UploadResult> {
    try {
      return await this.putFile(
        localPath,
        remotePath,
        opts,
        opts.checksum === "sha256" ? "sha256-trailer" : "gmac-trailer",
      );
    } catch (err) {
      if (err instanceof ExecError && err.code === "CHECKSUM_MISMATCH" && OLD_AGENT.test(err.message))
        return await this.putFile(localPath, remotePath, opts, "sha256-first");
      throw err;
    }
  }

  private async putFile(
    localPath: string,
    remotePath: string,
    opts: UploadOptions,
    wire: WireMode,
  ): Promise<UploadResult> {
    const headers: Record<string, string> = {};
    let checksum: Checksum | null = null;
    if (wire === "sha256-first") headers[HEADER_SHA256] = await sha256File(localPath);
    else if (wire === "sha256-trailer") {
      headers[HEADER_SHA256] = SHA256_TRAILER;
      checksum = sha256Checksum();
    } else {
      const p = newGmacParams();
      headers[HEADER_CHECKSUM] = p.header;
      headers[HEADER_SHA256] = SHA256_SEE_CHECKSUM;
      checksum = gmacChecksum(p.key, p.iv);
    }
    const fh = await open(localPath, "r");
    try {
      const total = (await fh.stat()).size;
      const trailer = checksum ? HEX_LENGTH[checksum.algorithm] : 0;
      headers["content-length"] = String(total + trailer);
      const body = fileBody(fh, localPath, total, checksum, opts.onProgress);
      const q = new URLSearchParams({ path: remotePath });
      if (opts.mode !== undefined) q.set("mode", opts.mode.toString(8));
      const res = await this.request(`/v1/files?${q}`, {
        method: "PUT",
        body,
        headers,
        duplex: "half",
      } as RequestInit);
      const json = (await res.json().catch(() => ({ message: `upload failed: HTTP ${res.status}` }))) as {
        code?: string;
        message?: string;
        hint?: string;
      } & UploadResult;
      if (!res.ok)
        throw new ExecError(
          (json.code as ExecError["code"]) ?? "UPLOAD_FAILED",
          json.message ?? `upload failed: HTTP ${res.status}`,
          json.hint ?? "",
        );
      // an agent that predates `checksum` in the result verified a SHA-256 (trailer or header)
      json.checksum ??= json.sha256 ? { algorithm: "sha256", value: json.sha256, verified: true } : undefined;
      return json;
    } finally {
      await fh.close();
    }
  }
}

export interface WorkflowEventLike {
  type: string;
  [k: string]: unknown;
}

/** Run a join/leave workflow on the agent, streaming its progress events; resolves true on success. */
export async function runRemoteWorkflow(
  client: AgentClient,
  spec: { kind: "join" | "leave" } & Record<string, unknown>,
  onEvent: (e: WorkflowEventLike) => void,
): Promise<boolean> {
  const ws = await client.openWs(`/v1/node/${spec.kind}`);
  const closed = new Promise<{ code: number; reason: string }>((r) =>
    ws.addEventListener("close", (e) => r({ code: e.code, reason: e.reason }), { once: true }),
  );
  ws.addEventListener("message", (e) => onEvent(JSON.parse(String(e.data)) as WorkflowEventLike));
  ws.send(JSON.stringify(spec));
  const { code, reason } = await closed;
  if (code !== 1000)
    throw new ExecError("WORKFLOW_FAILED", `workflow refused (${code}): ${reason}`, "check the spec");
  return reason === "0";
}
