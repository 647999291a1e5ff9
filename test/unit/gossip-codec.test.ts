import { describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { Codec, deriveKey, GossipError, type RejectReason } from "../../internal/gossip/index.ts";

const mk = (name: string, secret = "cluster-secret", epoch = 1000, maxFrameBytes?: number) =>
  new Codec({ secret, name, addr: `${name}:7946`, epoch, maxFrameBytes });

function sign(secret: string, body: Uint8Array): Uint8Array {
  const key = deriveKey(secret);
  const v = new Uint8Array([1]);
  const mac = createHmac("sha256", key).update(v).update(body).digest();
  const f = new Uint8Array(33 + body.length);
  f[0] = 1;
  f.set(mac, 1);
  f.set(body, 33);
  return f;
}

function reasonOf(fn: () => unknown): RejectReason | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof GossipError) return e.reason;
    throw e;
  }
  return undefined;
}

describe("gossip codec", () => {
  test("round trip carries sender, address and message", () => {
    const a = mk("a");
    const b = mk("b");
    const env = b.decode(a.encode({ t: "ping", id: 7, to: "b", m: undefined }));
    expect(env.f).toBe("a");
    expect(env.a).toBe("a:7946");
    expect(env.m).toEqual({ t: "ping", id: 7, to: "b" });
  });

  test("forged (other secret), replayed, oversized, malformed, bad version and stale epoch are refused and counted", () => {
    const a = mk("a");
    const b = mk("b", "cluster-secret", 1000, 4096);
    const seen: RejectReason[] = [];
    b.onReject = (r) => seen.push(r);
    const evil = mk("a", "wrong-secret");
    expect(reasonOf(() => b.decode(evil.encode({ t: "join", inc: 0 })))).toBe("forged");
    const f1 = a.encode({ t: "join", inc: 0 });
    b.decode(f1);
    expect(reasonOf(() => b.decode(f1))).toBe("replayed");
    // tampering with the body breaks the MAC
    const f2 = a.encode({ t: "join", inc: 1 });
    const tampered = f2.slice();
    tampered[tampered.length - 3] = (tampered[tampered.length - 3] ?? 0) ^ 1;
    expect(reasonOf(() => b.decode(tampered))).toBe("forged");
    expect(reasonOf(() => b.decode(new Uint8Array(5000)))).toBe("oversized");
    expect(reasonOf(() => b.decode(new Uint8Array(10)))).toBe("malformed");
    expect(reasonOf(() => b.decode(sign("cluster-secret", new TextEncoder().encode("{not json"))))).toBe(
      "malformed",
    );
    const wrongShape = JSON.stringify({ f: "a", a: "x", e: 1000, s: 99, m: { t: "ping", id: -1, to: "b" } });
    expect(reasonOf(() => b.decode(sign("cluster-secret", new TextEncoder().encode(wrongShape))))).toBe(
      "malformed",
    );
    const v2 = f2.slice();
    v2[0] = 2;
    expect(reasonOf(() => b.decode(v2))).toBe("bad-version");
    // a newer process epoch of "a" resets the window; frames of the old epoch are refused after that
    const a2 = mk("a", "cluster-secret", 2000);
    b.decode(a2.encode({ t: "join", inc: 0 }));
    expect(reasonOf(() => b.decode(f2))).toBe("stale-epoch");
    expect(b.stats.rejected).toEqual({
      forged: 2,
      replayed: 1,
      oversized: 1,
      malformed: 3,
      "bad-version": 1,
      "stale-epoch": 1,
    });
    expect(seen.length).toBe(9);
    expect(b.tryDecode(f1)).toBeNull();
  });

  test("replay window accepts reordering inside the window, refuses beyond it", () => {
    const a = mk("a");
    const b = mk("b");
    const frames = Array.from({ length: 100 }, (_, i) => a.encode({ t: "join", inc: i }));
    b.decode(frames[10]!);
    b.decode(frames[5]!); // late but inside the window
    b.decode(frames[99]!);
    expect(reasonOf(() => b.decode(frames[20]!))).toBe("replayed"); // 79 behind > 64
    b.decode(frames[60]!);
    expect(reasonOf(() => b.decode(frames[60]!))).toBe("replayed");
  });

  test("Lifeguard messages: nack, pingReq asking for a nack, and a pingReq of an older sender", () => {
    const a = mk("a");
    const b = mk("b");
    expect(b.decode(a.encode({ t: "nack", id: 42 })).m).toEqual({ t: "nack", id: 42 });
    const req = { t: "pingReq", id: 7, target: "c", addr: "c:7946", nack: true } as const;
    expect(b.decode(a.encode(req)).m).toEqual(req);
    // an older sender's pingReq has no nack field: still accepted (no nack will be sent)
    const old = JSON.stringify({
      f: "a",
      a: "a:7946",
      e: 1000,
      s: 500,
      m: { t: "pingReq", id: 8, target: "c", addr: "c:7946" },
    });
    expect(b.decode(sign("cluster-secret", new TextEncoder().encode(old))).m).toEqual({
      t: "pingReq",
      id: 8,
      target: "c",
      addr: "c:7946",
    });
    // malformed nacks are refused like any other malformed message
    const bad = [
      { t: "nack" },
      { t: "nack", id: -1 },
      { t: "nack", id: "7" },
      { t: "nack", id: 1.5 },
      { t: "pingReq", id: 9, target: "c", addr: "c:7946", nack: "yes" },
    ];
    let seq = 600;
    for (const m of bad) {
      const body = JSON.stringify({ f: "a", a: "a:7946", e: 1000, s: seq++, m });
      expect(reasonOf(() => b.decode(sign("cluster-secret", new TextEncoder().encode(body))))).toBe(
        "malformed",
      );
    }
    // forged nacks (other secret) are refused before parsing
    expect(reasonOf(() => b.decode(mk("a", "wrong").encode({ t: "nack", id: 1 })))).toBe("forged");
    expect(b.stats.rejected.malformed).toBe(bad.length);
  });

  test("refuses to produce an oversized frame", () => {
    const a = mk("a", "s", 1, 2048);
    const rows = Array.from({ length: 100 }, (_, i) => ({
      table: "t",
      key: `k${i}`,
      owner: "a",
      version: i,
      deleted: false,
      data: { pad: "x".repeat(50) },
    }));
    expect(() => a.encode({ t: "rows", rows })).toThrow(GossipError);
  });
});
