import { describe, expect, test } from "bun:test";
import { Codec, GossipNode, MemoryReplica } from "../../internal/gossip/index.ts";
import { type Clock, seededRandom } from "../../internal/gossip/ports.ts";

/** Virtual time: timers run when advance() passes their deadline (in deadline order). */
function manualClock(): Clock & { advance(ms: number): void } {
  let now = 0;
  let seq = 0;
  const timers = new Map<number, { at: number; cb: () => void }>();
  return {
    now: () => now,
    setTimer(ms, cb) {
      const id = seq++;
      timers.set(id, { at: now + Math.max(0, ms), cb });
      return () => timers.delete(id);
    },
    advance(ms) {
      const end = now + ms;
      for (;;) {
        let next: [number, { at: number; cb: () => void }] | undefined;
        for (const e of timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
        if (!next) break;
        timers.delete(next[0]);
        now = next[1].at;
        next[1].cb();
      }
      now = end;
    },
  };
}

describe("probe rounds", () => {
  test("an isolated node with 1,006 dead members (not a multiple of the sweep's 10 pings per tick) neither shuffles nor scans them on its probe ticks", () => {
    const clock = manualClock();
    const rnd = seededRandom(7);
    let draws = 0;
    const random = {
      next: () => {
        draws += 1;
        return rnd.next();
      },
    };
    const pings = new Map<string, number>();
    const node = new GossipNode({
      name: "self",
      addr: "self",
      secret: "k",
      // nobody answers (addresses of nodes that run no agent)
      transport: { send: (to) => pings.set(to, (pings.get(to) ?? 0) + 1), onMessage: () => {} },
      clock,
      random,
      replica: new MemoryReplica(),
      members: Array.from({ length: 1006 }, (_, i) => ({ name: `px-${i}`, addr: `px-${i}` })),
      config: { probeIntervalMs: 300, probeTimeoutMs: 150 },
    });
    node.start();
    // every unconfirmed member is pinged unconfirmedPings (2) times at 32/s, then declared dead
    clock.advance(120_000);
    expect(node.memberList().filter((m) => m.state === "dead")).toHaveLength(1006);
    expect(pings.size).toBe(1006);
    const before = draws;
    const probes = node.stats.probes;
    // member lookups (Map.get) over the next 100 probe ticks: the work of a tick, not its time
    let lookups = 0;
    const get = Map.prototype.get;
    Map.prototype.get = function (this: Map<unknown, unknown>, k: unknown) {
      lookups += 1;
      return get.call(this, k);
    };
    try {
      clock.advance(30_000);
    } finally {
      Map.prototype.get = get;
    }
    // the reconnect tick (every 5 s) draws one jitter per dead member it contacts; a probe round
    // over every member (the previous behaviour) drew ~1,000 per tick
    expect(draws - before).toBeLessThan(50);
    expect(node.stats.probes).toBe(probes);
    // the sweep of unconfirmed members is done (its list pruned): no scan of the 1,006 per tick
    // (before: ~2,000 lookups per tick in the sweep, as many in the probe)
    expect(lookups).toBeLessThan(100 * 20);
    node.stop();
  });

  test("with 200 dead members listed, a round still probes each live member once", () => {
    const clock = manualClock();
    const reader = new Codec({ secret: "k", name: "reader", addr: "reader", epoch: 0 });
    const sent: string[] = [];
    const node = new GossipNode({
      name: "self",
      addr: "self",
      secret: "k",
      transport: {
        // probe pings name their target (the sweep's pings go to px-*, gossip rounds send pushes)
        send: (to, bytes) => {
          const m = reader.tryDecode(bytes)?.m;
          if (m?.t === "ping" && m.to === to) sent.push(to);
        },
        onMessage: () => {},
      },
      clock,
      random: seededRandom(3),
      replica: new MemoryReplica(),
      members: [
        ...["a", "b", "c"].map((n) => ({ name: n, addr: n, confirmed: true })),
        ...Array.from({ length: 200 }, (_, i) => ({ name: `px-${i}`, addr: `px-${i}` })),
      ],
      // no suspicion within the window and fixed probe intervals (no Lifeguard): silent live
      // members stay live and ticks come every 300 ms (nothing answers here)
      config: {
        probeIntervalMs: 300,
        probeTimeoutMs: 150,
        suspicionMult: 1000,
        indirectChecks: 0,
        lifeguard: false,
      },
    });
    node.start();
    const probed = (): string[] => sent.filter((to) => ["a", "b", "c"].includes(to));
    clock.advance(2700); // nine probe ticks (the first one within 300 ms of the start): three rounds
    const ticks = probed();
    expect(ticks).toHaveLength(9);
    for (let r = 0; r < 3; r++) expect(ticks.slice(3 * r, 3 * r + 3).sort()).toEqual(["a", "b", "c"]);
    node.stop();
  });
});
