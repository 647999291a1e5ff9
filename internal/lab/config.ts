/**
 * Lab configuration (YAML): the clusters of a local multi-cluster lab built from network namespaces.
 * Documented in docs/lab.md. Everything not given gets a default, so `clusters: [{name: c1}]` is valid.
 */
import { KosmosError } from "../errors/index.ts";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { IpFamilySchema, NameSchema, NetworkTypeSchema } from "../topology/index.ts";

/**
 * kind's `extraPortMappings`: the host's 127.0.0.1:hostPort carried to the node's containerPort (its
 * underlay address, in its namespace), for host programs — the API servers — that must reach a
 * hostNetwork pod. hostPort 0: a free port chosen at `lab up` (`lab clusters` shows it). Only with
 * `--kubernetes` (the lab's supervisor runs the socat pair, apibridge.ts).
 */
export const LabPortMappingSchema = z.object({
  containerPort: z.number().int().min(1).max(65535),
  hostPort: z.number().int().min(0).max(65535).default(0),
});
export type LabPortMapping = z.infer<typeof LabPortMappingSchema>;

export const LabNodeSchema = z.object({
  name: NameSchema,
  gateway: z.boolean().default(false),
  extraPortMappings: z.array(LabPortMappingSchema).default([]),
});

export const LabClusterSchema = z.object({
  name: NameSchema,
  networkType: NetworkTypeSchema.default("p2p"),
  ipFamily: IpFamilySchema.default("ipv4"),
  /** Cluster pod CIDRs; one per family in use. Defaults derive from the cluster's index. */
  podCIDRs: z.array(z.string()).optional(),
  serviceCIDRs: z.array(z.string()).optional(),
  globalCIDRs: z.record(z.string(), z.string()).default({}),
  /** A count (nodes named `<cluster>-node-<i>`) or an explicit list. */
  nodes: z.union([z.number().int().min(1).max(64), z.array(LabNodeSchema).min(1).max(64)]).default(2),
  podsPerNode: z.number().int().min(0).max(16).default(1),
  /**
   * Gateway clusters: how many of the counted nodes are gateway candidates (the first ones).
   * Ignored when `nodes` is a list.
   */
  gatewayCandidates: z.number().int().min(1).max(64).default(2),
});
export type LabCluster = z.infer<typeof LabClusterSchema>;

export const LabConfigSchema = z.object({
  clusters: z.array(LabClusterSchema).min(1).max(50),
});
export type LabConfig = z.infer<typeof LabConfigSchema>;
export type LabConfigInput = z.input<typeof LabConfigSchema>;

/**
 * The default lab: one of each kind, so the demo shows everything at once.
 * - c1: P2P, dual stack, pod CIDR 10.244.0.0/16 shared with c3 -> reached through global IPs.
 * - c2: gateway mode, dual stack, 3 nodes of which 2 are gateway candidates.
 * - c3: P2P, IPv4, same pod CIDR as c1.
 */
export const DEFAULT_LAB: LabConfigInput = {
  clusters: [
    {
      name: "c1",
      networkType: "p2p",
      ipFamily: "dual",
      podCIDRs: ["10.244.0.0/16", "fd10:1::/48"],
      serviceCIDRs: ["10.96.0.0/16", "fd96:1::/112"],
      globalCIDRs: { "10.244.0.0/16": "242.1.0.0/16" },
      nodes: 2,
    },
    {
      name: "c2",
      networkType: "gateway",
      ipFamily: "dual",
      podCIDRs: ["10.245.0.0/16", "fd10:2::/48"],
      serviceCIDRs: ["10.97.0.0/16", "fd96:2::/112"],
      nodes: 3,
      gatewayCandidates: 2,
    },
    {
      name: "c3",
      networkType: "p2p",
      ipFamily: "ipv4",
      podCIDRs: ["10.244.0.0/16"],
      serviceCIDRs: ["10.98.0.0/16"],
      globalCIDRs: { "10.244.0.0/16": "242.3.0.0/16" },
      nodes: 2,
    },
  ],
};

/**
 * The ClusterTree lab (`lab up --preset tree`, `lab demo --tree`): a root cluster with real nodes and
 * two leaves, all P2P IPv4, with pod CIDRs that overlap nowhere — a root pod's IP is its leaf pod's IP,
 * routed from the root by ClusterLink without global IPs. The root's node-1 maps a host port to its
 * 10250, where kosmos-clustertree (hostNetwork) serves the virtual nodes' kubelet API to the root API
 * server (docs/clustertree.md).
 */
export const TREE_LAB: LabConfigInput = {
  clusters: [
    {
      name: "root",
      podCIDRs: ["10.244.0.0/16"],
      serviceCIDRs: ["10.96.0.0/16"],
      nodes: [{ name: "node-1", extraPortMappings: [{ containerPort: 10250 }] }, { name: "node-2" }],
    },
    { name: "leaf1", podCIDRs: ["10.245.0.0/16"], serviceCIDRs: ["10.97.0.0/16"], nodes: 2 },
    { name: "leaf2", podCIDRs: ["10.246.0.0/16"], serviceCIDRs: ["10.98.0.0/16"], nodes: 2 },
  ],
};

/** Named lab configs (`lab up --preset <name>`). */
export const LAB_PRESETS: Record<string, LabConfigInput> = { default: DEFAULT_LAB, tree: TREE_LAB };

export class LabConfigError extends KosmosError<"LAB_CONFIG_INVALID"> {
  constructor(message: string, hint: string) {
    super("LAB_CONFIG_INVALID", message, hint);
  }
}

/** Parse and validate a lab config from YAML text (or an already-parsed object). */
export function parseLabConfig(input: string | unknown): LabConfig {
  let raw: unknown = input;
  if (typeof input === "string") {
    try {
      raw = parseYaml(input);
    } catch (e) {
      throw new LabConfigError(`lab config is not valid YAML: ${(e as Error).message}`, "check indentation");
    }
  }
  const res = LabConfigSchema.safeParse(raw);
  if (!res.success) {
    const issues = res.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new LabConfigError(
      `invalid lab config:\n  ${issues.join("\n  ")}`,
      "see docs/lab.md for the schema",
    );
  }
  const names = new Set<string>();
  for (const c of res.data.clusters) {
    if (names.has(c.name))
      throw new LabConfigError(`duplicate cluster name "${c.name}"`, "cluster names must be unique");
    names.add(c.name);
  }
  return res.data;
}
