/**
 * The topology model: what the replica holds and the planner reads.
 *
 * This file is the contract between store, planner, agent, lab and controller.
 * Shapes only (zod schemas + inferred types); semantic validation (overlaps, clashes)
 * lives in validate.ts. Field names follow upstream Kosmos where one exists.
 */
import { z } from "zod";
import { ServiceEndpointsRecordSchema, ServiceImportRecordSchema } from "./services.ts";

/** DNS-1123 label, as Kubernetes object names. */
export const NameSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a DNS-1123 label (lowercase letters, digits, '-')");

export const NetworkTypeSchema = z.enum(["p2p", "gateway"]);
export type NetworkType = z.infer<typeof NetworkTypeSchema>;

export const IpFamilySchema = z.enum(["ipv4", "ipv6", "dual"]);
export type IpFamily = z.infer<typeof IpFamilySchema>;

/** A CIDR string as written by the user ("10.244.0.0/16", "fd00:10::/56"); checked in validate.ts. */
export const CidrStringSchema = z.string().min(3).max(64);
export const IpStringSchema = z.string().min(2).max(45);

export const DEFAULT_BRIDGE_CIDRS = { ip: "220.0.0.0/8", ip6: "9480::/16" } as const;
export const DEFAULT_LOCAL_CIDRS = { ip: "210.0.0.0/8", ip6: "9470::/16" } as const;

export const CidrPairSchema = z.object({
  ip: CidrStringSchema.default(DEFAULT_BRIDGE_CIDRS.ip),
  ip6: CidrStringSchema.default(DEFAULT_BRIDGE_CIDRS.ip6),
});

export const ClusterSchema = z.object({
  name: NameSchema,
  networkType: NetworkTypeSchema.default("p2p"),
  ipFamily: IpFamilySchema.default("ipv4"),
  /** Cluster-wide pod CIDRs (both families for dual stack). */
  podCIDRs: z.array(CidrStringSchema).default([]),
  serviceCIDRs: z.array(CidrStringSchema).default([]),
  /** upstream `globalCIDRsMap`: local CIDR -> global CIDR of the same prefix length. */
  globalCIDRs: z.record(CidrStringSchema, CidrStringSchema).default({}),
  bridgeCIDRs: z
    .object({
      ip: CidrStringSchema.default(DEFAULT_BRIDGE_CIDRS.ip),
      ip6: CidrStringSchema.default(DEFAULT_BRIDGE_CIDRS.ip6),
    })
    .default({ ...DEFAULT_BRIDGE_CIDRS }),
  localCIDRs: z
    .object({
      ip: CidrStringSchema.default(DEFAULT_LOCAL_CIDRS.ip),
      ip6: CidrStringSchema.default(DEFAULT_LOCAL_CIDRS.ip6),
    })
    .default({ ...DEFAULT_LOCAL_CIDRS }),
  /** Optional overlay MTU override; default = underlay MTU - 50 (v4) / - 70 (v6). */
  mtu: z.number().int().min(1280).max(65535).optional(),
});
export type Cluster = z.infer<typeof ClusterSchema>;
export type ClusterInput = z.input<typeof ClusterSchema>;

export const NodeSchema = z.object({
  /** Globally unique node name (ClusterNode object name). */
  name: NameSchema,
  cluster: NameSchema,
  /** Underlay addresses (the VTEP sources). At least the families the cluster uses. */
  ipv4: IpStringSchema.optional(),
  ipv6: IpStringSchema.optional(),
  /** This node's pod CIDRs (Node.spec.podCIDRs). */
  podCIDRs: z.array(CidrStringSchema).default([]),
  /** May be elected gateway of a gateway-mode cluster. */
  gatewayCandidate: z.boolean().default(false),
  /** Public (elastic) IP: when set on both ends, cross-cluster pod traffic is protected with IPsec. */
  elasticIP: IpStringSchema.optional(),
  /** Underlay NIC the VXLAN devices are bound to (default: the NIC of the default route). */
  interfaceName: z.string().min(1).max(15).optional(),
  /** Underlay NIC MTU as reported by the node (default 1500). */
  underlayMTU: z.number().int().min(1280).max(65535).optional(),
});
export type Node = z.infer<typeof NodeSchema>;
export type NodeInput = z.input<typeof NodeSchema>;

export const TopologySchema = z.object({
  clusters: z.array(ClusterSchema).default([]),
  nodes: z.array(NodeSchema).default([]),
  /** Multi-cluster services (services.ts); optional, so topologies without MCS stay as they were. */
  serviceImports: z.array(ServiceImportRecordSchema).optional(),
  serviceEndpoints: z.array(ServiceEndpointsRecordSchema).optional(),
});
export type Topology = z.infer<typeof TopologySchema>;
export type TopologyInput = z.input<typeof TopologySchema>;

/** Liveness of a member as seen from the local replica (SWIM states). */
export const MemberStateSchema = z.enum(["alive", "suspect", "dead", "left"]);
export type MemberState = z.infer<typeof MemberStateSchema>;

/**
 * Everything the planner needs to compute one node's host state. Built by the agent
 * from its replica; pure data.
 */
export interface PlanInput {
  topology: Topology;
  /** Name of the node being planned. */
  self: string;
  /** Liveness per node name; a node absent from the map counts as alive. */
  members?: Record<string, MemberState>;
  /**
   * Liveness used for gateway/service-node election only (default: `members`). The agent passes raw
   * SWIM states here (fast failover) and, in `members`, states where a node counts as dead only once
   * it has been dead for a grace period (so an agent restart does not withdraw a live node's routes).
   */
  electionMembers?: Record<string, MemberState>;
  /**
   * Gateway claims published by the nodes themselves (node_status.gatewayFor/gatewaySince). The
   * newest claim of an alive candidate wins, so agents that start fresh (no previous choice) agree
   * with the fleet instead of picking the lowest name.
   */
  gatewayClaims?: Array<{ node: string; cluster: string; since: number }>;
  /** Currently active gateway per gateway-mode cluster (for stickiness); recomputed if absent/dead. */
  gateways?: Record<string, string>;
  /**
   * Currently elected service node per P2P cluster (the node remote clusters route its service
   * CIDRs to; sticky like gateways). Additive: absent means "elect afresh".
   */
  serviceNodes?: Record<string, string>;
  /**
   * Installation secret used to derive per-pair IPsec keys (HKDF). Never gossiped.
   * When absent, IPsec policies are still planned but no states (keys) are.
   */
  ipsecSecret?: Uint8Array;
  /** Key epoch, bumped to rotate IPsec keys. */
  ipsecEpoch?: number;
}
