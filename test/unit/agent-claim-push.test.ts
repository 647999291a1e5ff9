/**
 * pushDirect (internal/agent/gossip.ts): a gateway claim is pushed straight to the nodes of the
 * gateway's cluster, in signed frames the receivers' GossipNodes accept and merge, on top of the
 * random dissemination (which cannot reach nodes that only see their own LAN).
 */
import { describe, expect, test } from "bun:test";
import { AGENT_GOSSIP_CONFIG, DIRECT_PUSH_AT_MS, pushDirect } from "../../internal/agent/gossip.ts";
import { Sim } from "../../internal/gossip/index.ts";
import type { ReplicatedRow } from "../../internal/gossip/index.ts";

const claim = (version: number): ReplicatedRow => ({
  table: "node_status",
  key: "n0",
  owner: "n0",
  version,
  deleted: false,
  data: { name: "n0", gatewayFor: "c2", gatewaySince: version },
});

function started(): Sim {
  const sim = new Sim({ seed: 7 });
  sim.addNodes(5);
  sim.run(3000);
  return sim;
}

describe("pushDirect", () => {
  test("the named members get the rows in one frame each; unknown names are skipped", () => {
    const sim = started();
    const row = claim(1000);
    sim.replica("n0").merge([row]);
    const sent: string[] = [];
    const n = pushDirect(
      sim.node("n0"),
      {
        send: (to, bytes) => {
          sent.push(to);
          sim.inject(to, bytes);
        },
      },
      [row],
      ["n2", "n4", "nobody"],
    );
    expect(n).toBe(2);
    expect(sent.sort()).toEqual(["n2", "n4"]);
    sim.run(5);
    for (const x of ["n2", "n4"]) expect(sim.replica(x).rowsOf("n0")).toContainEqual(row);
  });

  test("members that left are not pushed to; a dead one still is (it may only look dead from here)", () => {
    const sim = started();
    void sim.node("n3").leave();
    sim.crash("n1");
    sim.run(8000);
    expect(sim.node("n0").memberState("n3")).toBe("left");
    expect(sim.node("n0").memberState("n1")).toBe("dead");
    const sent: string[] = [];
    const n = pushDirect(sim.node("n0"), { send: (to) => sent.push(to) }, [claim(2000)], ["n1", "n3"]);
    expect(n).toBe(1);
    expect(sent).toEqual(["n1"]);
  });

  test("a receiver that holds the claimer dead and hears only from it revives it within the push schedule (virtual time)", () => {
    const sim = new Sim({ seed: 7, config: AGENT_GOSSIP_CONFIG });
    sim.addNodes(8);
    sim.run(3000);
    // n0 (the new gateway) was cut off until the others declared it dead ...
    sim.partition([["n0"], ["n1", "n2", "n3", "n4", "n5", "n6", "n7"]]);
    expect(sim.runUntil(() => sim.node("n2").memberState("n0") === "dead", 30_000)).toBe(true);
    // ... and n2 (a node of its cluster that reaches only its LAN) now hears from n0 alone. Plain
    // SWIM takes 0.2-9.7 s (30 seeds) to revive n0 there: n0's refutation goes to random peers.
    sim.partition([
      ["n0", "n2"],
      ["n1", "n3", "n4", "n5", "n6", "n7"],
    ]);
    const row = claim(5000);
    sim.replica("n0").merge([row]);
    const t0 = sim.time;
    for (const at of DIRECT_PUSH_AT_MS) {
      sim.schedule(at, () =>
        pushDirect(sim.node("n0"), { send: (to, bytes) => sim.inject(to, bytes) }, [row], ["n2"]),
      );
    }
    expect(sim.runUntil(() => sim.node("n2").memberState("n0") === "alive", 60_000, 5)).toBe(true);
    expect(sim.time - t0).toBeLessThanOrEqual(DIRECT_PUSH_AT_MS[DIRECT_PUSH_AT_MS.length - 1] as number);
    expect(sim.replica("n2").rowsOf("n0")).toContainEqual(row);
  });
});
