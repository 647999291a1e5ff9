/** Pushing a Topology to an agent: POST /v1/topology with a bearer token, over TCP (http/https) or a unix socket. */
import { connect as tlsConnect } from "node:tls";
import type { Topology } from "../topology/index.ts";

export interface AgentEndpoint {
  /** `http://host:port`, `https://host:port`, or `unix:/path/to.sock`. */
  url: string;
  token: string;
  /** TLS: PEM CA to trust; or skip verification and pin the server certificate's SHA-256 fingerprint. */
  tls?: { ca?: string; fingerprint256?: string; insecureSkipVerify?: boolean };
}

export class PushError extends Error {
  readonly code: "KOSMOS_PUSH_HTTP" | "KOSMOS_PUSH_NETWORK" | "KOSMOS_PUSH_TLS_PIN";
  readonly hint: string;
  readonly status: number | undefined;
  constructor(code: PushError["code"], message: string, hint: string, status?: number) {
    super(message);
    this.name = "PushError";
    this.code = code;
    this.hint = hint;
    this.status = status;
  }
}

export type Pusher = (endpoint: AgentEndpoint, topology: Topology) => Promise<void>;

interface BunFetchInit extends RequestInit {
  unix?: string;
  tls?: {
    rejectUnauthorized?: boolean;
    ca?: string;
    checkServerIdentity?: (host: string, cert: { fingerprint256?: string }) => Error | undefined;
  };
}

/** Normalise "AB:CD:.." / "abcd.." fingerprints for comparison. */
const normFp = (s: string): string => s.replace(/:/g, "").toLowerCase();

/**
 * HTTPS POST over node:tls with the server certificate's SHA-256 fingerprint checked right after the
 * handshake, before anything is sent (Bun's fetch does not call `checkServerIdentity` when certificate
 * verification is off, so it cannot pin a self-signed certificate). HTTP/1.1, `Connection: close`.
 */
export function pinnedPost(
  url: string,
  path: string,
  pin: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; text: string }> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const port = Number(u.port || 443);
  return new Promise((resolve, reject) => {
    const sock = tlsConnect({ host, port, rejectUnauthorized: false }, () => {
      const fp = sock.getPeerCertificate()?.fingerprint256 ?? "";
      if (normFp(fp) !== normFp(pin)) {
        sock.destroy();
        reject(
          new PushError(
            "KOSMOS_PUSH_TLS_PIN",
            `agent ${url} certificate fingerprint ${normFp(fp).slice(0, 16)}… does not match the pinned ${normFp(pin).slice(0, 16)}…`,
            "check the agent fingerprint (kosmos.io/agent-fingerprint annotation or --agent)",
          ),
        );
        return;
      }
      const head = [
        `POST ${path} HTTP/1.1`,
        `Host: ${u.host}`,
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
        `Content-Length: ${Buffer.byteLength(body)}`,
        "Connection: close",
        "",
        "",
      ].join("\r\n");
      sock.write(head + body);
    });
    const chunks: Buffer[] = [];
    sock.on("data", (c: Buffer) => chunks.push(c));
    sock.on("error", (e: Error) => reject(e));
    sock.setTimeout(15_000, () => sock.destroy(new Error("timed out")));
    sock.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
      if (!m) reject(new Error("malformed HTTP response"));
      else resolve({ status: Number(m[1]), text: raw.slice(raw.indexOf("\r\n\r\n") + 4) });
    });
  });
}

/** The default pusher: Bun fetch, unix sockets via `fetch(url, { unix })`; pinned TLS via `pinnedPost`. */
export const fetchPusher: Pusher = async (endpoint, topology) => {
  const pin = endpoint.tls?.fingerprint256;
  if (pin && endpoint.url.startsWith("https:")) {
    let r: { status: number; text: string };
    try {
      r = await pinnedPost(
        endpoint.url.replace(/\/+$/, ""),
        "/v1/topology",
        pin,
        { "content-type": "application/json", authorization: `Bearer ${endpoint.token}` },
        JSON.stringify(topology),
      );
    } catch (e) {
      if (e instanceof PushError) throw e;
      throw new PushError(
        "KOSMOS_PUSH_NETWORK",
        `cannot reach agent ${endpoint.url}: ${(e as Error).message}`,
        "is the agent running and reachable on its node IP and port?",
      );
    }
    if (r.status < 200 || r.status > 299) {
      throw new PushError(
        "KOSMOS_PUSH_HTTP",
        `agent ${endpoint.url} answered ${r.status}: ${r.text.slice(0, 200)}`,
        r.status === 401 || r.status === 403 ? "check the agent token" : "see the agent's log",
        r.status,
      );
    }
    return;
  }
  let url = endpoint.url;
  const init: BunFetchInit = {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${endpoint.token}` },
    body: JSON.stringify(topology),
  };
  if (url.startsWith("unix:")) {
    init.unix = url.slice("unix:".length);
    url = "http://localhost/v1/topology";
  } else {
    url = `${url.replace(/\/+$/, "")}/v1/topology`;
  }
  if (endpoint.tls) {
    const pin = endpoint.tls.fingerprint256;
    init.tls = {
      rejectUnauthorized: !(endpoint.tls.insecureSkipVerify || pin),
      ...(endpoint.tls.ca ? { ca: endpoint.tls.ca } : {}),
      ...(pin
        ? {
            checkServerIdentity: (_host, cert) =>
              cert.fingerprint256 && normFp(cert.fingerprint256) === normFp(pin)
                ? undefined
                : new PushError(
                    "KOSMOS_PUSH_TLS_PIN",
                    "agent certificate fingerprint mismatch",
                    "check --agent fingerprint",
                  ),
          }
        : {}),
    };
  }
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw new PushError(
      "KOSMOS_PUSH_NETWORK",
      `cannot reach agent ${endpoint.url}: ${(e as Error).message}`,
      "is the agent running and is its address in the controller's --agent list?",
    );
  }
  if (!res.ok) {
    const text = await res.text().catch(() => "");
    throw new PushError(
      "KOSMOS_PUSH_HTTP",
      `agent ${endpoint.url} answered ${res.status}: ${text.slice(0, 200)}`,
      res.status === 401 || res.status === 403 ? "check the agent token" : "see the agent's log",
      res.status,
    );
  }
};
