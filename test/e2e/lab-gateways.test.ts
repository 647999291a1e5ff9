/**
 * ClusterLink data plane end to end in a second lab shape: two gateway-mode dual-stack clusters
 * (gateway <-> gateway, non-gateway nodes behind their gateway on both sides) and an IPv6-only P2P
 * pair (IPv6-only P2P <-> P2P, IPv6-only P2P <-> dual-stack gateway). The last test turns on IPsec
 * (elastic IPs on every node): policies installed, ESP states refused by this kernel (degraded).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseLabConfig } from "../../internal/lab/config.ts";
import { type LabHandle, labDown, labUp } from "../../internal/lab/lab.ts";
import { labAgentPid } from "../../internal/lab/ops.ts";
import { expectedProbes, probeOnce } from "../../internal/lab/probe.ts";
import { inNs } from "../../internal/lab/sh.ts";
import type { HostState } from "../../internal/planner/index.ts";
import type { Topology } from "../../internal/topology/index.ts";
import { agentJson, labName, probeUntilPass, until } from "./helpers.ts";

const LAB = labName("gw");
const T = 60_000;
let lab: LabHandle;

const CONFIG = parseLabConfig({
  clusters: [
    { name: "g1", networkType: "gateway", ipFamily: "dual", nodes: 2, gatewayCandidates: 1 },
    { name: "g2", networkType: "gateway", ipFamily: "dual", nodes: 2, gatewayCandidates: 1 },
    { name: "v6a", networkType: "p2p", ipFamily: "ipv6", nodes: 2 },
    { name: "v6b", networkType: "p2p", ipFamily: "ipv6", nodes: 1 },
  ],
});

beforeAll(async () => {
  await labDown(LAB);
  lab = await labUp(LAB, CONFIG);
}, T);

afterAll(async () => {
  await labDown(LAB);
}, T);

interface XfrmPolicyRow {
  src: string;
  dst: string;
  dir: string;
  tmplSrc: string;
  tmplDst: string;
  reqid: number;
}

/** Parse `ip xfrm policy list` into rows (only policies with a template). */
function parseXfrm(text: string): XfrmPolicyRow[] {
  const out: XfrmPolicyRow[] = [];
  for (const block of text.split(/\n(?=src )/)) {
    const sel = /^src (\S+) dst (\S+)/.exec(block);
    const dir = /dir (\w+)/.exec(block);
    const tmpl = /tmpl src (\S+) dst (\S+)/.exec(block);
    const reqid = /reqid (\d+)/.exec(block);
    if (sel && dir && tmpl && reqid) {
      out.push({
        src: sel[1]!,
        dst: sel[2]!,
        dir: dir[1]!,
        tmplSrc: tmpl[1]!,
        tmplDst: tmpl[2]!,
        reqid: Number(reqid[1]),
      });
    }
  }
  return out;
}

const rowKey = (p: XfrmPolicyRow) =>
  `${p.dir} ${p.src} -> ${p.dst} tmpl ${p.tmplSrc} -> ${p.tmplDst} reqid ${p.reqid}`;

describe("gateway <-> gateway and IPv6-only clusters", () => {
  test(
    "every pod reaches every other cluster's pods and services",
    async () => {
      const res = await probeUntilPass(lab.plan, { concurrency: 8 });
      expect(res.failed, `failed probes:\n${res.failed.join("\n")}`).toEqual([]);
      const covered = new Set(
        res.results.map(
          (r) =>
            `${r.src.replace(/-pod-\d+$/, "")}->${r.dstCluster} ${r.dst.startsWith("svc/") ? "svc" : "pod"} v${r.family}`,
        ),
      );
      const required = [
        // gateway <-> gateway, from a gateway node and from a non-gateway node, both families
        "g1-node-1->g2 pod v4",
        "g1-node-2->g2 pod v4",
        "g1-node-2->g2 pod v6",
        "g2-node-2->g1 pod v6",
        "g2-node-2->g1 svc v4",
        "g1-node-2->g2 svc v6",
        // IPv6-only P2P <-> P2P
        "v6a-node-1->v6b pod v6",
        "v6b-node-1->v6a pod v6",
        "v6b-node-1->v6a svc v6",
        // IPv6-only P2P <-> dual-stack gateway (behind the gateway too)
        "v6a-node-2->g1 pod v6",
        "g2-node-2->v6a pod v6",
        "g1-node-2->v6b svc v6",
      ];
      expect(required.filter((k) => !covered.has(k))).toEqual([]);
      // IPv6-only pods have no IPv4 path and are never probed over IPv4.
      expect(
        res.results.some(
          (r) => r.family === 4 && (r.srcCluster.startsWith("v6") || r.dstCluster.startsWith("v6")),
        ),
      ).toBe(false);
    },
    T,
  );

  test(
    "IPsec: elastic IPs -> planned xfrm policies in the kernel, ESP states degraded with the kernel message, agents alive",
    async () => {
      const { plan, token } = lab;
      const topo: Topology = structuredClone(plan.topology);
      const eip = new Map<string, string>();
      for (const n of topo.nodes) {
        n.elasticIP = n.ipv4 ?? n.ipv6;
        eip.set(n.name, n.elasticIP!);
      }
      const pids = new Map<string, number | undefined>();
      for (const n of plan.nodes) pids.set(n.name, await labAgentPid(LAB, n.name));
      for (const n of plan.nodes) {
        const r = await agentJson(LAB, n.name, "/v1/topology", { method: "POST", body: topo, token });
        expect(r.status).toBe(200);
      }
      // Bridge nodes: the gateways of g1/g2 and every node of the P2P clusters.
      const bridgeNodes = plan.nodes.filter((n) => n.gatewayCandidate || n.cluster.startsWith("v6"));
      const problems: string[] = [];
      for (const n of plan.nodes) {
        const isBridge = bridgeNodes.includes(n);
        const state = await until(`${n.name} to apply the IPsec topology`, 20_000, async () => {
          const s = await agentJson<{ ipsec?: { status: string; message?: string }; ready: boolean }>(
            LAB,
            n.name,
            "/v1/state",
          );
          if (!s.body.ready) return undefined;
          if (isBridge && s.body.ipsec?.status !== "degraded") return undefined;
          return s.body;
        });
        const planned = (await agentJson<HostState>(LAB, n.name, "/v1/plan")).body.xfrm.policies;
        const kernel = parseXfrm((await inNs(n.ns, ["ip", "xfrm", "policy", "list"])).stdout);
        if (!isBridge) {
          if (planned.length + kernel.length > 0)
            problems.push(`${n.name}: not a bridge node but has xfrm policies`);
          continue;
        }
        if (!state.ipsec?.message?.match(/^ESP state not installed: \S.+/)) {
          problems.push(`${n.name}: ipsec ${JSON.stringify(state.ipsec)}`);
        }
        // Peers with an elastic IP of the same family: the other clusters' bridge nodes.
        const self = eip.get(n.name)!;
        const peers = bridgeNodes.filter(
          (p) => p.cluster !== n.cluster && eip.get(p.name)!.includes(":") === self.includes(":"),
        );
        if (peers.length === 0) problems.push(`${n.name}: lab shape gives it no IPsec peer`);
        if (planned.length === 0) problems.push(`${n.name}: no planned policies`);
        const peerEips = new Set(peers.map((p) => eip.get(p.name)));
        for (const p of planned) {
          const okTmpl =
            p.dir === "out"
              ? p.tmplSrc === self && peerEips.has(p.tmplDst)
              : p.tmplDst === self && peerEips.has(p.tmplSrc);
          if (!okTmpl) problems.push(`${n.name}: policy ${JSON.stringify(p)} does not join elastic IPs`);
        }
        for (const dir of ["out", "in", "fwd"]) {
          if (!planned.some((p) => p.dir === dir)) problems.push(`${n.name}: no ${dir} policy planned`);
        }
        const want = planned.map((p) => rowKey({ ...p })).sort();
        const got = kernel.map(rowKey).sort();
        if (JSON.stringify(want) !== JSON.stringify(got)) {
          problems.push(
            `${n.name}: kernel policies differ from the plan:\n  want ${want.join("\n       ")}\n  got  ${got.join("\n       ")}`,
          );
        }
      }
      expect(problems, problems.join("\n")).toEqual([]);

      // Fail closed: between two IPsec gateways, pod traffic does not leave in clear text.
      const g1pod = plan.nodes.find((n) => n.name === "g1-node-1")!.pods[0]!;
      const toG2 = expectedProbes(plan, {
        srcClusters: ["g1"],
        dstClusters: ["g2"],
        includeServices: false,
        protos: ["icmp"],
      }).find((p) => p.src.id === g1pod.id && p.dst.family === 4)!;
      expect((await probeOnce(toG2.src, toG2.dst, "icmp", 1)).ok).toBe(false);

      // No agent crashed or restarted.
      for (const n of plan.nodes) {
        expect(await labAgentPid(LAB, n.name)).toBe(pids.get(n.name));
        expect((await agentJson(LAB, n.name, "/healthz")).status).toBe(200);
      }

      // Uninstall removes the policies too (they carry Kosmos-owned reqids).
      const v6b = plan.nodes.find((n) => n.cluster === "v6b")!;
      const un = await agentJson<{ errors: unknown[] }>(LAB, v6b.name, "/v1/uninstall", {
        method: "POST",
        token,
      });
      expect(un.status).toBe(200);
      expect(un.body.errors).toEqual([]);
      const left = parseXfrm((await inNs(v6b.ns, ["ip", "xfrm", "policy", "list"])).stdout);
      expect(left.map(rowKey)).toEqual([]);
    },
    T,
  );
});
