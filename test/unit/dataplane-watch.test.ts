import { describe, expect, test } from "bun:test";
import {
  classifyLine,
  LineSplitter,
  MAX_LINE,
  type MonitorSource,
  monitorSpecs,
  ownedDevice,
} from "../../internal/dataplane/watch.ts";

// Lines captured on this machine (iproute2 6.1, nftables 1.0.6) by running
// `ip -o -N monitor label link address route neigh rule`, `bridge monitor fdb` and `nft monitor`
// in a namespace while creating, tampering with and deleting Kosmos objects and foreign ones.
const OWNED_IP: Array<[string, string]> = [
  [
    "link",
    "[LINK]4: vx-bridge: <BROADCAST,MULTICAST> mtu 1450 qdisc noop state DOWN group default \\    link/ether aa:00:00:00:77:01 brd ff:ff:ff:ff:ff:ff",
  ],
  [
    "link",
    "[LINK]4: vx-bridge: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400 qdisc noqueue state UNKNOWN group default \\    link/ether aa:00:00:00:77:01 brd ff:ff:ff:ff:ff:ff",
  ],
  [
    "link",
    "[LINK]Deleted 4: vx-bridge: <BROADCAST,MULTICAST> mtu 1400 qdisc noop state DOWN group default \\    link/ether aa:00:00:00:77:01 brd ff:ff:ff:ff:ff:ff",
  ],
  [
    "addr",
    "[ADDR]4: vx-bridge    inet 220.168.77.1/8 scope global vx-bridge\\       valid_lft forever preferred_lft forever",
  ],
  [
    "addr",
    "[ADDR]Deleted 4: vx-bridge    inet 220.168.77.1/8 scope global vx-bridge\\       valid_lft forever preferred_lft forever",
  ],
  [
    "addr",
    "[ADDR]Deleted 4: vx-bridge    inet6 fe80::a800:ff:fe00:7701/64 scope link tentative \\       valid_lft forever preferred_lft forever",
  ],
  ["rule", "[RULE]200:\tfrom all lookup 200 proto 75"],
  ["rule", "[RULE]Deleted 200:\tfrom all lookup 200 proto 75"],
  ["route", "[ROUTE]10.2.0.0/24 via 220.168.77.2 dev vx-bridge table 200 proto 75 onlink "],
  ["route", "[ROUTE]fd01:2::/64 dev vx-bridge table 200 proto 75 metric 1024 pref medium"],
  ["route", "[ROUTE]Deleted 10.2.0.0/24 via 220.168.77.2 dev vx-bridge table 200 proto 75 onlink "],
  ["route", "[ROUTE]Deleted fd01:2::/64 dev vx-bridge table 200 proto 75 metric 1024 pref medium"],
  ["neigh", "[NEIGH]192.168.77.2 dev vx-bridge lladdr aa:00:00:00:77:02 NOARP PERMANENT "],
  ["neigh", "[NEIGH]220.168.77.2 dev vx-bridge lladdr aa:00:00:00:77:02 PERMANENT "],
  ["neigh", "[NEIGH]Deleted 192.168.77.2 dev vx-bridge lladdr aa:00:00:00:77:02 NOARP PERMANENT "],
  // `ip neigh del` of a permanent entry is reported as FAILED, then deleted.
  ["neigh", "[NEIGH]Deleted 220.168.77.2 dev vx-bridge FAILED "],
];

const FOREIGN_IP = [
  "[LINK]3: eth0@eth0p: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default \\    link/ether ce:9c:ab:ee:7e:57 brd ff:ff:ff:ff:ff:ff",
  "[LINK]6: foo0@foo1: <BROADCAST,MULTICAST,M-DOWN> mtu 1500 qdisc noop state DOWN group default \\    link/ether e2:2c:f5:1a:90:fe brd ff:ff:ff:ff:ff:ff",
  "[LINK]Deleted 5: foo1@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether b2:86:79:ec:da:60 brd ff:ff:ff:ff:ff:ff",
  "[ADDR]2: eth0p    inet6 fe80::8079:21ff:fef5:6455/64 scope link \\       valid_lft forever preferred_lft forever",
  "[RULE]300:\tfrom all lookup 100",
  "[RULE]Deleted 300:\tfrom all lookup 100",
  // another table, no proto / another proto
  "[ROUTE]10.9.0.0/24 via 192.168.77.9 dev eth0 table 100 ",
  "[ROUTE]Deleted 10.9.0.0/24 via 192.168.77.9 dev eth0 table 100 ",
  "[ROUTE]10.8.0.0/24 via 192.168.77.9 dev eth0 proto static ",
  "[ROUTE]Deleted 10.8.0.0/24 via 192.168.77.9 dev eth0 proto static ",
  // kernel routes (even on an owned device) follow address changes, which are events already
  "[ROUTE]220.0.0.0/8 dev vx-bridge proto kernel scope link src 220.168.77.1 ",
  "[ROUTE]local fe80::8079:21ff:fef5:6455 dev eth0p table local proto kernel metric 0 pref medium",
  // neighbours on eth0, dynamic neighbours on an owned device changing state
  "[NEIGH]192.168.77.9 dev eth0 lladdr aa:bb:cc:dd:ee:ff PERMANENT ",
  "[NEIGH]192.168.77.9 dev eth0 FAILED ",
  "[NEIGH]Deleted 192.168.77.9 dev eth0 FAILED ",
  "[NEIGH]220.168.77.2 dev vx-bridge FAILED ",
  "[NEIGH]220.168.77.9 dev vx-bridge lladdr aa:00:00:00:77:09 REACHABLE ",
  "[NEIGH]220.168.77.9 dev vx-bridge lladdr aa:00:00:00:77:09 STALE ",
  // a protocol number that merely starts with 75
  "[ROUTE]10.7.0.0/24 dev eth0 table 200 proto 750 ",
  // unlabelled (not our command line)
  "10.2.0.0/24 via 220.168.77.2 dev vx-bridge table 200 proto 75 onlink ",
];

const OWNED_FDB = [
  "00:00:00:00:00:00 dev vx-bridge dst 192.168.77.2 self permanent",
  "aa:00:00:00:77:02 dev vx-bridge dst 192.168.77.2 self permanent",
  "Deleted aa:00:00:00:77:02 dev vx-bridge dst 192.168.77.2 self permanent",
  "Deleted 00:00:00:00:00:00 dev vx-bridge dst 192.168.77.2 self permanent",
];
const FOREIGN_FDB = [
  "33:33:00:00:00:01 dev eth0 self permanent",
  "Deleted aa:bb:cc:dd:ee:ff dev br0 master br0 permanent",
  // a learned entry on an owned device (the agent's devices are nolearning; not ours anyway)
  "aa:00:00:00:77:09 dev vx-bridge dst 192.168.77.9 self",
];

const OWNED_NFT = [
  "add table inet kosmos",
  "add chain inet kosmos post { type nat hook postrouting priority srcnat; policy accept; }",
  "add element inet kosmos s { 10.2.0.0 }",
  "delete element inet kosmos s { 10.2.0.0 }",
  "delete rule inet kosmos post handle 3",
  "delete set inet kosmos s",
  "delete chain inet kosmos post",
  "delete table inet kosmos",
];
const FOREIGN_NFT = [
  "# new generation 7 by process 27083 (nft)",
  "add table inet other",
  "add chain inet other c",
  "delete table inet other",
  "add table ip kosmos",
  "add table inet kosmosx",
];

// `ip -o xfrm monitor nokeys policy SA`, captured the same way (policy add, update, delete, flush;
// 1258291201 = 0x4b000001, in the reserved reqid range). This kernel cannot install ESP states, so
// the state lines follow iproute2's xfrm_state_print format instead of a capture.
const OWNED_XFRM = [
  "src 10.1.0.0/16 dst 10.2.0.0/16 \\\tdir out priority 100 ptype main \\\ttmpl src 1.1.1.1 dst 2.2.2.2\\\t\tproto esp reqid 1258291201 mode tunnel\\",
  "Updated src 10.1.0.0/16 dst 10.2.0.0/16 \\\tdir out priority 101 ptype main \\\ttmpl src 1.1.1.1 dst 2.2.2.2\\\t\tproto esp reqid 1258291201 mode tunnel\\",
  "src fd00:1::/64 dst fd00:2::/64 \\\tdir in priority 100 ptype main \\\ttmpl src fc00::1 dst fc00::2\\\t\tproto esp reqid 1258291202 mode tunnel\\",
  "Deleted src 10.1.0.0/16 dst 10.2.0.0/16 \\\tdir out priority 101 ptype main \\\ttmpl src 1.1.1.1 dst 2.2.2.2\\\t\tproto esp reqid 1258291201 mode tunnel\\",
  "Flushed policy ptype main \\",
  "Flushed state proto esp",
  "src 192.0.2.1 dst 192.0.2.2 \\\tproto esp spi 0x00000100 reqid 1258291201 mode tunnel\\\treplay-window 0 \\\taead rfc4106(gcm(aes)) 0x0102030405060708090a0b0c0d0e0f1011121314 128\\",
];
const FOREIGN_XFRM = [
  "src 10.5.0.0/16 dst 10.6.0.0/16 \\\tdir out priority 100 ptype main \\\ttmpl src 1.1.1.1 dst 2.2.2.2\\\t\tproto esp reqid 7 mode tunnel\\",
  "src 10.7.0.0/16 dst 10.8.0.0/16 \\\tdir out priority 0 ptype main \\",
  "Deleted src 10.5.0.0/16 dst 10.6.0.0/16 \\\tdir out priority 100 ptype main \\\ttmpl src 1.1.1.1 dst 2.2.2.2\\\t\tproto esp reqid 7 mode tunnel\\",
  // reqid just outside the reserved range (0x4c000000)
  "src 10.5.0.0/16 dst 10.6.0.0/16 \\\tdir out priority 100 ptype main \\\ttmpl src 1.1.1.1 dst 2.2.2.2\\\t\tproto esp reqid 1275068416 mode tunnel\\",
];

/** Every [kind, line] pair: the line is an event of that kind (a failure names the line). */
function expectKind(source: MonitorSource, pairs: Array<[string, string]>): void {
  for (const [kind, line] of pairs)
    expect({ line, kind: classifyLine(source, line)?.kind }).toEqual({ line, kind: kind as never });
}
const all = (kind: string, lines: string[]): Array<[string, string]> => lines.map((l) => [kind, l]);
/** No line is an event. */
function expectIgnored(source: MonitorSource, lines: string[]): void {
  for (const line of lines) expect({ line, ev: classifyLine(source, line) }).toEqual({ line, ev: undefined });
}

describe("kernel watcher line filter", () => {
  test("owned ip monitor lines are events of the right kind", () => {
    expectKind("ip", OWNED_IP);
  });
  test("foreign ip monitor lines are not events", () => {
    expectIgnored("ip", FOREIGN_IP);
  });
  test("bridge monitor fdb: permanent entries and deletions on owned devices only", () => {
    expectKind("bridge", all("fdb", OWNED_FDB));
    expectIgnored("bridge", FOREIGN_FDB);
  });
  test("nft monitor: table inet kosmos only", () => {
    expectKind("nft", all("nft", OWNED_NFT));
    expectIgnored("nft", FOREIGN_NFT);
  });
  test("ip xfrm monitor: policies and states with a reserved reqid, and flushes; key material never kept", () => {
    expectKind("xfrm", all("xfrm", OWNED_XFRM));
    expectIgnored("xfrm", FOREIGN_XFRM);
    const state = classifyLine("xfrm", OWNED_XFRM.at(-1) ?? "");
    expect(state?.line).not.toContain("0102030405060708");
    expect(state?.line).toContain("spi 0x00000100 reqid 1258291201");
  });
  test("monitorSpecs: nft and xfrm only when usable; SA events only when ESP states are", () => {
    const argv = (o: Parameters<typeof monitorSpecs>[0]) => monitorSpecs(o).map((s) => s.argv.join(" "));
    expect(argv({})).toContain("ip -o xfrm monitor nokeys policy SA");
    expect(argv({ xfrmStates: false })).toContain("ip -o xfrm monitor nokeys policy");
    expect(argv({ nft: false, xfrm: false }).some((a) => a.startsWith("nft") || a.includes("xfrm"))).toBe(
      false,
    );
  });
  test("owned devices: the planner's names and vx-*", () => {
    expect(["vx-bridge", "vx-local", "vx-bridge-6", "vx-local-6", "vx-other"].every(ownedDevice)).toBe(true);
    expect(["eth0", "vxlan0", "ul0", undefined].some(ownedDevice)).toBe(false);
  });
  test("absurdly long lines are dropped", () => {
    expect(classifyLine("nft", `add element inet kosmos s { ${"1.2.3.4, ".repeat(1000)} }`)).toBeUndefined();
  });
});

describe("line splitter", () => {
  test("splits across chunks and drops lines longer than the bound", () => {
    const out: string[] = [];
    const s = new LineSplitter(10);
    s.push("ab", (l) => out.push(l));
    s.push("c\nde", (l) => out.push(l));
    s.push("f\n0123456789", (l) => out.push(l));
    s.push("X-too-long-continues", (l) => out.push(l));
    s.push("-more\nok\n", (l) => out.push(l));
    s.push("0123456789abc\nlast\n", (l) => out.push(l));
    expect(out).toEqual(["abc", "def", "ok", "last"]);
    expect(MAX_LINE).toBeGreaterThan(1000);
  });
});
