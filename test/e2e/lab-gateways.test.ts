/**
 * ClusterLink data plane end to end in a second lab shape: two gateway-mode dual-stack clusters
 * (gateway <-> gateway, non-gateway nodes behind their gateway on both sides) and an IPv6-only P2P
 * pair (IPv6-only P2P <-> P2P, IPv6-only P2P <-> dual-stack gateway). The last tests turn on IPsec
 * (elastic IPs on every node) and follow the kernel's ESP capability (detected here; the agents
 * must report the same): without ESP, policies installed, states degraded, traffic fails closed;
 * with ESP, states installed, traffic passes and crosses the underlay as ESP only (captured in the
 * fabric). Exactly one of the two runs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { detectCapabilities } from "../../internal/dataplane/index.ts";
import { parseLabConfig } from "../../internal/lab/config.ts";
import { type LabHandle, labDown, labUp } from "../../internal/lab/lab.ts";
import { labAgentPid } from "../../internal/lab/ops.ts";
import type { LabNodePlan } from "../../internal/lab/plan.ts";
import { expectedProbes, probeOnce } from "../../internal/lab/probe.ts";
import { inNs } from "../../internal/lab/sh.ts";
import type { HostState } from "../../internal/planner/index.ts";
import type { Topology } from "../../internal/topology/index.ts";
import { NetnsScope } from "../helpers/netns.ts";
import { skipBecause } from "../helpers/skip.ts";
import { pingUnderCapture } from "./esp-capture.ts";
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

/** Whether this kernel installs ESP states: decides which IPsec test runs (agents must agree). */
async function detectEsp(): Promise<{ ok: boolean; message: string }> {
  const scope = new NetnsScope();
  try {
    const ns = await scope.netns("esp");
    return (await detectCapabilities(ns.runner())).xfrmEsp;
  } finally {
    await scope.cleanup();
  }
}
const ESP = await detectEsp();

/** An IPv4 ping target: a pod of g1's gateway node -> a pod of g2. */
function g1ToG2Pod() {
  const g1pod = lab.plan.nodes.find((n) => n.name === "g1-node-1")!.pods[0]!;
  const probe = expectedProbes(lab.plan, {
    srcClusters: ["g1"],
    dstClusters: ["g2"],
    includeServices: false,
    protos: ["icmp"],
  }).find((p) => p.src.id === g1pod.id && p.dst.family === 4 && p.dst.id.startsWith("g2-node-1-"))!;
  return { src: probe.src, dst: probe.dst };
}

interface AgentIpsecView {
  ready: boolean;
  ipsec?: { status: string; message?: string };
  capabilities: { xfrmEsp: { ok: boolean } };
}

/**
 * Give every node an elastic IP (its underlay address), push that topology to every agent, wait
 * until each applied it (bridge nodes with IPsec `status`), and check the xfrm policies: on bridge
 * nodes exactly the planned ones, joining this node's elastic IP to peers' of the same family, in
 * all three directions; none elsewhere. Returns the problems found (not yet asserted).
 */
async function applyIpsec(status: "ok" | "degraded") {
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
  const states = new Map<string, AgentIpsecView>();
  for (const n of plan.nodes) {
    const isBridge = bridgeNodes.includes(n);
    const state = await until(`${n.name} to apply the IPsec topology`, 20_000, async () => {
      const s = await agentJson<AgentIpsecView>(LAB, n.name, "/v1/state");
      if (!s.body.ready) return undefined;
      if (isBridge && s.body.ipsec?.status !== status)
        throw new Error(`ipsec ${JSON.stringify(s.body.ipsec)}`);
      return s.body;
    });
    states.set(n.name, state);
    if (state.capabilities.xfrmEsp.ok !== ESP.ok)
      problems.push(
        `${n.name}: agent says ESP ${state.capabilities.xfrmEsp.ok}, this test detected ${ESP.ok}`,
      );
    const served = (await agentJson<HostState>(LAB, n.name, "/v1/plan")).body.xfrm;
    const planned = served.policies;
    if (served.states.some((st) => st.aeadKeyHex !== "<derived>"))
      problems.push(`${n.name}: /v1/plan serves ESP keys`);
    if (isBridge && served.states.length === 0) problems.push(`${n.name}: no ESP states planned`);
    const kernel = parseXfrm((await inNs(n.ns, ["ip", "xfrm", "policy", "list"])).stdout);
    if (!isBridge) {
      if (planned.length + kernel.length > 0)
        problems.push(`${n.name}: not a bridge node but has xfrm policies`);
      continue;
    }
    problems.push(...policyProblems(n.name, n.cluster, planned, kernel, eip, bridgeNodes));
  }
  return { eip, pids, bridgeNodes, problems, states };
}

/** The planned policies of bridge node `self` join elastic IPs, cover out/in/fwd, and are in the kernel. */
function policyProblems(
  self: string,
  cluster: string,
  planned: HostState["xfrm"]["policies"],
  kernel: XfrmPolicyRow[],
  eip: Map<string, string>,
  bridgeNodes: LabNodePlan[],
): string[] {
  const problems: string[] = [];
  const own = eip.get(self)!;
  // Peers with an elastic IP of the same family: the other clusters' bridge nodes.
  const peers = bridgeNodes.filter(
    (p) => p.cluster !== cluster && eip.get(p.name)!.includes(":") === own.includes(":"),
  );
  if (peers.length === 0) problems.push(`${self}: lab shape gives it no IPsec peer`);
  if (planned.length === 0) problems.push(`${self}: no planned policies`);
  const peerEips = new Set(peers.map((p) => eip.get(p.name)));
  for (const p of planned) {
    const okTmpl =
      p.dir === "out"
        ? p.tmplSrc === own && peerEips.has(p.tmplDst)
        : p.tmplDst === own && peerEips.has(p.tmplSrc);
    if (!okTmpl) problems.push(`${self}: policy ${JSON.stringify(p)} does not join elastic IPs`);
  }
  for (const dir of ["out", "in", "fwd"]) {
    if (!planned.some((p) => p.dir === dir)) problems.push(`${self}: no ${dir} policy planned`);
  }
  const want = planned.map((p) => rowKey({ ...p })).sort();
  const got = kernel.map(rowKey).sort();
  if (JSON.stringify(want) !== JSON.stringify(got)) {
    problems.push(
      `${self}: kernel policies differ from the plan:\n  want ${want.join("\n       ")}\n  got  ${got.join("\n       ")}`,
    );
  }
  return problems;
}

/** No agent crashed or restarted; uninstall removes the policies and states too (owned reqids). */
async function agentsAliveThenUninstall(pids: Map<string, number | undefined>): Promise<void> {
  for (const n of lab.plan.nodes) {
    expect(await labAgentPid(LAB, n.name)).toBe(pids.get(n.name));
    expect((await agentJson(LAB, n.name, "/healthz")).status).toBe(200);
  }
  const v6b = lab.plan.nodes.find((n) => n.cluster === "v6b")!;
  const un = await agentJson<{ errors: unknown[] }>(LAB, v6b.name, "/v1/uninstall", {
    method: "POST",
    token: lab.token,
  });
  expect(un.status).toBe(200);
  expect(un.body.errors).toEqual([]);
  const left = parseXfrm((await inNs(v6b.ns, ["ip", "xfrm", "policy", "list"])).stdout);
  expect(left.map(rowKey)).toEqual([]);
  expect((await inNs(v6b.ns, ["ip", "xfrm", "state", "list"])).stdout.trim()).toBe("");
}

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

  test.skipIf(
    skipBecause(ESP.ok, `this kernel installs ESP states (${ESP.message}); the ESP test runs instead`),
  )(
    "IPsec without ESP: planned xfrm policies in the kernel, states degraded with the kernel message, traffic fails closed",
    async () => {
      const ctx = await applyIpsec("degraded");
      for (const n of ctx.bridgeNodes) {
        const ipsec = ctx.states.get(n.name)?.ipsec;
        if (!ipsec?.message?.match(/^ESP state not installed: \S.+/)) {
          ctx.problems.push(`${n.name}: ipsec ${JSON.stringify(ipsec)}`);
        }
      }
      expect(ctx.problems, ctx.problems.join("\n")).toEqual([]);
      // Fail closed: between two IPsec gateways, pod traffic does not leave in clear text.
      const { src, dst } = g1ToG2Pod();
      expect((await probeOnce(src, dst, "icmp", 1)).ok).toBe(false);
      await agentsAliveThenUninstall(ctx.pids);
    },
    T,
  );

  // Not run on this project's machines (no ESP module): written against the ESP-less run's checks.
  test.skipIf(skipBecause(!ESP.ok, `this kernel has no ESP states (${ESP.message})`))(
    "IPsec with ESP: policies and states in the kernel, status ok, pod traffic passes and crosses the underlay as ESP only",
    async () => {
      const ctx = await applyIpsec("ok");
      for (const n of ctx.bridgeNodes) {
        const planned = (await agentJson<HostState>(LAB, n.name, "/v1/plan")).body.xfrm.states;
        const kernel = (await inNs(n.ns, ["ip", "xfrm", "state", "list"])).stdout.match(/^src /gm) ?? [];
        if (planned.length === 0) ctx.problems.push(`${n.name}: no planned ESP states`);
        if (kernel.length !== planned.length)
          ctx.problems.push(
            `${n.name}: ${kernel.length} ESP states in the kernel, ${planned.length} planned`,
          );
      }
      expect(ctx.problems, ctx.problems.join("\n")).toEqual([]);
      // Between the two gateways (elastic IP = underlay IPv4 here), captured in the fabric.
      const { src, dst } = g1ToG2Pod();
      const cap = await pingUnderCapture({
        captureNs: lab.plan.fabricNs,
        a: ctx.eip.get("g1-node-1")!,
        b: ctx.eip.get("g2-node-1")!,
        srcNs: src.ns,
        dst: dst.ip,
      });
      expect(cap.ping.code, cap.ping.output).toBe(0);
      expect(cap.espPackets).toBeGreaterThanOrEqual(6);
      expect(cap.clearPayload).toBe(false);
      await agentsAliveThenUninstall(ctx.pids);
    },
    T,
  );
});
