/**
 * A pod's network sandbox in the lab: its own network namespace with eth0 on the node's cni0 bridge,
 * the pod's addresses from the node's pod CIDRs and default routes via the bridge (what the lab's
 * host-gw CNI does for its own pods, lab/network.ts). A hostNetwork pod uses the node's namespace.
 */
import { createHash } from "node:crypto";
import { cniGateway, familyOf, inNs, ipBatch, isRunning, netnsPids, sh } from "../lab/index.ts";

export interface Sandbox {
  /** The namespace the pod's processes run in. */
  ns: string;
  /** Whether `ns` is the pod's own (removed with it). */
  own: boolean;
  ips: string[];
}

/** Names derived from the pod's uid: `<prefix>p<10 hex>` for the namespace, `kp<10 hex>` for the veth. */
export function sandboxNames(prefix: string, uid: string): { ns: string; hostIf: string } {
  const h = createHash("sha256").update(uid).digest("hex").slice(0, 10);
  return { ns: `${prefix}p${h}`, hostIf: `kp${h}` };
}

export async function createSandbox(
  o: { prefix: string; nodeNs: string; podCIDRs: string[]; uid: string },
  ips: string[],
): Promise<Sandbox> {
  const { ns, hostIf } = sandboxNames(o.prefix, o.uid);
  await removeSandbox(ns, o.nodeNs, hostIf); // a leftover of a crashed kubelet
  await sh(["ip", "netns", "add", ns]);
  await sh([
    "ip",
    "link",
    "add",
    "eth0",
    "netns",
    ns,
    "type",
    "veth",
    "peer",
    "name",
    hostIf,
    "netns",
    o.nodeNs,
  ]);
  await ipBatch(o.nodeNs, [
    `link set ${hostIf} master cni0 up`,
    `link set dev ${hostIf} type bridge_slave hairpin on`,
  ]);
  await inNs(ns, [
    "sysctl",
    "-q",
    "-w",
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv4.ping_group_range=0 2147483647",
  ]);
  const lines = ["link set lo up", "link set eth0 up"];
  for (const ip of ips) {
    const cidr = o.podCIDRs.find((c) => familyOf(c) === familyOf(ip));
    if (!cidr) continue;
    const v6 = familyOf(ip) === 6;
    lines.push(`addr add ${ip}/${cidr.split("/")[1]} dev eth0${v6 ? " nodad" : ""}`);
    lines.push(`route add default via ${cniGateway(cidr)}`);
  }
  await ipBatch(ns, lines);
  return { ns, own: true, ips };
}

/** Kill what is left in the namespace, delete it and its veth (nothing there is not an error). */
export async function removeSandbox(ns: string, nodeNs: string, hostIf?: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const pids = (await netnsPids(ns)).filter(isRunning);
    if (pids.length === 0) break;
    for (const p of pids) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    await Bun.sleep(20);
  }
  await sh(["ip", "netns", "del", ns], { allowFail: true });
  if (hostIf) await sh(["ip", "-n", nodeNs, "link", "del", hostIf], { allowFail: true });
}
