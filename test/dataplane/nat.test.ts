import { describe, expect, test } from "bun:test";
import { Reconciler } from "../../internal/dataplane/index.ts";
import type { Netns } from "../helpers/netns.ts";
import { netnsSuite } from "../helpers/netns-suite.ts";
import { makePair, NODES, p2pState, podIp } from "./fixtures.ts";

const { root, scope } = await netnsSuite({ sweep: false });

async function icmpSources(ns: Netns): Promise<string> {
  return (await ns.exec(["conntrack", "-L", "-p", "icmp"], { allowFail: true })).stdout;
}

describe.skipIf(!root)("nftables NAT on a real kernel", () => {
  test("global-IP prefix NAT: two pods with the same IP reach each other via their global IPs", async () => {
    const { a, b, aIf, bIf } = await makePair(scope);
    const same = "10.9.0.5";
    for (const ns of [a, b]) await ns.exec(["ip", "addr", "add", `${same}/32`, "dev", "lo"]);
    const sa = p2pState(NODES[1], NODES[2], aIf);
    const sb = p2pState(NODES[2], NODES[1], bIf);
    sa.routes.push({ dst: "242.2.0.0/24", via: NODES[2].overlay4, dev: "vx-bridge", family: 4, table: 200 });
    sb.routes.push({ dst: "242.1.0.0/24", via: NODES[1].overlay4, dev: "vx-bridge", family: 4, table: 200 });
    sa.nft.globalMaps.push({ local: "10.9.0.0/24", global: "242.1.0.0/24", family: 4 });
    sb.nft.globalMaps.push({ local: "10.9.0.0/24", global: "242.2.0.0/24", family: 4 });
    expect((await new Reconciler({ runner: a.runner() }).reconcile(sa)).errors).toEqual([]);
    expect((await new Reconciler({ runner: b.runner() }).reconcile(sb)).errors).toEqual([]);
    const r = await a.exec(["ping", "-n", "-c2", "-W2", "-I", same, "242.2.0.5"], { allowFail: true });
    expect(r.code).toBe(0);
    // On B the connection arrived from A's global address (prefix-mapped, host bits kept) and was
    // DNATed to the local pod: original src=242.1.0.5 dst=242.2.0.5, reply from 10.9.0.5.
    const ct = await icmpSources(b);
    expect(ct).toMatch(/src=242\.1\.0\.5 dst=242\.2\.0\.5 .*src=10\.9\.0\.5 dst=242\.1\.0\.5/);
  });

  test("masquerade avoidance: a CNI's iptables MASQUERADE does not apply to remote pod CIDRs", async () => {
    const { a, b, aIf, bIf } = await makePair(scope);
    // Stand-in CNI: masquerade everything leaving via the overlay (iptables, runs at srcnat).
    await a.exec(["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "vx-bridge", "-j", "MASQUERADE"]);
    const sa = p2pState(NODES[1], NODES[2], aIf);
    const sb = p2pState(NODES[2], NODES[1], bIf);
    const ra = new Reconciler({ runner: a.runner() });
    await new Reconciler({ runner: b.runner() }).reconcile(sb);

    // Control: without the exemption the CNI masquerades (B sees A's overlay IP as source).
    const noExempt = structuredClone(sa);
    noExempt.nft.noMasqueradeDst.v4 = [];
    expect((await ra.reconcile(noExempt)).errors).toEqual([]);
    const src = podIp(NODES[1].pod4);
    const dst = podIp(NODES[2].pod4);
    expect((await a.exec(["ping", "-n", "-c1", "-W2", "-I", src, dst], { allowFail: true })).code).toBe(0);
    expect(await icmpSources(b)).toContain(`src=${NODES[1].overlay4} dst=${dst}`);
    await b.exec(["conntrack", "-F"], { allowFail: true });
    await a.exec(["conntrack", "-F"], { allowFail: true });

    // With the exemption (null SNAT binding at srcnat-10) the pod source survives.
    expect((await ra.reconcile(sa)).errors).toEqual([]);
    expect((await a.exec(["ping", "-n", "-c1", "-W2", "-I", src, dst], { allowFail: true })).code).toBe(0);
    const ct = await icmpSources(b);
    expect(ct).toContain(`src=${src} dst=${dst}`);
    expect(ct).not.toContain(`src=${NODES[1].overlay4}`);
    // The foreign iptables rule is untouched.
    expect((await a.exec(["iptables", "-t", "nat", "-S", "POSTROUTING"])).stdout).toContain("-j MASQUERADE");
  });
});
