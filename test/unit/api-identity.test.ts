import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { IdentityError, IdentityResponder, identityOffer } from "../../internal/api/identity.ts";
import { elligator2, encodeU, x25519 } from "../../internal/api/pake.ts";

const hexLE = (x: bigint) => Buffer.from(encodeU(x)).toString("hex");
const FP = "ab".repeat(32);
const OTHER_FP = "cd".repeat(32);
const TOKEN = "identity-token-0123456789abcdef";

describe("PAKE building blocks", () => {
  test("Elligator 2 onto curve25519 gives RFC 9380's map outputs (J.4.2: u0 -> Q.x)", () => {
    for (const [u, qx] of [
      [
        "608d892b641f0328523802a6603427c26e55e6f27e71a91a478148d45b5093cd",
        "51125222da5e763d97f3c10fcc92ea6860b9ccbbd2eb1285728f566721c1e65b",
      ],
      [
        "46f5b22494bfeaa7f232cc8d054be68561af50230234d7d1d63d1d9abeca8da5",
        "7d56d1e08cb0ccb92baf069c18c49bb5a0dcd927eff8dcf75ca921ef7f3e6eeb",
      ],
    ] as const)
      expect(
        elligator2(BigInt(`0x${u}`))
          .toString(16)
          .padStart(64, "0"),
      ).toBe(qx);
  });

  test("X25519 on raw u-coordinates (RFC 7748 §5.2); low-order points are refused", () => {
    const k = Buffer.from("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4", "hex");
    const u = Buffer.from("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c", "hex");
    expect(Buffer.from(x25519(k, u) as Uint8Array).toString("hex")).toBe(
      "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
    );
    for (const lowOrder of [0n, 1n]) expect(x25519(randomBytes(32), encodeU(lowOrder))).toBeNull();
    expect(hexLE(9n)).toBe(`09${"00".repeat(31)}`);
  });
});

describe("identity exchange", () => {
  const agent = new IdentityResponder("n1", FP, ["another-token-0123456789", TOKEN]);

  test("the token holder gets a proof of the agent's certificate; one proof per token", () => {
    const offer = identityOffer(TOKEN);
    const answer = agent.answer({ share: offer.share });
    expect(answer.node).toBe("n1");
    expect(answer.fingerprint256).toBe(FP);
    expect(answer.proofs).toHaveLength(2);
    expect(offer.verify(answer, FP)).toBe(true);
    expect(offer.verify(answer, FP.toUpperCase().replace(/(..)(?=.)/g, "$1:"))).toBe(true);
  });

  test("a wrong token, another certificate (a relay in the middle) or a tampered answer prove nothing", () => {
    const wrong = identityOffer("wrong-token-0123456789abcdef");
    expect(wrong.verify(agent.answer({ share: wrong.share }), FP)).toBe(false);
    const offer = identityOffer(TOKEN);
    const answer = agent.answer({ share: offer.share });
    expect(offer.verify(answer, OTHER_FP)).toBe(false);
    expect(offer.verify({ ...answer, node: "n2" }, FP)).toBe(false);
    const flipped = answer.proofs.map((p) => ({
      ...p,
      confirm: `${p.confirm.slice(0, 63)}${p.confirm[63] === "0" ? "1" : "0"}`,
    }));
    expect(offer.verify({ ...answer, proofs: flipped }, FP)).toBe(false);
    for (const junk of [null, {}, { node: "n1", proofs: "x" }, { node: "n1", proofs: [{ share: 1 }] }])
      expect(offer.verify(junk, FP)).toBe(false);
  });

  test("an answer only settles the one guess its share was made from: no offline test of another token", () => {
    // an attacker plays the client with a share made from its guess; the answer verifies neither
    // under that guess nor under the real token (whose check needs a share of its own: a new exchange)
    const guess = identityOffer("guess-0123456789abcdef");
    const answer = agent.answer({ share: guess.share });
    expect(guess.verify(answer, FP)).toBe(false);
    expect(identityOffer(TOKEN).verify(answer, FP)).toBe(false);
    // and GET shows no proof at all
    expect(Object.keys(agent.describe()).sort()).toEqual(["fingerprint256", "node"]);
  });

  test("malformed and low-order shares are refused with IdentityError", () => {
    for (const body of [null, {}, { share: "zz" }, { share: "AB".repeat(32) }, { share: 7 }])
      expect(() => agent.answer(body)).toThrow(IdentityError);
    for (const lowOrder of [0n, 1n])
      expect(() => agent.answer({ share: hexLE(lowOrder) })).toThrow(/low-order/);
  });
});
