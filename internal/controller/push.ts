/** Pushing a Topology to an agent: POST /v1/topology with a bearer token, over TCP (http/https) or a unix socket. */
import { KosmosError } from "../errors/index.ts";
import {
  checkIdentity,
  IDENTITY_PATH,
  normalizeFingerprint as normFp,
  PinMismatchError,
  tlsRequest,
} from "../api/index.ts";
import type { Topology } from "../topology/index.ts";

export interface AgentEndpoint {
  /** `http://host:port`, `https://host:port`, or `unix:/path/to.sock`. */
  url: string;
  token: string;
  /**
   * TLS: PEM CA to trust; or pin the server certificate's SHA-256 fingerprint; or skip verification
   * (explicitly). None of them on an https URL: the agent proves its certificate with the token
   * first (the `POST /v1/identity` exchange, api/identity.ts), and only then is the token sent.
   */
  tls?: { ca?: string; fingerprint256?: string; insecureSkipVerify?: boolean };
}

export class PushError extends KosmosError<
  "KOSMOS_PUSH_HTTP" | "KOSMOS_PUSH_NETWORK" | "KOSMOS_PUSH_TLS_PIN" | "KOSMOS_PUSH_TLS_IDENTITY"
> {
  override name = "PushError";
  readonly status: number | undefined;
  constructor(code: PushError["code"], message: string, hint: string, status?: number) {
    super(code, message, hint);
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

/** HTTPS POST with the certificate pinned (see tlsRequest). */
export async function pinnedPost(
  url: string,
  path: string,
  pin: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; text: string }> {
  try {
    const r = await tlsRequest(url, "POST", path, pin, headers, body);
    return { status: r.status, text: r.text };
  } catch (e) {
    if (e instanceof PinMismatchError)
      throw new PushError(
        "KOSMOS_PUSH_TLS_PIN",
        e.message,
        "check the agent fingerprint (kosmos.io/agent-fingerprint annotation or --agent)",
      );
    throw e;
  }
}

/** Certificates proven through the agents' identity exchanges, per agent URL (see learnPin). */
const provenPins = new Map<string, string>();

/**
 * The fingerprint of an agent's certificate, proven with the token (api/identity.ts): run the
 * identity exchange without credentials and check that the agent's proof binds the certificate
 * this connection saw under our token. Remembered per URL until a pinned request fails (the
 * agent's certificate changed: it is proven again).
 */
async function learnPin(endpoint: AgentEndpoint, url: string): Promise<{ pin: string; cached: boolean }> {
  const cached = provenPins.get(url);
  if (cached) return { pin: cached, cached: true };
  const r = await checkIdentity(url, endpoint.token);
  if (r.status === 429)
    throw new PushError(
      "KOSMOS_PUSH_TLS_IDENTITY",
      `agent ${url} refused the identity exchange: too many failed authentications or identity exchanges from this address`,
      "it is retried with backoff; every exchange counts as a guess until this address authenticates (or pin with the kosmos.io/agent-fingerprint annotation)",
      r.status,
    );
  if (r.status !== 200)
    throw new PushError(
      "KOSMOS_PUSH_TLS_IDENTITY",
      `agent ${url} has no identity exchange (POST ${IDENTITY_PATH} answered ${r.status})`,
      "an agent older than the controller: pin its certificate with the kosmos.io/agent-fingerprint annotation",
      r.status,
    );
  if (!r.proven)
    throw new PushError(
      "KOSMOS_PUSH_TLS_IDENTITY",
      `agent ${url} did not prove its certificate ${r.fingerprint.slice(0, 16)}… with the controller's token: nothing was sent`,
      "the agent has another token, or something between the controller and the node answers in its place",
    );
  provenPins.set(url, r.fingerprint);
  return { pin: r.fingerprint, cached: false };
}

/**
 * The SHA-256 fingerprint of the certificate an https agent proves with `endpoint.token` (a fresh
 * proof, nothing remembered); throws a KOSMOS_PUSH_TLS_IDENTITY PushError when it cannot.
 */
export async function proveAgentCertificate(endpoint: AgentEndpoint): Promise<string> {
  const url = endpoint.url.replace(/\/+$/, "");
  provenPins.delete(url);
  try {
    return (await learnPin(endpoint, url)).pin;
  } catch (e) {
    if (e instanceof PushError) throw e;
    throw new PushError(
      "KOSMOS_PUSH_NETWORK",
      `cannot reach agent ${url}: ${(e as Error).message}`,
      "is the agent running and reachable on its node IP and port?",
    );
  }
}

/** Forget the proven certificates (tests). */
export function forgetProvenPins(): void {
  provenPins.clear();
}

/** The default pusher: Bun fetch, unix sockets via `fetch(url, { unix })`; pinned TLS via `pinnedPost`. */
export const fetchPusher: Pusher = async (endpoint, topology) => {
  const https = endpoint.url.startsWith("https:");
  const base = endpoint.url.replace(/\/+$/, "");
  let pin = endpoint.tls?.fingerprint256;
  // no pin, no CA, verification not explicitly off: prove the certificate with the token first
  const prove = https && !pin && !endpoint.tls?.ca && !endpoint.tls?.insecureSkipVerify;
  if (https && (pin || prove)) {
    let r: { status: number; text: string };
    try {
      const post = (p: string) =>
        pinnedPost(
          base,
          "/v1/topology",
          p,
          { "content-type": "application/json", authorization: `Bearer ${endpoint.token}` },
          JSON.stringify(topology),
        );
      if (prove) {
        const learned = await learnPin(endpoint, base);
        pin = learned.pin;
        try {
          r = await post(pin);
        } catch (e) {
          if (!(learned.cached && e instanceof PushError && e.code === "KOSMOS_PUSH_TLS_PIN")) throw e;
          provenPins.delete(base); // the agent has a new certificate: prove it again
          r = await post((await learnPin(endpoint, base)).pin);
        }
      } else r = await post(pin as string);
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
