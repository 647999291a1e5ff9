/**
 * Pod addresses from a node's pod CIDRs (pure): the first host of each CIDR is the node's cni0
 * gateway, the next `reserved` hosts are left to the lab's own pods (`pod-<j>` of the network-only
 * lab), and a pod gets the lowest free address of each family after them.
 */
import { KosmosError } from "../errors/index.ts";
import { familyOf, hostAt, prefixLen } from "../lab/index.ts";

export class IpamExhaustedError extends KosmosError<"KOSMOS_IPAM_EXHAUSTED"> {
  constructor(message: string) {
    super("KOSMOS_IPAM_EXHAUSTED", message, "give the node a larger pod CIDR or run fewer pods on it");
  }
}

/** One address per CIDR, not in `used`; throws when a CIDR is full. */
export function allocatePodIPs(podCIDRs: string[], used: ReadonlySet<string>, reserved = 16): string[] {
  return podCIDRs.map((cidr) => {
    const bits = familyOf(cidr) === 4 ? 32 : 128;
    // Never more than 2^16 candidates (an IPv6 /64 is not walked to its end).
    const size = 2 ** Math.min(16, bits - prefixLen(cidr));
    for (let n = 2 + reserved; n < size - 1; n++) {
      const ip = hostAt(cidr, n);
      if (!used.has(ip)) return ip;
    }
    throw new IpamExhaustedError(`pod CIDR ${cidr} has no free address (${used.size} in use)`);
  });
}
