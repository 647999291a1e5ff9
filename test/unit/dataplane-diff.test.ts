import { describe, expect, test } from "bun:test";
import {
  type ActualState,
  batchErrors,
  diff,
  planSteps,
  renderNft,
  uninstallChanges,
} from "../../internal/dataplane/index.ts";
import { NODES, p2pState } from "../dataplane/fixtures.ts";

function emptyActual(): ActualState {
  return {
    devices: [],
    routes: [],
    rules: [],
    fdb: [],
    neighbors: [],
    nft: { present: false, listing: "" },
    xfrm: { policies: [], states: [] },
    sysctls: {},
  };
}

/** The actual state that exactly matches a desired HostState. */
function matching(desired: ReturnType<typeof p2pState>): ActualState {
  const nft = renderNft(desired.nft);
  return {
    devices: desired.devices.map((d) => ({
      name: d.name,
      kind: "vxlan",
      vni: d.vni,
      port: d.port,
      local: d.local,
      ...(d.parent ? { parent: d.parent } : {}),
      learning: false,
      mtu: d.mtu,
      mac: d.mac,
      up: true,
      addresses: [d.address],
    })),
    routes: desired.routes.map(({ peer: _p, ...r }) => r),
    rules: desired.rules,
    fdb: desired.fdb,
    neighbors: desired.neighbors.map((n) => ({ ...n, permanent: true })),
    nft: { present: true, hash: nft.hash, listing: "L" },
    xfrm: { policies: [], states: [] },
    sysctls: Object.fromEntries(desired.sysctls.map((s) => [s.key, s.value])),
  };
}

const desired = p2pState(NODES[1], NODES[2], "eth0", { dual: true });

describe("dataplane diff (pure)", () => {
  test("from nothing: everything is added", () => {
    const kinds = diff(desired, emptyActual()).map((c) => c.kind);
    expect(kinds.filter((k) => k === "device-add").length).toBe(2);
    expect(kinds.filter((k) => k === "route-replace").length).toBe(2);
    expect(kinds.filter((k) => k === "fdb-add").length).toBe(4);
    expect(kinds).toContain("nft-apply");
  });

  test("matching state: no changes; tampered nft listing: one nft-apply", () => {
    const act = matching(desired);
    expect(diff(desired, act)).toEqual([]);
    expect(diff(desired, act, { nftListing: "L" })).toEqual([]);
    expect(diff(desired, act, { nftListing: "other" }).map((c) => c.kind)).toEqual(["nft-apply"]);
  });

  test("IPv6 spelled differently in the plan still matches the kernel's canonical form", () => {
    const spelled = structuredClone(desired);
    spelled.routes = spelled.routes.map((r) =>
      r.family === 6 ? { ...r, dst: "fd01:2:0:0::/64", via: "9480:0::77:2" } : r,
    );
    expect(diff(spelled, matching(desired))).toEqual([]);
  });

  test("MTU change updates in place; VNI change recreates and re-adds objects on the device", () => {
    const mtu = structuredClone(desired);
    mtu.devices[0]!.mtu = 1400;
    expect(diff(mtu, matching(desired)).map((c) => c.kind)).toEqual(["device-update"]);
    const vni = structuredClone(desired);
    vni.devices[0]!.vni = 99;
    const kinds = diff(vni, matching(desired)).map((c) => c.kind);
    expect(kinds).toEqual(["device-recreate", "fdb-add", "fdb-add", "neigh-replace", "route-replace"]);
  });

  test("removed peer: route/fdb/neigh deleted; removed device: only the device (its objects go with it)", () => {
    const fewer = structuredClone(desired);
    fewer.routes = fewer.routes.filter((r) => r.family === 6);
    expect(diff(fewer, matching(desired)).map((c) => c.kind)).toEqual(["route-del"]);
    const noV6 = p2pState(NODES[1], NODES[2], "eth0");
    noV6.sysctls.push({ key: "net.ipv6.conf.all.forwarding", value: "1" });
    const kinds = diff(noV6, matching(desired)).map((c) => c.kind);
    expect(kinds).toContain("device-del");
    expect(kinds).toContain("rule-del");
    expect(kinds).not.toContain("route-del");
    expect(kinds).not.toContain("fdb-del");
  });

  test("foreign link with our name is never touched", () => {
    const act = emptyActual();
    act.devices.push({ name: "vx-bridge", kind: "bridge", mtu: 1500, mac: "x", up: true, addresses: [] });
    const changes = diff(desired, act);
    expect(changes.some((c) => "device" in c && c.device.name === "vx-bridge")).toBe(false);
    expect(changes.some((c) => c.kind === "route-replace" && c.route.dev === "vx-bridge")).toBe(false);
  });

  test("fdb MAC entry with a new dst is replaced, not deleted", () => {
    const act = matching(desired);
    act.fdb = act.fdb.map((e) => (e.mac === NODES[2].mac ? { ...e, dst: "192.168.77.9" } : e));
    expect(diff(desired, act).map((c) => c.kind)).toEqual(["fdb-add"]);
    const steps = planSteps(diff(desired, act));
    expect(steps[0]?.lines?.[0]?.text).toBe(
      `fdb replace ${NODES[2].mac} dev vx-bridge dst 192.168.77.2 self permanent`,
    );
  });

  test("uninstall removes devices, rules, nft; plan order puts link deletes last", () => {
    const ch = uninstallChanges(matching(desired));
    expect(ch.map((c) => c.kind).sort()).toEqual([
      "device-del",
      "device-del",
      "nft-delete",
      "rule-del",
      "rule-del",
    ]);
    const steps = planSteps(ch);
    expect(steps.at(-1)?.lines?.map((l) => l.text)).toEqual(["link del vx-bridge", "link del vx-bridge-6"]);
  });

  test("batch error parsing maps kernel messages to lines", () => {
    expect(
      batchErrors(
        'Cannot find device "x"\nCommand failed -:3\nRTNETLINK answers: File exists\nCommand failed -:7\n',
      ),
    ).toEqual([
      { line: 3, message: 'Cannot find device "x"' },
      { line: 7, message: "RTNETLINK answers: File exists" },
    ]);
  });

  test("nft render is deterministic, uses maps for prefix NAT and a null-SNAT for no-masquerade", () => {
    const s = structuredClone(desired);
    s.nft.globalMaps.push({ local: "10.1.0.0/24", global: "242.1.0.0/24", family: 4 });
    const a = renderNft(s.nft);
    const b = renderNft(structuredClone(s.nft));
    expect(a).toEqual(b);
    expect(a.script).toContain("snat ip prefix to ip saddr map @gsnat4");
    expect(a.script).toContain("dnat ip prefix to ip daddr map @gdnat4");
    expect(a.script).toContain("ip daddr @nomasq4 snat ip to ip saddr");
    expect(a.script.startsWith("table inet kosmos {}\ndelete table inet kosmos\n")).toBe(true);
    expect(renderNft(desired.nft).hash).not.toBe(a.hash);
  });
});
