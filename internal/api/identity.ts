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
import { createHmac, timingSafeEqual } from "node:crypto";
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
