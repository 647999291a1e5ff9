import { describe, expect, test } from "bun:test";
import { Reconciler, readActual } from "../../internal/dataplane/index.ts";
import { recordingRunner } from "../../internal/sys/index.ts";
import { netnsSuite } from "../helpers/netns-suite.ts";
import { emptyState, makePair, NODES, p2pState, podIp, snapshot } from "./fixtures.ts";

const { root, scope } = await netnsSuite();

describe.skipIf(!root)("dataplane reconciler on a real kernel (P2P pair)", () => {
  test("dual stack: pods reach each other over vxlan; second reconcile is a no-op", async () => {
    const { a, b, aIf, bIf } = await makePair(scope);
    const ra = new Reconciler({ runner: a.runner() });
    const rb = new Reconciler({ runner: b.runner() });
    const sa = p2pState(NODES[1], NODES[2], aIf, { dual: true });
    const sb = p2pState(NODES[2], NODES[1], bIf, { dual: true });
    const first = await ra.reconcile(sa);
    expect(first.errors).toEqual([]);
    expect(first.residual).toBe(0);
    expect(first.counts["device-add"]).toBe(2);
    expect(first.counts["route-replace"]).toBe(2);
    expect((await rb.reconcile(sb)).errors).toEqual([]);

    // Traffic really flows pod -> pod through the overlay (v4 and v6), and TCP works.
    const src4 = podIp(NODES[1].pod4);
    const dst4 = podIp(NODES[2].pod4);
    const ping4 = await a.exec(["ping", "-n", "-c2", "-W2", "-I", src4, dst4], { allowFail: true });
    expect(ping4.code).toBe(0);
    const ping6 = await a.exec(
      ["ping", "-n", "-c2", "-W2", "-I", podIp(NODES[1].pod6), podIp(NODES[2].pod6)],
      {
        allowFail: true,
      },
    );
    expect(ping6.code).toBe(0);
    scope.spawn(b, ["socat", `TCP4-LISTEN:7001,bind=${dst4},reuseaddr,fork`, "EXEC:/bin/cat"]);
    let echoed = "";
    for (let i = 0; i < 20 && echoed !== "hello-overlay"; i++) {
      const r = await a.exec(["socat", "-T2", "-", `TCP4:${dst4}:7001,bind=${src4}`], {
        input: "hello-overlay",
        allowFail: true,
      });
      echoed = r.stdout.trim();
      if (echoed !== "hello-overlay") await Bun.sleep(50);
    }
    expect(echoed).toBe("hello-overlay");
    // Overlay packets really carry vxlan on the underlay port.
    const actual = await readActual(a.runner());
    expect(actual.devices.map((d) => `${d.name}:${d.vni}:${d.port}:${d.learning}`).sort()).toEqual([
      "vx-bridge-6:64:4866:false",
      "vx-bridge:54:4876:false",
    ]);

    // Idempotence: zero changes, identical listings.
    const before = await snapshot(a);
    const second = await ra.reconcile(sa);
    expect(second.changes).toBe(0);
    expect(await snapshot(a)).toEqual(before);
    // A fresh reconciler (agent restart) also sees nothing to do.
    const fresh = await new Reconciler({ runner: a.runner() }).reconcile(sa);
    expect(fresh.changes).toBe(0);
  });

  // The nft tamper check compares the table with the listing recorded after our last apply: taken
  // from the verifying re-read, or (verify off) from a read-back right after `nft -f`. One listing
  // of a 1,000-service table costs about as much as the apply, so a verified pass lists it twice.
  test.each([true, false])(
    "tamper repair (verify %p): deleted route, fdb entry, neighbour, nft rule and downed link come back",
    async (verify) => {
      const { a, aIf } = await makePair(scope);
      const runner = recordingRunner(a.runner());
      const ra = new Reconciler({ runner, verify });
      const sa = p2pState(NODES[1], NODES[2], aIf, { dual: true });
      expect((await ra.reconcile(sa)).errors).toEqual([]);
      const listings = runner.calls.filter((c) => c.argv.join(" ") === "nft list table inet kosmos");
      expect(listings.length).toBe(2);
      const good = await snapshot(a);
      await a.sh(
        [
          `ip route del ${NODES[2].pod4} table 200`,
          `bridge fdb del ${NODES[2].mac} dev vx-bridge dst ${NODES[2].underlay4}`,
          `ip neigh del ${NODES[2].overlay6} dev vx-bridge-6`,
          "ip link set vx-bridge mtu 1300",
          "ip addr add 220.99.0.1/8 dev vx-bridge",
          "ip -6 rule del priority 200",
          "nft flush chain inet kosmos nat_post",
        ].join("\n"),
      );
      const r = await ra.reconcile(sa);
      expect(r.errors).toEqual([]);
      expect(r.counts).toEqual({
        "route-replace": 1,
        "fdb-add": 1,
        "neigh-replace": 1,
        "device-update": 1,
        "rule-add": 1,
        "nft-apply": 1,
      });
      expect(r.residual).toBe(0);
      expect(await snapshot(a)).toEqual(good);
    },
  );

  // A resync whose nft table the caller trusts (a healthy `nft monitor` saw nothing: agent/nft-trust.ts)
  // takes it as last verified instead of listing it; everything else is still read and repaired.
  test("trustNft: no nft listing once converged, other tampering still repaired; a fresh reconciler adopts the table it finds, so tampering after a restart is repaired", async () => {
    const { a, aIf } = await makePair(scope);
    const runner = recordingRunner(a.runner());
    const listings = () =>
      runner.calls.filter((c) => c.argv.join(" ") === "nft list table inet kosmos").length;
    const sa = p2pState(NODES[1], NODES[2], aIf, { dual: true });
    const ra = new Reconciler({ runner });
    expect((await ra.reconcile(sa)).errors).toEqual([]);
    const n0 = listings();
    const trusted = await ra.reconcile(sa, { trustNft: true });
    expect(trusted).toMatchObject({ nftRead: "trusted", changes: 0, residual: 0 });
    expect(listings()).toBe(n0);
    await a.exec(["ip", "route", "del", NODES[2].pod4, "table", "200"]);
    const repaired = await ra.reconcile(sa, { trustNft: true });
    expect(repaired.counts).toEqual({ "route-replace": 1 });
    expect(repaired.nftRead).toBe("trusted");
    // An agent restart: nothing verified yet, so the table is listed, and becomes the reference.
    const fresh = new Reconciler({ runner });
    const first = await fresh.reconcile(sa, { trustNft: true });
    expect(first).toMatchObject({ nftRead: "listed", changes: 0 });
    await a.exec(["nft", "flush", "chain", "inet", "kosmos", "nat_post"]);
    const again = await fresh.reconcile(sa);
    expect(again.counts).toEqual({ "nft-apply": 1 });
    expect(again.residual).toBe(0);
  });

  test("foreign objects survive reconcile and uninstall; uninstall restores the listings", async () => {
    const { a, aIf } = await makePair(scope);
    await a.sh(
      [
        "ip link add vx-foreign type vxlan id 99 dstport 4999 local 192.168.77.1 nolearning",
        "ip route add 10.9.0.0/24 via 192.168.77.2 table 200",
        "ip route add 10.8.0.0/24 via 192.168.77.2 proto static",
        "ip rule add priority 300 table 300",
        "nft add table inet foreign; nft add chain inet foreign c '{ type filter hook forward priority 0; }'",
        "ip xfrm policy add src 10.50.0.0/16 dst 10.60.0.0/16 dir out tmpl src 192.168.77.1 dst 192.168.77.2 proto esp reqid 7 mode tunnel",
      ].join("\n"),
    );
    const pristine = await snapshot(a);
    const ra = new Reconciler({ runner: a.runner() });
    const sa = p2pState(NODES[1], NODES[2], aIf, { dual: true });
    sa.xfrm.policies.push({
      src: "10.1.0.0/24",
      dst: "10.2.0.0/24",
      dir: "out",
      tmplSrc: "192.168.77.1",
      tmplDst: "192.168.77.2",
      reqid: 0x4b000001,
      priority: 1000,
      family: 4,
    });
    expect((await ra.reconcile(sa)).errors).toEqual([]);
    const mid = await snapshot(a);
    for (const needle of ["vx-foreign", "10.9.0.0/24", "10.8.0.0/24"])
      expect(`${mid.link}${mid.route4}`).toContain(needle);
    expect(mid.rule4).toContain('"priority":300');
    expect(mid.nft).toContain("table inet foreign");
    expect(mid.xfrmPolicy).toContain("reqid 7 ");
    // A changed plan that drops everything keeps foreign objects too.
    expect((await ra.reconcile(emptyState())).errors).toEqual([]);
    const un = await ra.uninstall();
    expect(un.errors).toEqual([]);
    const after = await snapshot(a);
    // sysctls we set stay set (forwarding was already on); everything else equals the pristine listing.
    expect(after).toEqual(pristine);
  });

  test("uninstall after a full install leaves listings equal to before", async () => {
    const { a, aIf } = await makePair(scope);
    const before = await snapshot(a);
    const ra = new Reconciler({ runner: a.runner() });
    await ra.reconcile(p2pState(NODES[1], NODES[2], aIf, { dual: true }));
    expect((await snapshot(a)).nft).toContain("table inet kosmos");
    const un = await ra.uninstall();
    expect(un.errors).toEqual([]);
    expect(await snapshot(a)).toEqual(before);
  });

  test("device recreated when VNI changes; its fdb/neigh/routes are re-added in the same pass", async () => {
    const { a, aIf } = await makePair(scope);
    const ra = new Reconciler({ runner: a.runner() });
    const sa = p2pState(NODES[1], NODES[2], aIf);
    await ra.reconcile(sa);
    const changed = structuredClone(sa);
    changed.devices[0]!.vni = 154;
    changed.devices[0]!.mtu = 1400; // plus an in-place-able change
    const r = await ra.reconcile(changed);
    expect(r.errors).toEqual([]);
    expect(r.counts["device-recreate"]).toBe(1);
    expect(r.residual).toBe(0);
    const act = await readActual(a.runner());
    expect(act.devices[0]?.vni).toBe(154);
    expect(act.routes.length).toBe(1);
    expect(act.fdb.length).toBe(2);
    // MTU only: in place (no recreate).
    changed.devices[0]!.mtu = 1420;
    const r2 = await ra.reconcile(changed);
    expect(r2.counts).toEqual({ "device-update": 1 });
  });
});
