/**
 * Agent lifecycle against the real kernel, in the default lab: idempotent reconcile, repair of
 * tampered state (API and periodic resync), kill -9 and restart (kernel state kept while down,
 * convergence from the agent's own replica with no peer reachable), and clean uninstall (the node
 * returns to what it was before the agent applied anything; foreign state untouched).
 * The lab comes up with agents started but NOT seeded, so the pristine listings can be captured.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DEFAULT_LAB, parseLabConfig } from "../../internal/lab/config.ts";
import {
  type LabHandle,
  labDown,
  labUp,
  seedAgent,
  startAgent,
  waitAgentHealthy,
  waitAgentReady,
} from "../../internal/lab/lab.ts";
import { labAgentPid } from "../../internal/lab/ops.ts";
import type { LabNodePlan } from "../../internal/lab/plan.ts";
import { inNs } from "../../internal/lab/sh.ts";
import {
  agentJson,
  agentState,
  diffListings,
  kernelListings,
  type Listings,
  labName,
  probeUntilPass,
  settledListings,
  touchesNode,
  until,
} from "./helpers.ts";

const LAB = labName("lc");
const T = 60_000;
let lab: LabHandle;
/** Listings of each node namespace before any agent applied anything. */
const pristine = new Map<string, Listings>();

const P2P = "c1-node-1"; // P2P node with a global-IP map (NAT maps in nft)
const GATEWAY = "c2-node-1"; // gateway of a gateway cluster (vx-bridge + vx-local)
const BEHIND = "c2-node-3"; // non-gateway node of the gateway cluster

const nodeOf = (name: string): LabNodePlan => {
  const n = lab.plan.nodes.find((x) => x.name === name);
  if (!n) throw new Error(`no node ${name}`);
  return n;
};

beforeAll(async () => {
  await labDown(LAB);
  lab = await labUp(LAB, parseLabConfig(DEFAULT_LAB), { seedCount: 0, noWait: true });
  for (const n of lab.plan.nodes) pristine.set(n.name, await kernelListings(n.ns));
  // Seed one agent (the others learn the topology by gossip), then wait until all applied it.
  await seedAgent(LAB, "c1-node-2", lab.plan, lab.token);
  await Promise.all(lab.plan.nodes.map((n) => waitAgentReady(LAB, n.name, 60_000)));
}, T);

afterAll(async () => {
  await labDown(LAB);
}, T);

const reconcile = (node: string) =>
  agentJson<{ applied: boolean; changes: number; residual: number; errors: unknown[] }>(
    LAB,
    node,
    "/v1/reconcile",
    {
      method: "POST",
      token: lab.token,
    },
  );

const ns = (node: string) => nodeOf(node).ns;
const jsonOut = async <T>(node: string, argv: string[]) =>
  JSON.parse((await inNs(ns(node), argv)).stdout) as T;

describe("agent lifecycle in a lab", () => {
  test("agents touch nothing before they are seeded", () => {
    for (const n of lab.plan.nodes) {
      const p = pristine.get(n.name)!;
      expect(p.link.filter((l) => l.includes('"ifname":"vx-'))).toEqual([]);
      expect(p.nft.filter((l) => l.startsWith("table inet kosmos"))).toEqual([]);
      expect([...p.route4, ...p.route6].filter((l) => l.includes('"protocol":"75"'))).toEqual([]);
    }
  });

  test(
    "reconcile is idempotent: 0 changes and identical kernel listings",
    async () => {
      for (const node of [P2P, GATEWAY, BEHIND]) {
        const attempts: string[] = [];
        for (let i = 0; i < 4; i++) {
          const before = await settledListings(LAB, node, ns(node));
          const r1 = await reconcile(node);
          const r2 = await reconcile(node);
          const after = await settledListings(LAB, node, ns(node));
          const d = diffListings(before.listings, after.listings);
          if (
            before.hash === after.hash &&
            r1.body.changes === 0 &&
            r2.body.changes === 0 &&
            d.length === 0
          ) {
            attempts.length = 0;
            break;
          }
          attempts.push(
            `attempt ${i}: hash ${before.hash}->${after.hash} changes ${r1.body.changes},${r2.body.changes}\n  ${d.join("\n  ")}`,
          );
        }
        expect(attempts, `${node} not idempotent:\n${attempts.join("\n")}`).toEqual([]);
        const now = await kernelListings(ns(node));
        expect(
          [...now.route4, ...now.route6].filter((l) => l.includes('"protocol":"75"')).length,
        ).toBeGreaterThan(0);
      }
    },
    T,
  );

  test(
    "tampered state (route, FDB entry, nft table flushed) is repaired by reconcile and by the periodic resync",
    async () => {
      const node = P2P;
      const pid = (await labAgentPid(LAB, node))!;
      expect(pid).toBeGreaterThan(1);
      let ok = false;
      const notes: string[] = [];
      for (let i = 0; i < 3 && !ok; i++) {
        const before = await settledListings(LAB, node, ns(node));
        const routes = await jsonOut<Array<{ dst: string }>>(node, [
          "ip",
          "-4",
          "-j",
          "route",
          "show",
          "table",
          "200",
          "proto",
          "75",
        ]);
        const fdb = await jsonOut<Array<{ mac: string; dst?: string }>>(node, [
          "bridge",
          "-j",
          "fdb",
          "show",
          "dev",
          "vx-bridge",
        ]);
        const route = routes[0]!;
        const entry = fdb.find((e) => e.dst && e.mac !== "00:00:00:00:00:00")!;
        // Freeze the agent so the tampering is observed as such (membership churn triggers passes).
        process.kill(pid, "SIGSTOP");
        let tampered: string[];
        try {
          await inNs(ns(node), ["ip", "route", "del", route.dst, "table", "200", "proto", "75"]);
          await inNs(ns(node), ["bridge", "fdb", "del", entry.mac, "dev", "vx-bridge", "dst", entry.dst!]);
          await inNs(ns(node), ["nft", "flush", "table", "inet", "kosmos"]);
          tampered = diffListings(before.listings, await kernelListings(ns(node)));
        } finally {
          process.kill(pid, "SIGCONT");
        }
        expect(tampered.some((l) => l.startsWith("route4 -") && l.includes(route.dst))).toBe(true);
        expect(tampered.some((l) => l.startsWith("fdb -") && l.includes(entry.mac))).toBe(true);
        expect(tampered.some((l) => l.startsWith("nft -") && l.includes("snat"))).toBe(true);
        const r = await reconcile(node);
        expect(r.body.applied).toBe(true);
        expect(r.body.errors).toEqual([]);
        const after = await settledListings(LAB, node, ns(node));
        if (after.hash !== before.hash) {
          notes.push(`attempt ${i}: plan moved ${before.hash}->${after.hash} (membership), retrying`);
          continue;
        }
        const d = diffListings(before.listings, after.listings);
        expect(d, `not repaired:\n${d.join("\n")}`).toEqual([]);
        ok = true;
      }
      expect(ok, notes.join("\n")).toBe(true);
      const res = await probeUntilPass(lab.plan, { filter: touchesNode(node) });
      expect(res.failed, `failed probes:\n${res.failed.join("\n")}`).toEqual([]);

      // Periodic resync (5 s in the lab), no API call: delete a route and an nft table.
      const before = await settledListings(LAB, node, ns(node));
      const routes6 = await jsonOut<Array<{ dst: string }>>(node, [
        "ip",
        "-6",
        "-j",
        "route",
        "show",
        "table",
        "200",
        "proto",
        "75",
      ]);
      await inNs(ns(node), ["ip", "-6", "route", "del", routes6[0]!.dst, "table", "200", "proto", "75"]);
      await inNs(ns(node), ["nft", "delete", "table", "inet", "kosmos"]);
      await until("the periodic resync to repair the node", 20_000, async () => {
        const now = await settledListings(LAB, node, ns(node));
        return diffListings(before.listings, now.listings).length === 0;
      });
    },
    T,
  );

  test(
    "kill -9: traffic keeps flowing while the agent is down; restarted with no peer reachable, it converges from its own replica",
    async () => {
      const node = BEHIND;
      const n = nodeOf(node);
      const block = "ktblock";
      let done = false;
      const notes: string[] = [];
      for (let i = 0; i < 3 && !done; i++) {
        const before = await settledListings(LAB, node, n.ns);
        const pid = (await labAgentPid(LAB, node))!;
        process.kill(pid, "SIGKILL");
        await until("the agent to die", 10_000, async () => (await labAgentPid(LAB, node)) === undefined);

        // The kernel keeps the state and forwards.
        const res = await probeUntilPass(lab.plan, { filter: touchesNode(node) }, 10_000);
        expect(res.failed, `failed probes with the agent down:\n${res.failed.join("\n")}`).toEqual([]);
        expect(diffListings(before.listings, await kernelListings(n.ns))).toEqual([]);

        // Tamper while down, and cut the node off from every peer's agent (gossip/TLS port).
        const routes = await jsonOut<Array<{ dst: string }>>(node, [
          "ip",
          "-4",
          "-j",
          "route",
          "show",
          "table",
          "200",
          "proto",
          "75",
        ]);
        await inNs(n.ns, ["ip", "route", "del", routes[0]!.dst, "table", "200", "proto", "75"]);
        await inNs(n.ns, ["bridge", "fdb", "del", "00:00:00:00:00:00", "dev", "vx-local"]);
        await inNs(n.ns, ["nft", "-f", "-"], {
          input: `table inet ${block} {
  chain in { type filter hook input priority -200; policy accept; tcp dport 5678 drop; tcp sport 5678 drop; }
  chain out { type filter hook output priority -200; policy accept; tcp dport 5678 drop; tcp sport 5678 drop; }
}
`,
        });
        try {
          await startAgent(LAB, lab.plan, n, lab.token);
          await waitAgentHealthy(LAB, node);
          await waitAgentReady(LAB, node, 30_000);
          // Its peers become unreachable: wait until it considers none of them alive.
          await until("the restarted agent to lose every peer", 20_000, async () => {
            const s = await agentState(LAB, node);
            return Object.keys(s.members).length > 0 && !Object.values(s.members).includes("alive");
          });
          const after = await settledListings(LAB, node, n.ns, {
            requireAlive: false,
            skipNftTables: [`inet ${block}`],
          });
          if (after.hash !== before.hash) {
            notes.push(
              `attempt ${i}: plan ${before.hash} before the crash, ${after.hash} after (membership moved)`,
            );
            continue;
          }
          const d = diffListings(before.listings, after.listings);
          expect(d, `not converged after restart:\n${d.join("\n")}`).toEqual([]);
          done = true;
        } finally {
          await inNs(n.ns, ["nft", "delete", "table", "inet", block], { allowFail: true });
        }
      }
      if (process.env.KOSMOS_E2E_DEBUG) console.error(notes);
      expect(done, notes.join("\n")).toBe(true);
      await until("the restarted agent to see its peers", 20_000, async () => {
        const s = await agentState(LAB, node);
        return Object.values(s.members).some((m) => m === "alive");
      });
      const res = await probeUntilPass(lab.plan, { filter: touchesNode(node) });
      expect(res.failed, `failed probes after restart:\n${res.failed.join("\n")}`).toEqual([]);
    },
    T,
  );

  test(
    "uninstall restores the pristine node; foreign routes, rules, nft tables and xfrm policies survive reconcile and uninstall",
    async () => {
      const node = P2P;
      const n = nodeOf(node);
      const foreign = [
        ["ip", "route", "add", "198.51.100.0/24", "dev", "cni0", "table", "200", "proto", "static"],
        ["ip", "route", "add", "203.0.113.0/24", "dev", "cni0", "proto", "static"],
        ["ip", "-6", "route", "add", "2001:db8:77::/64", "dev", "cni0", "table", "200", "proto", "boot"],
        ["ip", "rule", "add", "from", "198.51.100.0/24", "lookup", "300", "priority", "1234"],
        ["nft", "add", "table", "inet", "ktforeign"],
        [
          "nft",
          "add",
          "chain",
          "inet",
          "ktforeign",
          "ktchain",
          "{ type filter hook forward priority 10; policy accept; }",
        ],
        [
          "nft",
          "add",
          "rule",
          "inet",
          "ktforeign",
          "ktchain",
          "ip",
          "daddr",
          "203.0.113.0/24",
          "counter",
          "accept",
        ],
        // biome-ignore format: one xfrm command per line
        ["ip", "xfrm", "policy", "add", "src", "198.51.100.0/24", "dst", "203.0.113.0/24", "dir", "out", "priority", "100",
          "tmpl", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp", "reqid", "7", "mode", "tunnel"],
      ];
      const withoutForeign = await settledListings(LAB, node, n.ns);
      for (const argv of foreign) await inNs(n.ns, argv);
      const withForeign = await kernelListings(n.ns);
      const added = diffListings(withoutForeign.listings, withForeign);
      for (const key of ["route4", "route6", "rule4", "nft", "xfrm"]) {
        expect(added.some((l) => l.startsWith(`${key} +`))).toBe(true);
      }
      expect(added.filter((l) => !l.includes(" +"))).toEqual([]);

      const r = await reconcile(node);
      expect(r.body.applied).toBe(true);
      const afterReconcile = await settledListings(LAB, node, n.ns);
      const missing = diffListings(withForeign, afterReconcile.listings).filter((l) => l.includes(" - "));
      expect(missing, `reconcile removed foreign state:\n${missing.join("\n")}`).toEqual([]);

      const un = await agentJson<{ removed: number; errors: unknown[] }>(LAB, node, "/v1/uninstall", {
        method: "POST",
        token: lab.token,
      });
      expect(un.status).toBe(200);
      expect(un.body.errors).toEqual([]);
      expect(un.body.removed).toBeGreaterThan(0);
      const afterUninstall = await kernelListings(n.ns);
      // Everything the test added is still there...
      const lost = added
        .map((l) => l.replace(" + ", " "))
        .filter((l) => {
          const [key, ...rest] = l.split(" ");
          return !(afterUninstall as Record<string, string[] | undefined>)[key!]?.includes(rest.join(" "));
        });
      expect(lost, `uninstall removed foreign state:\n${lost.join("\n")}`).toEqual([]);
      // ...and once it is removed, the node is exactly as before the agent applied anything.
      for (const argv of [
        ["ip", "route", "del", "198.51.100.0/24", "table", "200"],
        ["ip", "route", "del", "203.0.113.0/24"],
        ["ip", "-6", "route", "del", "2001:db8:77::/64", "table", "200"],
        ["ip", "rule", "del", "priority", "1234"],
        ["nft", "delete", "table", "inet", "ktforeign"],
        ["ip", "xfrm", "policy", "delete", "src", "198.51.100.0/24", "dst", "203.0.113.0/24", "dir", "out"],
      ]) {
        await inNs(n.ns, argv);
      }
      const d = diffListings(pristine.get(node)!, await kernelListings(n.ns));
      expect(d, `node differs from its pristine state after uninstall:\n${d.join("\n")}`).toEqual([]);
      // The agent stays up, and does not re-apply on its own: its loop is stopped (no resync,
      // kernel event or replica change schedules a pass any more), so the pristine node is final.
      expect((await agentJson(LAB, node, "/healthz")).status).toBe(200);
      const after = await agentJson<{ reconciling: boolean; runs: number }>(LAB, node, "/v1/state");
      expect(after.body.reconciling).toBe(false);
      expect(diffListings(pristine.get(node)!, await kernelListings(n.ns))).toEqual([]);
      expect((await agentJson<{ runs: number }>(LAB, node, "/v1/state")).body.runs).toBe(after.body.runs);
    },
    T,
  );
});
