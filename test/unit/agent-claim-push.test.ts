/**
 * pushDirect (internal/agent/gossip.ts): a gateway claim is pushed straight to the nodes of the
 * gateway's cluster, in signed frames the receivers' GossipNodes accept and merge, on top of the
 * random dissemination (which cannot reach nodes that only see their own LAN).
 */
import { describe, expect, test } from "bun:test";
import { pushDirect } from "../../internal/agent/gossip.ts";
import { Sim } from "../../internal/gossip/index.ts";
import type { ReplicatedRow } from "../../internal/store/replicated.ts";

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
});
