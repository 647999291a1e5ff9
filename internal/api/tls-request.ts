/**
 * Minimal HTTPS client over node:tls for agents with self-signed certificates: the certificate is
 * checked against a pin right after the handshake, before a byte is sent, and the fingerprint the
 * connection saw is returned (to check an identity document against, api/identity.ts).
 */
import { KosmosError } from "../errors/index.ts";
import { connect as tlsConnect } from "node:tls";
import { normalizeFingerprint as normFp } from "./tls.ts";

export class PinMismatchError extends KosmosError<"TLS_PIN_MISMATCH"> {
  override name = "PinMismatchError";
  constructor(
    readonly url: string,
    readonly got: string,
    readonly pinned: string,
  ) {
    super(
      "TLS_PIN_MISMATCH",
      `agent ${url} certificate fingerprint ${got.slice(0, 16)}… does not match the pinned ${pinned.slice(0, 16)}…`,
      "the agent's certificate changed (reinstalled?) or this is not the agent you pinned: check the fingerprint",
    );
  }
}

/**
 * One HTTP/1.1 request over node:tls (`Connection: close`). With `pin`, the server certificate's
 * SHA-256 fingerprint is checked right after the handshake, before anything is sent (Bun's fetch
 * does not call `checkServerIdentity` when certificate verification is off, so it cannot pin a
 * self-signed certificate). Returns the certificate (DER) and fingerprint the connection saw.
 */
export function tlsRequest(
  url: string,
  method: "GET" | "POST",
  path: string,
  pin: string | null,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; text: string; fingerprint: string; certificate: Buffer }> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const port = Number(u.port || 443);
  let fingerprint = "";
  let certificate = Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    const sock = tlsConnect({ host, port, rejectUnauthorized: false }, () => {
      const peer = sock.getPeerCertificate();
      fingerprint = normFp(peer?.fingerprint256 ?? "");
      certificate = peer?.raw ?? certificate;
      if (pin !== null && fingerprint !== normFp(pin)) {
        sock.destroy();
        reject(new PinMismatchError(url, fingerprint, normFp(pin)));
        return;
      }
      const head = [
        `${method} ${path} HTTP/1.1`,
        `Host: ${u.host}`,
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
        ...(method === "POST" ? [`Content-Length: ${Buffer.byteLength(body)}`] : []),
        "Connection: close",
        "",
        "",
      ].join("\r\n");
      sock.write(head + body);
    });
    const chunks: Buffer[] = [];
    let size = 0;
    sock.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_RESPONSE_BYTES)
        sock.destroy(new Error(`response larger than ${MAX_RESPONSE_BYTES} bytes`));
      else chunks.push(c);
    });
    sock.on("error", (e: Error) => reject(e));
    sock.setTimeout(15_000, () => sock.destroy(new Error("timed out")));
    sock.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
      if (!m) reject(new Error("malformed HTTP response"));
      else resolve({ status: Number(m[1]), text: decodeBody(raw), fingerprint, certificate });
    });
  });
}

/** Responses read by tlsRequest (a topology push answers with a few bytes; identity < 1 KiB). */
const MAX_RESPONSE_BYTES = 1024 * 1024;

/** The body of a raw HTTP/1.1 response, chunked transfer coding undone. */
function decodeBody(raw: string): string {
  const split = raw.indexOf("\r\n\r\n");
  const head = raw.slice(0, split).toLowerCase();
  const body = raw.slice(split + 4);
  if (!/\r\ntransfer-encoding:\s*chunked/.test(head)) return body;
  let out = "";
  let at = 0;
  for (;;) {
    const eol = body.indexOf("\r\n", at);
    const n = Number.parseInt(body.slice(at, eol), 16);
    if (eol < 0 || !Number.isFinite(n) || n === 0) return out;
    out += body.slice(eol + 2, eol + 2 + n);
    at = eol + 2 + n + 2;
  }
}
