/**
 * Agent identity proof: how a client that holds the agents' bearer token but no certificate pin
 * learns, without trusting the network and without sending the token, which self-signed
 * certificate belongs to the agent.
 *
 * One exchange (`POST /v1/identity`, no credentials), a PAKE keyed by the token (pake.ts):
 *   client → { share: hex X25519(x, G(token)) }
 *   agent  ← { node, fingerprint256, proofs: [{ share: hex Y, confirm: hex tag }] }  (one per token)
 * with K = X25519(y, X) = X25519(x, Y) and tag = HMAC-SHA256(ISK, "agent-confirm"), where ISK =
 * SHA-512(label, certificate fingerprint, node, X, Y, K). The client takes the fingerprint from
 * its own TLS connection, so a proof checks only if the agent that made it holds the token and
 * the certificate of that connection; a machine in the middle can relay the exchange, but the
 * fingerprint it shows differs from the one the agent bound into the tag.
 *
 * Guessing: the answer tells an attacker (playing the client) whether the one guess its share
 * was made from is right, and nothing else; playing the agent, it learns nothing (a client sends
 * nothing derived from the token but a uniformly random point). So tokens can only be guessed
 * online, one per exchange, and every exchange counts as a failed authentication for the client
 * address in the agent's rate limiter (auth.ts), until that address authenticates. `GET
 * /v1/identity` names the node and fingerprint only.
 */
import { KosmosError } from "../errors/index.ts";
import { createHash, createHmac, timingSafeEqual, X509Certificate } from "node:crypto";
import { generatorFor, lengthPrefixed, newShare, x25519 } from "./pake.ts";
import { tlsRequest } from "./tls-request.ts";
import { normalizeFingerprint as normalizeFp } from "./tls.ts";

export const IDENTITY_PATH = "/v1/identity";
/** Domain separation of the generators and transcripts (v1 was a public HMAC of the fingerprint). */
const LABEL = "kosmos-agent-identity/v2";
/** Proofs an agent answers with (one per token) and a client looks at. */
const MAX_PROOFS = 16;

export interface IdentityAnswer {
  node: string;
  /** lowercase hex, no colons */
  fingerprint256: string;
  proofs: { share: string; confirm: string }[];
}

const HEX64 = /^[0-9a-f]{64}$/;

function confirmTag(fp: string, node: string, x: Uint8Array, y: Uint8Array, k: Uint8Array): Buffer {
  const isk = createHash("sha512")
    .update(lengthPrefixed(LABEL, "isk", Buffer.from(fp, "hex"), node, x, y, k))
    .digest();
  return createHmac("sha256", isk).update(`${LABEL}/agent-confirm`).digest();
}

export class IdentityError extends KosmosError<"IDENTITY_BAD_REQUEST"> {
  constructor(message: string) {
    super(
      "IDENTITY_BAD_REQUEST",
      message,
      'POST {"share": "<64 hex: an X25519 u-coordinate>"} (internal/api/identity.ts)',
    );
  }
}

/**
 * The agent's side: generators of its tokens computed once; `answer` makes a fresh proof per
 * token for a client share. Throws IdentityError on a malformed or low-order share.
 */
export class IdentityResponder {
  private readonly fp: string;
  private readonly generators: Uint8Array[];

  constructor(
    readonly node: string,
    fingerprint256: string,
    tokens: readonly string[],
  ) {
    this.fp = normalizeFp(fingerprint256);
    this.generators = tokens.slice(0, MAX_PROOFS).map((t) => generatorFor(LABEL, t));
  }

  /** What GET /v1/identity shows: the node and its certificate, no proof. */
  describe(): { node: string; fingerprint256: string } {
    return { node: this.node, fingerprint256: this.fp };
  }

  answer(body: unknown): IdentityAnswer {
    const hex = (body as { share?: unknown } | null)?.share;
    if (typeof hex !== "string" || !HEX64.test(hex))
      throw new IdentityError("identity exchange: share must be 64 lowercase hex characters");
    const x = Buffer.from(hex, "hex");
    const proofs = this.generators.map((g) => {
      const { scalar, share: y } = newShare(g);
      const k = x25519(scalar, x);
      if (!k) throw new IdentityError("identity exchange: the share is a low-order point");
      return {
        share: Buffer.from(y).toString("hex"),
        confirm: confirmTag(this.fp, this.node, x, y, k).toString("hex"),
      };
    });
    return { node: this.node, fingerprint256: this.fp, proofs };
  }
}

/** The client's side of one exchange: the share to send, and the check of the answer. */
export function identityOffer(token: string): {
  share: string;
  /** Whether `answer` proves, under the token, the certificate `observedFp` of this connection. */
  verify(answer: unknown, observedFp: string): boolean;
} {
  const { scalar, share: x } = newShare(generatorFor(LABEL, token));
  return {
    share: Buffer.from(x).toString("hex"),
    verify(answer, observedFp) {
      const a = answer as Partial<IdentityAnswer> | null;
      const fp = normalizeFp(observedFp);
      if (!a || typeof a.node !== "string" || !Array.isArray(a.proofs) || fp.length !== 64) return false;
      let ok = false;
      for (const p of a.proofs.slice(0, MAX_PROOFS)) {
        if (typeof p?.share !== "string" || typeof p.confirm !== "string") continue;
        if (!HEX64.test(p.share) || !HEX64.test(p.confirm)) continue;
        const y = Buffer.from(p.share, "hex");
        const k = x25519(scalar, y);
        if (!k) continue;
        // no early exit: every proof is checked
        if (timingSafeEqual(confirmTag(fp, a.node, x, y, k), Buffer.from(p.confirm, "hex"))) ok = true;
      }
      return ok;
    },
  };
}

export interface IdentityCheck {
  /** HTTP status of `POST /v1/identity` (401/404/405: an agent without the exchange). */
  status: number;
  /** The certificate of the connection the exchange ran on: fingerprint and PEM. */
  fingerprint: string;
  certificatePem: string;
  /** The answer proves that certificate under the token. */
  proven: boolean;
}

/**
 * Run the identity exchange with `url` (https://host:port) over one TLS connection whose
 * certificate is not verified, and check the answer against that connection's certificate and
 * `token`. Network errors are thrown as they are.
 */
export async function checkIdentity(url: string, token: string): Promise<IdentityCheck> {
  const offer = identityOffer(token);
  const r = await tlsRequest(
    url,
    "POST",
    IDENTITY_PATH,
    null,
    { accept: "application/json", "content-type": "application/json" },
    JSON.stringify({ share: offer.share }),
  );
  let answer: unknown = null;
  try {
    answer = JSON.parse(r.text);
  } catch {
    // not an answer: unproven
  }
  return {
    status: r.status,
    fingerprint: r.fingerprint,
    certificatePem: r.certificate.length > 0 ? new X509Certificate(r.certificate).toString() : "",
    proven: r.status === 200 && offer.verify(answer, r.fingerprint),
  };
}
