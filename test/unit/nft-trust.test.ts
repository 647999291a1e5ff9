/**
 * NftTrust (internal/agent/nft-trust.ts): when a periodic resync may take the nft table as last
 * verified instead of listing it.
 */
import { describe, expect, test } from "bun:test";
import { FULL_NFT_EVERY, NftTrust, SUBSCRIBE_GRACE_MS } from "../../internal/agent/nft-trust.ts";

const MON = 1_000_000;
const LISTED_AT = MON + SUBSCRIBE_GRACE_MS + 500;

function listedOnce(): NftTrust {
  const t = new NftTrust();
  t.record("listed", MON, LISTED_AT);
  return t;
}

describe("NftTrust", () => {
  test("resyncs trust the table while the same monitor runs, and every FULL_NFT_EVERY-th lists it", () => {
    const t = listedOnce();
    const seen: boolean[] = [];
    for (let i = 0; i < 2 * FULL_NFT_EVERY; i++) {
      const trust = t.decide("resync", MON);
      seen.push(trust);
      t.record(trust ? "trusted" : "listed", MON, LISTED_AT + i);
    }
    const pattern = [...Array(FULL_NFT_EVERY - 1).fill(true), false];
    expect(seen).toEqual([...pattern, ...pattern]);
  });

  test("never without a listing first, nor for other passes", () => {
    expect(new NftTrust().decide("resync", MON)).toBe(false);
    const t = listedOnce();
    for (const reason of ["start", "api", "kernel", "replica", "membership"])
      expect(t.decide(reason, MON)).toBe(false);
  });

  test("a monitor restarted since the listing, none running, or one started just before the listing: list", () => {
    const t = listedOnce();
    expect(t.decide("resync", MON + 5_000)).toBe(false);
    expect(t.decide("resync", undefined)).toBe(false);
    const young = new NftTrust();
    young.record("listed", MON, MON + SUBSCRIBE_GRACE_MS - 1);
    expect(young.decide("resync", MON)).toBe(false);
  });

  test("an ignored nft event forces the next resync to list; the listing clears the doubt", () => {
    const t = listedOnce();
    t.ignoredEvent();
    expect(t.decide("resync", MON)).toBe(false);
    t.record("listed", MON, LISTED_AT + 10_000);
    expect(t.decide("resync", MON)).toBe(true);
  });

  test("a pass from memory changes nothing", () => {
    const t = listedOnce();
    t.record("memory", MON, LISTED_AT + 1);
    expect(t.decide("resync", MON)).toBe(true);
  });
});
