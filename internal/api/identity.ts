/**
 * Agent identity proof: how a client that holds the agents' bearer token but no certificate pin
 * learns, without trusting the network, which self-signed certificate belongs to the agent.
 *
 * The agent serves `GET /v1/identity` without authentication:
 *   { node, fingerprint256, proofs: [hex HMAC-SHA256(token, IDENTITY_LABEL + fingerprint256)] }
 * with one proof per bearer token it accepts. The client reads the certificate fingerprint of that
 * TLS connection itself, checks that the document names the same fingerprint and that one proof is
 * the HMAC under its own token, and then pins that fingerprint for the request that carries the
 * token. A machine in the middle can relay the document, but it is bound to the agent's
 * certificate, whose key the middle does not have; it cannot make a proof for its own certificate
 * without the token. Tokens are high-entropy (≥ 16 characters; `kosmosctl install` generates 32
 * random bytes), so the public HMAC does not help guess them.
 */
import { createHmac, timingSafeEqual, X509Certificate } from "node:crypto";
import { tlsRequest } from "./tls-request.ts";
import { normalizeFingerprint as normalizeFp } from "./tls.ts";

export const IDENTITY_PATH = "/v1/identity";
const IDENTITY_LABEL = "kosmos-agent-identity/v1\n";

export interface IdentityDocument {
  node: string;
  /** lowercase hex, no colons */
  fingerprint256: string;
  proofs: string[];
}

export function identityProof(token: string, fingerprint256: string): string {
  return createHmac("sha256", token)
    .update(IDENTITY_LABEL + normalizeFp(fingerprint256))
    .digest("hex");
}

export function identityDocument(node: string, fingerprint256: string, tokens: string[]): IdentityDocument {
  const fp = normalizeFp(fingerprint256);
  return { node, fingerprint256: fp, proofs: tokens.map((t) => identityProof(t, fp)) };
}

/**
 * Whether `doc` proves, under `token`, that `observedFp` (read from the TLS connection that
 * delivered the document) is the agent's certificate. Constant-time comparison of the proofs.
 */
export function verifyIdentity(doc: unknown, observedFp: string, token: string): boolean {
  if (!doc || typeof doc !== "object") return false;
  const d = doc as Partial<IdentityDocument>;
  const fp = normalizeFp(observedFp);
  if (typeof d.fingerprint256 !== "string" || normalizeFp(d.fingerprint256) !== fp || fp.length !== 64)
    return false;
  if (!Array.isArray(d.proofs)) return false;
  const want = Buffer.from(identityProof(token, fp), "hex");
  let ok = false;
  for (const p of d.proofs.slice(0, 16)) {
    if (typeof p !== "string" || !/^[0-9a-f]{64}$/.test(p)) continue;
    if (timingSafeEqual(Buffer.from(p, "hex"), want)) ok = true;
  }
  return ok;
}

export interface IdentityCheck {
  /** HTTP status of `GET /v1/identity` (401/404: an agent without the endpoint). */
  status: number;
  /** The certificate of the connection that delivered the document: fingerprint and PEM. */
  fingerprint: string;
  certificatePem: string;
  /** The document proves that certificate under the token (verifyIdentity). */
  proven: boolean;
}

/**
 * Fetch `GET /v1/identity` from `url` (https://host:port) without credentials, over one TLS
 * connection whose certificate is not verified, and check the document against that connection's
 * certificate and `token`. Network errors are thrown as they are.
 */
export async function checkIdentity(url: string, token: string): Promise<IdentityCheck> {
  const r = await tlsRequest(url, "GET", IDENTITY_PATH, null, { accept: "application/json" }, "");
  let doc: unknown = null;
  try {
    doc = JSON.parse(r.text);
  } catch {
    // not a document: unproven
  }
  return {
    status: r.status,
    fingerprint: r.fingerprint,
    certificatePem: r.certificate.length > 0 ? new X509Certificate(r.certificate).toString() : "",
    proven: r.status === 200 && verifyIdentity(doc, r.fingerprint, token),
  };
}
