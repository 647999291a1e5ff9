import { describe, expect, test } from "bun:test";
import { renderNft } from "../../internal/dataplane/nft.ts";
import { fnv1a64 } from "../../internal/dataplane/normalize.ts";
import { emptyHostState } from "../../internal/dataplane/index.ts";

/** The textbook definition (BigInt), which the limb implementation must match digit for digit. */
function reference(s: string): string {
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < s.length; i++) {
    h ^= BigInt(s.charCodeAt(i));
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, "0");
}

describe("fnv1a64 (nft table hash)", () => {
  test("matches the BigInt definition on known and random strings, non-ASCII code units included", () => {
    expect(fnv1a64("")).toBe("cbf29ce484222325");
    expect(fnv1a64("a")).toBe("af63dc4c8601ec8c"); // published FNV-1a 64 test vector
    expect(fnv1a64("foobar")).toBe("85944171f73967e8");
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let k = 0; k < 2000; k++) {
      let s = "";
      const len = rnd() % 80;
      for (let i = 0; i < len; i++)
        s += String.fromCharCode(rnd() % 5 === 0 ? rnd() % 0x10000 : 32 + (rnd() % 95));
      expect(fnv1a64(s)).toBe(reference(s));
    }
  });

  test("the rendered nft script keeps its hash (tables written by older agents stay current)", () => {
    const { nft } = emptyHostState("n1", "c1");
    const r = renderNft(nft);
    expect(r.script).toContain(`comment "kosmos:${r.hash}"`);
    const body = r.script.slice(r.script.indexOf(`"kosmos:${r.hash}"\n`) + `"kosmos:${r.hash}"\n`.length, -2);
    expect(r.hash).toBe(reference(body));
  });
});
