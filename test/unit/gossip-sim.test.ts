import { describe, expect, test } from "bun:test";
import { Codec, converged, type GossipNode, Sim } from "../../internal/gossip/index.ts";
import type { MemberState } from "../../internal/topology/model.ts";
import { CONTROLLER_OWNER, type ReplicatedRow } from "../../internal/store/replicated.ts";

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
  const T = 20_000;
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
