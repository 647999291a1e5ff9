/**
 * Builds and removes the lab's namespaces, links, addresses, routes and the stand-ins for what a real
 * cluster would have (a host-gw CNI, kube-proxy service NAT, the "internet" between clusters).
 * Nothing here belongs to Kosmos: these are the substrate the agents run on.
 */
import { createHash } from "node:crypto";
import { familyOf } from "./addr.ts";
import type { LabClusterPlan, LabNodePlan, LabPlan, LabPodPlan, LabServicePlan } from "./plan.ts";
import { LAB_ECHO_PORT } from "./plan.ts";
import { inNs, ipBatch, isRunning, listNetns, netnsPids, sh, spawnDetached } from "./sh.ts";

const SYSCTLS_ROUTER = [
  "net.ipv4.ip_forward=1",
  "net.ipv6.conf.all.forwarding=1",
  "net.ipv6.conf.all.accept_dad=0",
  "net.ipv6.conf.default.accept_dad=0",
  "net.ipv4.conf.all.rp_filter=0",
  "net.ipv4.conf.default.rp_filter=0",
];

async function addNs(ns: string): Promise<void> {
  await sh(["ip", "netns", "add", ns]);
  await ipBatch(ns, ["link set lo up"]);
}

async function sysctls(ns: string, kv: string[]): Promise<void> {
  await inNs(ns, ["sysctl", "-q", "-w", ...kv]);
}

/** nft filter in the fabric: in gateway clusters only gateway candidates may leave/enter the LAN. */
export function renderFabricFilter(plan: LabPlan): string {
  const lines = [
    "table inet labfabric {",
    "  chain forward {",
    "    type filter hook forward priority 0; policy accept;",
  ];
  for (const c of plan.clusters) {
    if (c.networkType !== "gateway") continue;
    const gws = plan.nodes.filter((n) => n.cluster === c.name && n.gatewayCandidate);
    const v4 = gws.map((n) => n.ipv4);
    const v6 = gws.map((n) => n.ipv6);
    const set4 = v4.length ? `{ ${v4.join(", ")} }` : "{ 0.0.0.0 }";
    const set6 = v6.length ? `{ ${v6.join(", ")} }` : "{ :: }";
    lines.push(
      `    iifname "${c.bridge}" oifname != "${c.bridge}" ip saddr != ${set4} drop`,
      `    iifname "${c.bridge}" oifname != "${c.bridge}" ip6 saddr != ${set6} drop`,
      `    oifname "${c.bridge}" iifname != "${c.bridge}" ip daddr != ${set4} drop`,
      `    oifname "${c.bridge}" iifname != "${c.bridge}" ip6 daddr != ${set6} drop`,
    );
  }
  lines.push("  }", "}");
  return `${lines.join("\n")}\n`;
}

/**
 * kube-proxy stand-in for one node: the cluster's ClusterIP is DNATed (all protocols, so ping works
 * too) to a random backend pod; traffic from outside the cluster's pod CIDRs is masqueraded, as
 * kube-proxy does with --cluster-cidr, so replies come back through this node; hairpin traffic (a
 * pod reaching a backend on its own node's bridge) is masqueraded too, as kube-proxy does.
 */
export function renderKubeProxy(svc: LabServicePlan, cluster: LabClusterPlan): string {
  const pod4 = cluster.podCIDRs.filter((p) => familyOf(p) === 4);
  const pod6 = cluster.podCIDRs.filter((p) => familyOf(p) === 6);
  const lines = ["table inet labproxy {"];
  const svcChain: string[] = ["  chain svc {"];
  if (svc.ipv4 && svc.backends4.length) {
    const map = svc.backends4.map((b, i) => `${i} : ${b}`).join(", ");
    if (pod4.length)
      svcChain.push(`    ip daddr ${svc.ipv4} ip saddr != { ${pod4.join(", ")} } meta mark set 0x4000`);
    svcChain.push(
      `    ip daddr ${svc.ipv4} dnat ip to numgen random mod ${svc.backends4.length} map { ${map} }`,
    );
  }
  if (svc.ipv6 && svc.backends6.length) {
    const map = svc.backends6.map((b, i) => `${i} : ${b}`).join(", ");
    if (pod6.length)
      svcChain.push(`    ip6 daddr ${svc.ipv6} ip6 saddr != { ${pod6.join(", ")} } meta mark set 0x4000`);
    svcChain.push(
      `    ip6 daddr ${svc.ipv6} dnat ip6 to numgen random mod ${svc.backends6.length} map { ${map} }`,
    );
  }
  svcChain.push("  }");
  lines.push(
    ...svcChain,
    "  chain pre { type nat hook prerouting priority dstnat; policy accept; jump svc; }",
    "  chain out { type nat hook output priority -100; policy accept; jump svc; }",
    '  chain post { type nat hook postrouting priority srcnat; policy accept; meta mark & 0x4000 == 0x4000 masquerade; ct status dnat oifname "cni0" masquerade; }',
    "}",
  );
  return `${lines.join("\n")}\n`;
}

/**
 * The switch namespace keeps one L2 bridge per cluster LAN; the fabric (router) namespace is linked
 * to each by a veth (`lan<k>` on the router, `up<k>` on the bridge). The router's interfaces are veths,
 * not bridge devices: a bridge device has no hw_enc_features, so routing a VXLAN GSO packet out of
 * one would segment it in software (a lab artefact that quartered overlay throughput).
 */
async function buildFabric(plan: LabPlan): Promise<void> {
  await addNs(plan.switchNs);
  await addNs(plan.fabricNs);
  await sysctls(plan.fabricNs, SYSCTLS_ROUTER);
  await sysctls(plan.switchNs, ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]);
  const sw: string[] = [];
  for (const c of plan.clusters) sw.push(`link add ${c.bridge} type bridge`, `link set ${c.bridge} up`);
  await ipBatch(plan.switchNs, sw);
  const rt: string[] = [];
  for (const c of plan.clusters) {
    const uplink = `up${c.index}`;
    await sh([
      "ip",
      "link",
      "add",
      c.bridge,
      "netns",
      plan.fabricNs,
      "type",
      "veth",
      "peer",
      "name",
      uplink,
      "netns",
      plan.switchNs,
    ]);
    await ipBatch(plan.switchNs, [`link set ${uplink} master ${c.bridge} up`]);
    rt.push(
      `link set ${c.bridge} up`,
      `addr add ${c.router4}/24 dev ${c.bridge}`,
      `addr add ${c.router6}/64 dev ${c.bridge} nodad`,
    );
  }
  await ipBatch(plan.fabricNs, rt);
  await inNs(plan.fabricNs, ["nft", "-f", "-"], { input: renderFabricFilter(plan) });
}

export async function buildNode(plan: LabPlan, node: LabNodePlan): Promise<void> {
  const cluster = plan.clusters.find((c) => c.name === node.cluster);
  if (!cluster) throw new Error(`node ${node.name}: unknown cluster`);
  await addNs(node.ns);
  await sysctls(node.ns, SYSCTLS_ROUTER);
  await sh([
    "ip",
    "link",
    "add",
    "eth0",
    "netns",
    node.ns,
    "type",
    "veth",
    "peer",
    "name",
    node.fabricIf,
    "netns",
    plan.switchNs,
  ]);
  await ipBatch(plan.switchNs, [`link set ${node.fabricIf} master ${cluster.bridge} up`]);
  const lines = [
    "link set eth0 up",
    `addr add ${node.ipv4}/24 dev eth0`,
    `addr add ${node.ipv6}/64 dev eth0 nodad`,
    `route add default via ${cluster.router4}`,
    `route add default via ${cluster.router6}`,
    `link add cni0 address ${cniMac(node.ns)} type bridge`,
    "link set cni0 up",
  ];
  for (const cidr of node.podCIDRs) {
    const gw = cniGateway(cidr);
    lines.push(`addr add ${gw}/${cidr.split("/")[1]} dev cni0${familyOf(cidr) === 6 ? " nodad" : ""}`);
  }
  // host-gw "CNI": the other nodes' pod CIDRs via their underlay address.
  for (const other of plan.nodes) {
    if (other.cluster !== node.cluster || other.name === node.name) continue;
    for (const cidr of other.podCIDRs) {
      lines.push(`route add ${cidr} via ${familyOf(cidr) === 6 ? other.ipv6 : other.ipv4} proto static`);
    }
  }
  await ipBatch(node.ns, lines);
  const svc = plan.services.find((s) => s.cluster === node.cluster);
  if (svc && (svc.backends4.length || svc.backends6.length)) {
    await inNs(node.ns, ["nft", "-f", "-"], { input: renderKubeProxy(svc, cluster) });
  }
}

/**
 * The fixed MAC of a node's cni0 (locally administered, from the node's namespace name). A Linux
 * bridge without an explicit MAC takes the lowest MAC of its ports and changes it when ports come
 * and go: a pod that learned the gateway's MAC while a pod with a lower port MAC was attached keeps
 * sending to that MAC after the other pod is gone, the bridge floods those frames instead of routing
 * them, and the pod is cut off for minutes (its TCP traffic keeps confirming the stale neighbour
 * entry). Seen as the kosmos-controller losing every API server and agent in the mcs-lab bench.
 * Real CNI bridge plugins pin the bridge MAC for the same reason.
 */
export function cniMac(nodeNs: string): string {
  const h = createHash("sha256").update(`cni0\0${nodeNs}`).digest();
  return ["02", ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, "0"))].join(":");
}

export function cniGateway(nodePodCIDR: string): string {
  const [ip] = nodePodCIDR.split("/");
  if (!ip) throw new Error(`bad CIDR ${nodePodCIDR}`);
  if (familyOf(ip) === 4) {
    const o = ip.split(".");
    return `${o[0]}.${o[1]}.${o[2]}.1`;
  }
  return ip.endsWith("::") ? `${ip}1` : `${ip}::1`;
}

export async function buildPod(node: LabNodePlan, pod: LabPodPlan): Promise<void> {
  await addNs(pod.ns);
  await sh([
    "ip",
    "link",
    "add",
    "eth0",
    "netns",
    pod.ns,
    "type",
    "veth",
    "peer",
    "name",
    pod.hostIf,
    "netns",
    node.ns,
  ]);
  await ipBatch(node.ns, [
    `link set ${pod.hostIf} master cni0 up`,
    `link set dev ${pod.hostIf} type bridge_slave hairpin on`,
  ]);
  // No ICMP error rate limit: UDP checks count "port unreachable" as reached, and many sources
  // (masqueraded to one address) probing a pod at once must each get their answer.
  await sysctls(pod.ns, [
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv4.icmp_ratelimit=0",
    "net.ipv6.icmp.ratelimit=0",
  ]);
  const lines = ["link set eth0 up"];
  const p4 = node.podCIDRs.find((c) => familyOf(c) === 4);
  const p6 = node.podCIDRs.find((c) => familyOf(c) === 6);
  if (pod.ipv4 && p4)
    lines.push(
      `addr add ${pod.ipv4}/${p4.split("/")[1]} dev eth0`,
      `route add default via ${cniGateway(p4)}`,
    );
  if (pod.ipv6 && p6)
    lines.push(
      `addr add ${pod.ipv6}/${p6.split("/")[1]} dev eth0 nodad`,
      `route add default via ${cniGateway(p6)}`,
    );
  await ipBatch(pod.ns, lines);
  // The pod's workload: an echo server answering its own id on TCP 8080 (v4 and v6).
  await spawnDetached(pod.ns, [
    "socat",
    `TCP6-LISTEN:${LAB_ECHO_PORT},fork,reuseaddr,ipv6only=0`,
    `SYSTEM:echo ${pod.id}`,
  ]);
}

export type BuildProgress = (step: string, done: number, total: number) => void;

/** Create the whole lab network (no agents). Throws on the first failure; call teardown after. */
export async function buildNetwork(plan: LabPlan, progress?: BuildProgress): Promise<void> {
  const pods = plan.nodes.reduce((a, n) => a + n.pods.length, 0);
  const total = 1 + plan.nodes.length + pods;
  let done = 0;
  await buildFabric(plan);
  progress?.("fabric", ++done, total);
  for (const node of plan.nodes) {
    await buildNode(plan, node);
    progress?.(`node ${node.name}`, ++done, total);
  }
  for (const node of plan.nodes) {
    for (const pod of node.pods) {
      await buildPod(node, pod);
      progress?.(`pod ${pod.id}`, ++done, total);
    }
  }
}

/** The namespaces that belong to lab `prefix`, found on the system (works after a crash). */
export async function labNamespaces(prefix: string): Promise<string[]> {
  return (await listNetns()).filter((n) => n.startsWith(prefix));
}

/** Live processes (zombies excluded) in any of `namespaces`. */
async function livePids(namespaces: string[]): Promise<number[]> {
  return (await Promise.all(namespaces.map((ns) => netnsPids(ns)))).flat().filter(isRunning);
}

/**
 * Signal every live process in `namespaces` with `sig` (each once; processes that appear meanwhile,
 * e.g. a monitor an agent restarts, are signalled as they appear) until none is left or `ms` passed.
 */
async function signalUntilGone(
  namespaces: string[],
  sig: NodeJS.Signals,
  ms: number,
  signalled: Set<number>,
) {
  const sent = new Set<number>();
  const end = Date.now() + ms;
  for (;;) {
    const live = await livePids(namespaces);
    for (const pid of live.filter((p) => !sent.has(p))) {
      try {
        process.kill(pid, sig);
        sent.add(pid);
        signalled.add(pid);
      } catch {
        /* already gone */
      }
    }
    if (live.length === 0 || Date.now() >= end) return;
    await Bun.sleep(20);
  }
}

/**
 * Remove every namespace with the lab's prefix and every process inside them, and return only once
 * those processes are gone (a killed process can take a while to exit on a loaded machine, and a
 * deleted namespace no longer shows what still runs in it). SIGTERM first (agents stop cleanly),
 * SIGKILL to whatever is left after 3 s, then the namespaces are deleted. Throws when a process
 * survives 10 s of SIGKILL (the namespaces are deleted anyway).
 */
export async function teardownNetwork(prefix: string): Promise<{ namespaces: number; processes: number }> {
  const namespaces = await labNamespaces(prefix);
  const signalled = new Set<number>();
  await signalUntilGone(namespaces, "SIGTERM", 3000, signalled);
  await signalUntilGone(namespaces, "SIGKILL", 10_000, signalled);
  // Signalled processes that left the namespaces are waited for too.
  const left = [...signalled].filter(isRunning);
  for (const ns of namespaces) await sh(["ip", "netns", "del", ns], { allowFail: true });
  if (left.length > 0) {
    throw Object.assign(new Error(`processes of the lab still run after SIGKILL: ${left.join(" ")}`), {
      code: "LAB_PROCESSES_LEFT",
      hint: "look at them with `ps -o pid,stat,wchan,args -p PID` (uninterruptible sleep?)",
    });
  }
  return { namespaces: namespaces.length, processes: signalled.size };
}
