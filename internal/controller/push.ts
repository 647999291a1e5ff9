/** Pushing a Topology to an agent: POST /v1/topology with a bearer token, over TCP (http/https) or a unix socket. */
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

/** The default pusher: Bun fetch, unix sockets via `fetch(url, { unix })`. */
export const fetchPusher: Pusher = async (endpoint, topology) => {
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
