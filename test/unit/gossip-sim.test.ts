import { describe, expect, test } from "bun:test";
import { AGENT_GOSSIP_CONFIG } from "../../internal/agent/gossip.ts";
import { Codec, converged, type GossipNode, Sim } from "../../internal/gossip/index.ts";
import type { MemberState } from "../../internal/topology/model.ts";
import { CONTROLLER_OWNER, type ReplicatedRow } from "../../internal/gossip/index.ts";

const N = 100;

function row(owner: string, key: string, version: number, table = "nodes"): ReplicatedRow {
  return { table, key, owner, version, deleted: false, data: { v: version } };
}

function write(sim: Sim, name: string, rows: ReplicatedRow[]): void {
  sim.replica(name).merge(rows);
  sim.node(name).publish(rows);
}

function allSee(sim: Sim, about: string, state: MemberState, except: string[] = []): boolean {
  return sim
    .upNodes()
    .every((n) => n === about || except.includes(n) || sim.node(n).memberState(about) === state);
}

describe("gossip in the simulator (100 agents)", () => {
  const T = 120_000; // a budget for a loaded CI machine: the 100-agent runs are pure CPU (35 s each at load average 50)
  test(
    "seeded controller rows and every node's own row converge everywhere, under 1% loss",
    () => {
      const sim = new Sim({ seed: 11, loss: 0.01 });
      const names = sim.addNodes(N);
      sim.run(1000);
      const seed = Array.from({ length: 500 }, (_, i) =>
        row(CONTROLLER_OWNER, `c${i}`, 1000 + i, "clusters"),
      );
      write(sim, "n0", seed);
      for (const n of names) write(sim, n, [row(n, n, 5000)]);
      expect(sim.runUntil(() => converged(sim), 30_000)).toBe(true);
      for (const n of names) expect(sim.replica(n).rowsOf(CONTROLLER_OWNER).length).toBe(500);
      expect(sim.replica("n42").digest().length).toBe(N + 1);
    },
    T,
  );

  test(
    "partition: each side declares the other dead; heal: membership and rows reconverge",
    () => {
      const sim = new Sim({ seed: 2 });
      const names = sim.addNodes(N);
      sim.run(1000);
      const a = names.slice(0, 50);
      const b = names.slice(50);
      sim.partition([a, b]);
      expect(sim.runUntil(() => a.every((x) => sim.node(x).memberState("n77") === "dead"), 30_000)).toBe(
        true,
      );
      write(sim, "n3", [row("n3", "n3", 9000)]);
      write(sim, "n60", [row("n60", "n60", 9001)]);
      sim.run(3000);
      expect(sim.replica("n60").rowsOf("n3").length).toBe(0);
      sim.heal();
      const healed = () =>
        names.every((x) => names.every((y) => x === y || sim.node(x).memberState(y) === "alive")) &&
        converged(sim);
      expect(sim.runUntil(healed, 60_000, 200)).toBe(true);
      expect(sim.replica("n60").rowsOf("n3").length).toBe(1);
      expect(sim.replica("n3").rowsOf("n60").length).toBe(1);
    },
    T,
  );

  test(
    "crash is detected (dead everywhere), restart with empty state is re-admitted and catches up",
    () => {
      const sim = new Sim({ seed: 3 });
      sim.addNodes(N);
      sim.run(1000);
      write(sim, "n1", [row("n1", "n1", 100)]);
      sim.run(2000);
      sim.crash("n7");
      expect(sim.runUntil(() => allSee(sim, "n7", "dead"), 20_000)).toBe(true);
      const deadInc = sim
        .node("n0")
        .memberList()
        .find((m) => m.name === "n7")!.incarnation;
      const fresh = sim.restart("n7", { keepReplica: false, seeds: ["n0"], incarnation: 0 });
      expect(sim.runUntil(() => allSee(sim, "n7", "alive") && converged(sim), 20_000)).toBe(true);
      expect(fresh.currentIncarnation).toBeGreaterThan(deadInc);
      expect(sim.replica("n7").rowsOf("n1").length).toBe(1);
    },
    T,
  );

  test(
    "false positives stay rare under 5% loss (Lifeguard suspicion, refutation)",
    () => {
      const sim = new Sim({ seed: 4, loss: 0.05 });
      const names = sim.addNodes(N);
      const deaths: string[] = [];
      for (const n of names)
        sim.node(n).onMemberChange((who, st) => st === "dead" && deaths.push(`${n}:${who}`));
      sim.run(30_000);
      // 100 agents x 60 probes each = 6000 probes at 5% loss per frame
      expect(deaths.length).toBeLessThanOrEqual(1);
      expect(names.every((x) => names.every((y) => x === y || sim.node(x).memberState(y) === "alive"))).toBe(
        true,
      );
    },
    T,
  );

  test(
    "a suspected live node refutes with a higher incarnation and is never declared dead",
    () => {
      const sim = new Sim({ seed: 5, secret: "s3cret" });
      const names = sim.addNodes(N);
      sim.run(1000);
      const liar = new Codec({ secret: "s3cret", name: "n1", addr: "n1", epoch: 1e12 });
      const frame = liar.encode({
        t: "push",
        rows: [],
        m: [{ n: "n3", a: "n3", i: 0, s: "suspect", f: "n1" }],
      });
      sim.inject("n2", frame);
      expect(sim.runUntil(() => sim.node("n2").memberState("n3") === "suspect", 1000, 1)).toBe(true);
      const deaths: string[] = [];
      for (const n of names) sim.node(n).onMemberChange((who, st) => st === "dead" && deaths.push(who));
      expect(
        sim.runUntil(() => allSee(sim, "n3", "alive") && sim.node("n3").currentIncarnation >= 1, 10_000),
      ).toBe(true);
      sim.run(10_000);
      expect(deaths).toEqual([]);
      expect(sim.node("n3").stats.refutations).toBeGreaterThanOrEqual(1);
    },
    T,
  );

  test(
    "graceful leave propagates as 'left' (not dead) and the node stops",
    async () => {
      const sim = new Sim({ seed: 6 });
      sim.addNodes(N);
      sim.run(1000);
      const leaving: GossipNode = sim.node("n9");
      const done = leaving.leave();
      expect(sim.runUntil(() => allSee(sim, "n9", "left", ["n9"]), 10_000)).toBe(true);
      sim.run(2000);
      await done;
      expect(leaving.isRunning).toBe(false);
      sim.run(10_000);
      expect(allSee(sim, "n9", "left", ["n9"])).toBe(true);
    },
    T,
  );

  test(
    "same seed => same run (determinism)",
    () => {
      const run = () => {
        const sim = new Sim({ seed: 9, loss: 0.02 });
        sim.addNodes(30);
        sim.run(500);
        write(sim, "n4", [row("n4", "n4", 1)]);
        sim.run(3000);
        return [sim.totalBytes(), sim.framesSent, sim.framesDropped];
      };
      expect(run()).toEqual(run());
    },
    T,
  );
});

describe("replica members never heard from (phantoms)", () => {
  const T = 30_000;
  const phantoms = Array.from({ length: 200 }, (_, i) => `ghost${i}`);

  test(
    "are declared dead by every agent within a bounded time, pinged a bounded number of times, and never gossiped",
    () => {
      const sim = new Sim({ seed: 21 });
      const real = Array.from({ length: 20 }, (_, i) => `n${i}`);
      for (const n of real) sim.addNode(n, { members: [...real, ...phantoms] });
      const cfg = sim.node("n0").cfg;
      // until then, and until their timeout, phantoms are "suspect" (kept by the planner), never alive
      sim.run(1000);
      expect(sim.node("n0").memberState("ghost7")).toBe("suspect");
      // every real peer is confirmed (direct pings, member lists) before any phantom may be declared dead
      expect(
        sim.runUntil(
          () => real.every((x) => real.every((y) => x === y || sim.node(x).memberState(y) === "alive")),
          cfg.unconfirmedTimeoutMs - 1000,
        ),
      ).toBe(true);
      // bound (from the start): the timeout (the sweep may hold until then while member lists confirm
      // real peers) plus the time to ping each phantom unconfirmedPings times at the sweep rate
      const sweepMs = ((phantoms.length * cfg.unconfirmedPings) / cfg.unconfirmedPingsPerSec) * 1000;
      const bound = cfg.unconfirmedTimeoutMs + sweepMs + 4 * cfg.probeIntervalMs - sim.time;
      const allDead = () => real.every((x) => phantoms.every((p) => sim.node(x).memberState(p) === "dead"));
      expect(sim.runUntil(allDead, bound, 100)).toBe(true);
      for (const x of real) {
        const st = sim.node(x).stats;
        expect(st.unconfirmedDeaths).toBe(phantoms.length);
        expect(st.unconfirmedPings).toBeLessThanOrEqual(
          (phantoms.length + real.length) * cfg.unconfirmedPings,
        );
        // a phantom's death is a local verdict: never announced, so nobody "confirmed" one
        expect(
          sim
            .node(x)
            .memberList()
            .filter((m) => m.confirmed).length,
        ).toBe(real.length - 1);
        expect(st.deathsDeclared).toBe(0);
      }
      // afterwards: at most 1 contact per reconnect tick for all 200 phantoms together
      const before = real.map((x) => sim.node(x).stats.reconnects);
      const pingsBefore = real.map((x) => sim.node(x).stats.unconfirmedPings);
      sim.run(60_000);
      real.forEach((x, i) => {
        expect(sim.node(x).stats.reconnects - before[i]!).toBeLessThanOrEqual(
          60_000 / cfg.reconnectIntervalMs + 1,
        );
        expect(sim.node(x).stats.unconfirmedPings).toBe(pingsBefore[i]!);
      });
      // and the real members are unaffected: still all alive, no suspicion raised among them
      expect(real.every((x) => real.every((y) => x === y || sim.node(x).memberState(y) === "alive"))).toBe(
        true,
      );
    },
    T,
  );

  test(
    "an agent alone with its replica: every peer ends dead, nothing is gossiped, traffic stays bounded",
    () => {
      const sim = new Sim({ seed: 22 });
      const peers = Array.from({ length: 1000 }, (_, i) => `peer${i}`);
      const lone = sim.addNode("lone", { members: ["lone", ...peers], seeds: ["peer0", "peer1"] });
      expect(lone.memberList().every((m) => m.state === "suspect" && !m.confirmed)).toBe(true);
      sim.run(120_000);
      expect(lone.memberList().every((m) => m.state === "dead")).toBe(true);
      const cfg = lone.cfg;
      // 2 pings per peer + the reconnect budget + join retries (backed off) to the two seeds
      const maxFrames = peers.length * cfg.unconfirmedPings + 120_000 / cfg.reconnectIntervalMs + 2 * 2 * 10;
      expect(sim.framesSent).toBeLessThanOrEqual(maxFrames);
      expect(lone.stats.unconfirmedPings).toBe(peers.length * cfg.unconfirmedPings);
    },
    T,
  );

  test(
    "a replica member whose agent starts late (after being declared dead) is re-admitted everywhere",
    () => {
      const sim = new Sim({ seed: 23 });
      const real = Array.from({ length: 10 }, (_, i) => `n${i}`);
      const all = [...real, "late"];
      for (const n of real) sim.addNode(n, { members: all });
      expect(sim.runUntil(() => allSee(sim, "late", "dead"), 20_000)).toBe(true);
      sim.addNode("late", { members: all });
      expect(
        sim.runUntil(
          () =>
            allSee(sim, "late", "alive") &&
            all.every((x) => x === "late" || sim.node("late").memberState(x) === "alive"),
          5000,
        ),
      ).toBe(true);
    },
    T,
  );

  test(
    "a crashed agent restarted with its replica only (no seeds, same incarnation) is re-admitted: its peers tell it it is dead, it refutes",
    () => {
      const sim = new Sim({ seed: 24 });
      const names = sim.addNodes(30);
      sim.run(2000);
      sim.crash("n5");
      expect(sim.runUntil(() => allSee(sim, "n5", "dead"), 20_000)).toBe(true);
      const back = sim.restart("n5", { members: names });
      expect(sim.runUntil(() => allSee(sim, "n5", "alive"), 5000)).toBe(true);
      expect(back.stats.refutations).toBeGreaterThanOrEqual(1);
      expect(names.every((x) => x === "n5" || back.memberState(x) === "alive")).toBe(true);
    },
    T,
  );

  test(
    "an agent that persisted its refuted incarnation (onIncarnation) and restarts above it needs no refutation",
    () => {
      const sim = new Sim({ seed: 25, secret: "s3cret" });
      const names = sim.addNodes(20);
      sim.run(2000);
      const persisted: number[] = [];
      // a failing listener (say, a full disk) does not stop the refutation nor the other listeners
      sim.node("n5").onIncarnation(() => {
        throw new Error("disk full");
      });
      sim.node("n5").onIncarnation((inc) => persisted.push(inc));
      // suspected at incarnation 3 by a liar: n5 refutes at 4 and reports it
      const liar = new Codec({ secret: "s3cret", name: "n1", addr: "n1", epoch: 1e12 });
      sim.inject(
        "n5",
        liar.encode({ t: "push", rows: [], m: [{ n: "n5", a: "n5", i: 3, s: "suspect", f: "n1" }] }),
      );
      sim.run(10);
      expect(persisted).toEqual([4]);
      const incarnationOf5 = (x: string) =>
        sim
          .node(x)
          .memberList()
          .find((m) => m.name === "n5")?.incarnation;
      const everyoneHas4 = () => names.every((x) => x === "n5" || incarnationOf5(x) === 4);
      expect(sim.runUntil(() => allSee(sim, "n5", "alive") && everyoneHas4(), 10_000)).toBe(true);
      sim.crash("n5");
      expect(sim.runUntil(() => allSee(sim, "n5", "dead"), 20_000)).toBe(true);
      // the agent starts at the persisted incarnation + 1 (internal/agent/gossip.ts)
      const back = sim.restart("n5", { members: names, incarnation: (persisted.at(-1) ?? 0) + 1 });
      expect(sim.runUntil(() => allSee(sim, "n5", "alive"), 5000)).toBe(true);
      expect(back.stats.refutations).toBe(0);
    },
    T,
  );
});

describe("Lifeguard", () => {
  const T = 60_000;

  test(
    "helpers nack a silent target: probing a crashed member does not hurt the prober's health",
    () => {
      const sim = new Sim({ seed: 31 });
      const names = sim.addNodes(10);
      sim.run(2000);
      sim.crash("n3");
      expect(sim.runUntil(() => allSee(sim, "n3", "dead"), 20_000)).toBe(true);
      const others = names.filter((n) => n !== "n3");
      expect(others.reduce((a, n) => a + sim.node(n).stats.nacksSent, 0)).toBeGreaterThan(0);
      expect(others.reduce((a, n) => a + sim.node(n).stats.nacksReceived, 0)).toBeGreaterThan(0);
      expect(others.every((n) => sim.node(n).stats.healthMax === 0)).toBe(true);
    },
    T,
  );

  test(
    "a member cut off from everyone raises its local health score (slower probing) and recovers after heal",
    () => {
      const sim = new Sim({ seed: 32 });
      const names = sim.addNodes(10);
      sim.run(2000);
      sim.partition([["n0"], names.slice(1)]);
      sim.run(10_000);
      expect(sim.node("n0").localHealth).toBeGreaterThan(0);
      expect(names.slice(1).every((n) => sim.node(n).localHealth === 0)).toBe(true);
      sim.heal();
      expect(
        sim.runUntil(() => allSee(sim, "n0", "alive") && sim.node("n0").localHealth === 0, 60_000, 200),
      ).toBe(true);
    },
    T,
  );

  test(
    "one member with a starved receive path: Lifeguard cuts the false suspicions and deaths of healthy members",
    () => {
      const run = (lifeguard: boolean) => {
        const sim = new Sim({ seed: 33, config: { ...AGENT_GOSSIP_CONFIG, lifeguard } });
        const names = sim.addNodes(30, "n", { settled: true });
        sim.run(3000);
        const slow = "n0";
        const healthy = new Set(names.filter((n) => n !== slow));
        let suspicions = 0;
        let deaths = 0;
        for (const n of names)
          sim.node(n).onMemberChange((who, st) => {
            if (!healthy.has(who)) return;
            if (st === "suspect") suspicions += 1;
            if (st === "dead") deaths += 1;
          });
        sim.lag(slow, 1200);
        sim.run(30_000);
        return {
          suspicions,
          deaths,
          raised: sim.node(slow).stats.suspicionsRaised,
          health: sim.node(slow).localHealth,
        };
      };
      const on = run(true);
      const off = run(false);
      // without Lifeguard the slow member suspects nearly every member it probes
      expect(off.raised).toBeGreaterThan(20);
      expect(off.suspicions).toBeGreaterThan(100);
      // with it, its health score climbs (it probes less often, with longer timeouts) and it stops
      expect(on.health).toBeGreaterThan(0);
      expect(on.raised * 10).toBeLessThan(off.raised);
      expect(on.suspicions * 10).toBeLessThan(off.suspicions);
      expect(on.deaths).toBe(0);
      expect(on.deaths).toBeLessThanOrEqual(off.deaths);
    },
    T,
  );

  test(
    "a starved member with a bad health score declares no healthy member dead (its suspicions are stretched too)",
    () => {
      // seeds 13 and 16: before the stretch, the starved n0 (health 6) declared a healthy member
      // dead after ~7.7 s, whose refutation it read 2 s late
      for (const seed of [13, 16]) {
        const sim = new Sim({ seed, config: { ...AGENT_GOSSIP_CONFIG } });
        const names = sim.addNodes(100, "n", { settled: true });
        sim.run(3000);
        const dead: string[] = [];
        for (const n of names)
          sim.node(n).onMemberChange((who, st) => {
            if (who !== "n0" && st === "dead") dead.push(`${n} saw ${who}`);
          });
        sim.lag("n0", 2000);
        sim.run(12_000);
        expect(sim.node("n0").localHealth).toBeGreaterThan(2);
        expect(dead).toEqual([]);
      }
    },
    T,
  );
});

describe("forget / addMembers (nodes removed from and re-added to the topology)", () => {
  const T = 60_000;
  const listed = (sim: Sim, on: string, who: string) =>
    sim
      .node(on)
      .memberList()
      .some((m) => m.name === who);

  test(
    "news about unknown members: suspect/dead/left never creates one, alive does (as a join)",
    () => {
      const sim = new Sim({ seed: 41, secret: "s3cret" });
      sim.addNodes(5);
      sim.run(2000);
      const peer = new Codec({ secret: "s3cret", name: "n1", addr: "n1", epoch: 1e12 });
      for (const s of ["suspect", "dead", "left"] as const) {
        sim.inject(
          "n2",
          peer.encode({ t: "push", rows: [], m: [{ n: `ghost-${s}`, a: "x", i: 3, s, f: "n1" }] }),
        );
        sim.inject(
          "n2",
          peer.encode({ t: "members", members: [{ n: `sync-${s}`, a: "x", i: 3, s }], reply: false }),
        );
      }
      sim.run(2000);
      expect(
        sim
          .node("n2")
          .memberList()
          .map((m) => m.name)
          .sort(),
      ).toEqual(["n0", "n1", "n3", "n4"]);
      sim.inject(
        "n2",
        peer.encode({ t: "push", rows: [], m: [{ n: "newcomer", a: "newcomer", i: 0, s: "alive" }] }),
      );
      sim.run(100);
      expect(sim.node("n2").memberState("newcomer")).toBe("alive");
    },
    T,
  );

  test(
    "a crashed member forgotten by every node as it sees it dead (0-3 s later, each its own delay) never comes back",
    () => {
      const sim = new Sim({ seed: 42 });
      const names = sim.addNodes(30);
      sim.run(3000);
      const others = names.filter((n) => n !== "n5");
      const revived: string[] = [];
      let forgets = 0;
      for (const [i, n] of others.entries()) {
        const delay = (i * 3000) / others.length;
        sim.node(n).onMemberChange((who, st) => {
          if (who !== "n5") return;
          if (st === "alive") revived.push(n);
          // the agent's rule: a member not in the topology is forgotten once dead or left
          if (st === "dead" || st === "left")
            sim.schedule(delay, () => {
              if (sim.node(n).forget("n5")) forgets += 1;
            });
        });
      }
      sim.crash("n5");
      expect(sim.runUntil(() => others.every((n) => !listed(sim, n, "n5")), 30_000)).toBe(true);
      expect(forgets).toBe(others.length);
      // peers that forgot later kept gossiping its death (and member lists) meanwhile: ignored
      sim.run(60_000);
      expect(others.filter((n) => listed(sim, n, "n5"))).toEqual([]);
      expect(revived).toEqual([]);
      expect(forgets).toBe(others.length);
      for (const n of others) expect(sim.node(n).stats.forgotten).toBe(1);
      // and the rest of the membership is untouched
      expect(
        others.every((x) => others.every((y) => x === y || sim.node(x).memberState(y) === "alive")),
      ).toBe(true);
    },
    T,
  );

  test(
    "a member that left, forgotten at once everywhere: its goodbye frames do not bring it back",
    async () => {
      const sim = new Sim({ seed: 43 });
      const names = sim.addNodes(20);
      sim.run(3000);
      const others = names.filter((n) => n !== "n9");
      const revived: string[] = [];
      for (const n of others)
        sim.node(n).onMemberChange((who, st) => {
          if (who !== "n9") return;
          if (st === "alive") revived.push(n);
          if (st === "left" || st === "dead") sim.node(n).forget("n9");
        });
      const done = sim.node("n9").leave();
      sim.run(10_000);
      await done;
      expect(others.filter((n) => listed(sim, n, "n9"))).toEqual([]);
      expect(revived).toEqual([]);
    },
    T,
  );

  test(
    "a live member forgotten by one node is re-added by its own frames, at the incarnation it had",
    () => {
      const sim = new Sim({ seed: 44 });
      sim.addNodes(10);
      sim.run(3000);
      const inc = sim.node("n3").currentIncarnation;
      expect(sim.node("n0").forget("n3")).toBe(true);
      expect(listed(sim, "n0", "n3")).toBe(false);
      expect(sim.node("n0").forget("n3")).toBe(false);
      // n3 keeps probing n0 (and gossiping): its first frame re-admits it
      expect(sim.runUntil(() => sim.node("n0").memberState("n3") === "alive", 10_000, 10)).toBe(true);
      const m = sim
        .node("n0")
        .memberList()
        .find((x) => x.name === "n3")!;
      expect(m.confirmed).toBe(true);
      expect(m.incarnation).toBe(inc);
      sim.run(5000);
      expect(sim.node("n0").memberState("n3")).toBe("alive");
      expect(sim.node("n3").currentIncarnation).toBe(inc);
    },
    T,
  );

  test(
    "a forgotten dead member added back (unconfirmed): kept suspect, dead locally if silent, re-admitted everywhere once it runs",
    () => {
      const sim = new Sim({ seed: 45 });
      const names = sim.addNodes(20);
      sim.run(3000);
      const others = names.filter((n) => n !== "n7");
      sim.crash("n7");
      expect(sim.runUntil(() => allSee(sim, "n7", "dead"), 20_000)).toBe(true);
      const deadInc = sim
        .node("n0")
        .memberList()
        .find((m) => m.name === "n7")!.incarnation;
      for (const n of others) sim.node(n).forget("n7");
      sim.run(5000);
      expect(others.filter((n) => listed(sim, n, "n7"))).toEqual([]);
      // added back to the topology while its agent is still down
      for (const n of others) expect(sim.node(n).addMembers([{ name: "n7", addr: "n7" }])).toEqual(["n7"]);
      expect(sim.node("n0").addMembers([{ name: "n7", addr: "n7" }])).toEqual([]);
      const cfg = sim.node("n0").cfg;
      sim.run(cfg.unconfirmedTimeoutMs / 2);
      const info = sim
        .node("n0")
        .memberList()
        .find((m) => m.name === "n7")!;
      expect({ state: info.state, confirmed: info.confirmed }).toEqual({
        state: "suspect",
        confirmed: false,
      });
      expect(sim.node("n0").stats.unconfirmedPings).toBeGreaterThanOrEqual(1);
      expect(sim.runUntil(() => allSee(sim, "n7", "dead"), cfg.unconfirmedTimeoutMs)).toBe(true);
      // its agent starts with an empty replica, no seeds, knowing nobody: the others' pings find it
      const back = sim.restart("n7", { keepReplica: false, incarnation: 0 });
      expect(sim.runUntil(() => allSee(sim, "n7", "alive"), 30_000, 100)).toBe(true);
      for (const n of others)
        expect(
          sim
            .node(n)
            .memberList()
            .find((m) => m.name === "n7")!.confirmed,
        ).toBe(true);
      // it was told it had been forgotten dead and refuted above that incarnation
      expect(back.currentIncarnation).toBeGreaterThan(deadInc);
      // and it learns every member (from those that pinged it, then member-list push-pulls)
      expect(sim.runUntil(() => others.every((n) => back.memberState(n) === "alive"), 20_000, 100)).toBe(
        true,
      );
    },
    T,
  );
});
