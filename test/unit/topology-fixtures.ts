/** Shared fixtures for topology/planner unit tests (mirrors the default lab). */
import type { TopologyInput } from "../../internal/topology/index.ts";

export function labTopology(): TopologyInput {
  return {
    clusters: [
      {
        name: "c1",
        networkType: "p2p",
        ipFamily: "dual",
        podCIDRs: ["10.244.0.0/16", "fd10:1::/48"],
        serviceCIDRs: ["10.96.0.0/16", "fd96:1::/112"],
        globalCIDRs: { "10.244.0.0/16": "242.1.0.0/16" },
      },
      {
        name: "c2",
        networkType: "gateway",
        ipFamily: "dual",
        podCIDRs: ["10.245.0.0/16", "fd10:2::/48"],
        serviceCIDRs: ["10.97.0.0/16", "fd96:2::/112"],
      },
      {
        name: "c3",
        networkType: "p2p",
        ipFamily: "ipv4",
        podCIDRs: ["10.244.0.0/16"],
        serviceCIDRs: ["10.98.0.0/16"],
        globalCIDRs: { "10.244.0.0/16": "242.3.0.0/16" },
      },
    ],
    nodes: [
      {
        name: "c1-n1",
        cluster: "c1",
        ipv4: "192.168.1.1",
        ipv6: "fd00:1ab:1::1",
        podCIDRs: ["10.244.1.0/24", "fd10:1:0:1::/64"],
      },
      {
        name: "c1-n2",
        cluster: "c1",
        ipv4: "192.168.1.2",
        ipv6: "fd00:1ab:1::2",
        podCIDRs: ["10.244.2.0/24", "fd10:1:0:2::/64"],
      },
      {
        name: "c2-n1",
        cluster: "c2",
        ipv4: "192.168.2.1",
        ipv6: "fd00:1ab:2::1",
        podCIDRs: ["10.245.1.0/24", "fd10:2:0:1::/64"],
        gatewayCandidate: true,
      },
      {
        name: "c2-n2",
        cluster: "c2",
        ipv4: "192.168.2.2",
        ipv6: "fd00:1ab:2::2",
        podCIDRs: ["10.245.2.0/24", "fd10:2:0:2::/64"],
        gatewayCandidate: true,
      },
      {
        name: "c2-n3",
        cluster: "c2",
        ipv4: "192.168.2.3",
        ipv6: "fd00:1ab:2::3",
        podCIDRs: ["10.245.3.0/24", "fd10:2:0:3::/64"],
      },
      { name: "c3-n1", cluster: "c3", ipv4: "192.168.3.1", podCIDRs: ["10.244.1.0/24"] },
      { name: "c3-n2", cluster: "c3", ipv4: "192.168.3.2", podCIDRs: ["10.244.2.0/24"] },
    ],
  };
}

/** Deep copy for mutation in a test. */
export function clone<T>(x: T): T {
  return structuredClone(x);
}

/** Deterministic Fisher-Yates shuffle. */
export function shuffled<T>(xs: T[], seed: number): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}
