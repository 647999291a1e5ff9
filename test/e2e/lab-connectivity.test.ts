/**
 * ClusterLink data plane end to end in the default lab (real kernel, one real agent per node):
 *   c1 P2P dual-stack, pod CIDR 10.244.0.0/16 mapped to 242.1.0.0/16
 *   c2 gateway dual-stack, 3 nodes of which 2 gateway candidates
 *   c3 P2P IPv4, the SAME pod CIDR as c1, mapped to 242.3.0.0/16
 * Covers P2P<->P2P through global IPs (same pod CIDR), P2P<->gateway in both families, pods and
 * services, the isolation of a non-gateway node's underlay, and refused bad topology input.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { MAX_TOPOLOGY_BYTES } from "../../internal/agent/app.ts";
import { DEFAULT_LAB, parseLabConfig } from "../../internal/lab/config.ts";
import { type LabHandle, labDown, labUp } from "../../internal/lab/lab.ts";
import { inNs } from "../../internal/lab/sh.ts";
import type { HostState } from "../../internal/planner/index.ts";
import type { Topology } from "../../internal/topology/index.ts";
import {
  agentJson,
  agentPostRaw,
  diffListings,
  labName,
  probeUntilPass,
  settledListings,
  touchesNode,
  until,
} from "./helpers.ts";

const LAB = labName("con");
const T = 60_000;
let lab: LabHandle;

beforeAll(async () => {
  await labDown(LAB);
  lab = await labUp(LAB, parseLabConfig(DEFAULT_LAB));
}, T);

afterAll(async () => {
  await labDown(LAB);
}, T);

const pairKey = (
  r: { srcCluster: string; dstCluster: string; family: number; proto: string },
  kind: string,
) => `${r.srcCluster}->${r.dstCluster} ${kind} v${r.family} ${r.proto}`;

describe("default lab: P2P, gateway and global-IP clusters", () => {
  test(
    "every pod reaches every other cluster's pods and services (ping + TCP, IPv4 + IPv6)",
    async () => {
      const res = await probeUntilPass(lab.plan, { concurrency: 8 });
      expect(res.failed, `failed probes:\n${res.failed.join("\n")}`).toEqual([]);
      // The matrix covers each kind of path the lab was designed for.
      const covered = new Set(res.results.map((r) => pairKey(r, r.dst.startsWith("svc/") ? "svc" : "pod")));
      const required = [
        // P2P <-> P2P with the same pod CIDR, through global IPs (IPv4 only: c3 is IPv4).
        "c1->c3 pod v4 icmp",
        "c3->c1 pod v4 tcp",
        "c1->c3 svc v4 tcp",
        "c3->c1 svc v4 tcp",
        // P2P <-> gateway, both families.
        "c1->c2 pod v4 tcp",
        "c1->c2 pod v6 tcp",
        "c2->c1 pod v4 icmp",
        "c2->c1 pod v6 icmp",
        "c2->c1 svc v6 tcp",
        "c1->c2 svc v6 tcp",
        "c3->c2 pod v4 tcp",
        "c2->c3 pod v4 tcp",
        "c2->c3 svc v4 tcp",
      ];
      expect(required.filter((k) => !covered.has(k))).toEqual([]);
      // c1 and c3 pods are addressed by their global IPs across clusters.
      const c1ToC3 = res.results.filter(
        (r) => r.srcCluster === "c1" && r.dstCluster === "c3" && r.family === 4,
      );
      expect(c1ToC3.length).toBeGreaterThan(0);
      for (const r of c1ToC3.filter((x) => !x.dst.startsWith("svc/")))
        expect(r.ip.startsWith("242.3.")).toBe(true);
      expect(res.total).toBe(126);
    },
    T,
  );

  test(
    "a non-gateway node of a gateway cluster cannot reach other clusters' underlay, its pods still reach their pods",
    async () => {
      const plan = lab.plan;
      const node = plan.nodes.find((n) => n.cluster === "c2" && !n.gatewayCandidate);
      const gw = plan.nodes.find((n) => n.cluster === "c2" && n.gatewayCandidate);
      const far = plan.nodes.filter((n) => n.cluster !== "c2");
      if (!node || !gw || far.length === 0) throw new Error("default lab shape changed");
      const ping = (ns: string, ip: string, fam: 4 | 6) =>
        inNs(ns, ["ping", `-${fam}`, "-c1", "-W1", "-q", ip], { allowFail: true }).then((r) => r.code === 0);

      const attempts = far.flatMap((f) => [
        { to: `${f.name} ${f.ipv4}`, ok: ping(node.ns, f.ipv4, 4) },
        { to: `${f.name} ${f.ipv6}`, ok: ping(node.ns, f.ipv6, 6) },
      ]);
      const leaks: string[] = [];
      for (const a of attempts) if (await a.ok) leaks.push(`${node.name} -> ${a.to}`);
      expect(leaks, `non-gateway node reached another cluster's underlay:\n${leaks.join("\n")}`).toEqual([]);
      // Control: the same underlay IPs answer a gateway candidate (the fabric works, only the node is fenced).
      const target = far[0]!;
      expect(await ping(gw.ns, target.ipv4, 4)).toBe(true);
      expect(await ping(gw.ns, target.ipv6, 6)).toBe(true);

      // The node has no bridge overlay: it sends through its gateway over vx-local.
      const links = await inNs(node.ns, ["ip", "-j", "link", "show"]);
      const names = (JSON.parse(links.stdout) as Array<{ ifname: string }>).map((l) => l.ifname);
      expect(names).toContain("vx-local");
      expect(names).not.toContain("vx-bridge");
      const routes = await inNs(node.ns, ["ip", "-4", "-j", "route", "show", "table", "200", "proto", "75"]);
      const devs = new Set((JSON.parse(routes.stdout) as Array<{ dev: string }>).map((r) => r.dev));
      expect([...devs]).toEqual(["vx-local"]);

      const res = await probeUntilPass(plan, {
        filter: (p) => p.src.node === node.name,
        includeServices: true,
      });
      expect(res.failed, `failed probes:\n${res.failed.join("\n")}`).toEqual([]);
      expect(res.total).toBe(18);
    },
    T,
  );

  test(
    "bad topology input is refused with a 4xx naming the field; replica, kernel and traffic unchanged",
    async () => {
      const { plan, token } = lab;
      const target = "c1-node-1";
      const other = "c3-node-2";
      const ns = plan.nodes.find((n) => n.name === target)!.ns;
      const topoBefore = await agentJson<Topology>(LAB, target, "/v1/topology");
      const otherBefore = await agentJson<Topology>(LAB, other, "/v1/topology");
      const kernelBefore = await settledListings(LAB, target, ns);
      const planBefore = (await agentJson<HostState>(LAB, target, "/v1/plan")).body;
      expect(topoBefore.body.nodes.length).toBe(7);

      const mutate = (f: (t: Topology) => void): Topology => {
        const t = structuredClone(plan.topology);
        f(t);
        return t;
      };
      const cases: Array<{ name: string; body: Topology; field: string; words: string }> = [
        {
          name: "malformed CIDR",
          body: mutate((t) => {
            t.clusters[0]!.podCIDRs[0] = "10.244.0.0/33";
          }),
          field: "clusters[0].podCIDRs[0]",
          words: "not a valid CIDR",
        },
        {
          name: "overlapping pod CIDRs without a global map",
          body: mutate((t) => {
            t.clusters[0]!.globalCIDRs = {};
            t.clusters[2]!.globalCIDRs = {};
          }),
          field: "clusters[2].podCIDRs[0]",
          words: "overlaps",
        },
        {
          name: "duplicate cluster name",
          body: mutate((t) => {
            t.clusters[2]!.name = "c1";
          }),
          field: "clusters[2].name",
          words: "duplicate cluster name",
        },
        {
          name: "duplicate node name",
          body: mutate((t) => {
            t.nodes[1]!.name = t.nodes[0]!.name;
          }),
          field: "nodes[1].name",
          words: "duplicate node name",
        },
        {
          name: "unknown cluster",
          body: mutate((t) => {
            t.nodes[0]!.cluster = "nope";
          }),
          field: "nodes[0].cluster",
          words: 'unknown cluster "nope"',
        },
      ];
      const wrong: string[] = [];
      for (const c of cases) {
        const r = await agentJson<{ code?: string; message?: string; issues?: Array<{ path: string }> }>(
          LAB,
          target,
          "/v1/topology",
          { method: "POST", body: c.body, token },
        );
        const msg = r.body.message ?? "";
        if (r.status !== 422 || !msg.includes(c.field) || !msg.includes(c.words)) {
          wrong.push(`${c.name}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
        }
        if (!r.body.issues?.some((i) => i.path === c.field)) wrong.push(`${c.name}: no issue at ${c.field}`);
      }
      const notJson = await agentPostRaw(LAB, target, "/v1/topology", "{clusters: [", token);
      if (notJson.status !== 400 || !String(notJson.body.message).includes("not valid JSON")) {
        wrong.push(`non-JSON: HTTP ${notJson.status} ${JSON.stringify(notJson.body).slice(0, 200)}`);
      }
      const huge = JSON.stringify({ clusters: [], nodes: [], pad: "x".repeat(MAX_TOPOLOGY_BYTES) });
      const tooBig = await agentPostRaw(LAB, target, "/v1/topology", huge, token);
      if (tooBig.status !== 413 || !String(tooBig.body.message).includes("exceeds")) {
        wrong.push(`oversize: HTTP ${tooBig.status} ${JSON.stringify(tooBig.body).slice(0, 200)}`);
      }
      expect(wrong, wrong.join("\n")).toEqual([]);

      const metrics = await agentJson<string>(LAB, target, "/metrics");
      const rejected = Number(/kosmos_topology_rejected_total (\d+)/.exec(metrics.body)?.[1] ?? 0);
      expect(rejected).toBeGreaterThanOrEqual(cases.length);

      // Nothing changed: the replica (here and, through gossip, elsewhere), the kernel, the traffic.
      expect((await agentJson<Topology>(LAB, target, "/v1/topology")).body).toEqual(topoBefore.body);
      expect((await agentJson<Topology>(LAB, other, "/v1/topology")).body).toEqual(otherBefore.body);
      const rec = await agentJson<{ applied: boolean }>(LAB, target, "/v1/reconcile", {
        method: "POST",
        token,
      });
      expect(rec.body.applied).toBe(true);
      // The kernel is compared under the same plan as before. A peer that gossip declared dead for
      // a moment moves the plan only until it is alive again; a moved gateway election moves it for
      // good, and then the comparison says nothing about the refused seeds: skipped, said so.
      const kernelAfter = await until("the plan of before (every member alive)", 30_000, async () => {
        const l = await settledListings(LAB, target, ns, { timeoutMs: 10_000 });
        return l.hash === kernelBefore.hash ? l : undefined;
      }).catch(() => undefined);
      if (kernelAfter) {
        const d = diffListings(kernelBefore.listings, kernelAfter.listings);
        expect(d, d.join("\n")).toEqual([]);
      } else {
        const planNow = (await agentJson<HostState>(LAB, target, "/v1/plan")).body;
        const moved = JSON.stringify(planNow.gateways) !== JSON.stringify(planBefore.gateways);
        const what = `gateways ${JSON.stringify(planBefore.gateways)} -> ${JSON.stringify(planNow.gateways)}`;
        expect(moved, `${target}'s plan changed though its replica did not (${what})`).toBe(true);
        console.warn(
          `kernel comparison skipped, because the gateway election moved during the test (${what})`,
        );
      }
      const res = await probeUntilPass(plan, { filter: touchesNode(target) });
      expect(res.failed, `failed probes:\n${res.failed.join("\n")}`).toEqual([]);
    },
    2 * T, // may wait 30 s for the plan of before, then probes
  );
});
