/** Store-level data shapes beyond the topology model (node_status, members, applied). */
import { z } from "zod";
import { type MemberState, MemberStateSchema, NameSchema } from "../topology/index.ts";

export const MacSchema = z
  .string()
  .regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/, "must be a lowercase MAC address aa:bb:cc:dd:ee:ff");

/** ReplicatedRow.data of table node_status (written by the node itself). */
export const NodeStatusSchema = z.object({
  name: NameSchema,
  /** Agent API base URL, e.g. "https://192.168.1.7:10250". */
  endpoint: z.string().min(1).max(2048).optional(),
  /** SHA-256 fingerprint of the agent TLS certificate (hex). */
  certFingerprint: z.string().min(1).max(200).optional(),
  agentVersion: z.string().min(1).max(100).optional(),
  /** Unix epoch milliseconds. */
  startedAt: z.number().int().nonnegative().optional(),
  /** Device name -> MAC (vx-local, vx-bridge, ...), so peers can program FDB/neighbour entries. */
  macs: z.record(z.string().min(1).max(15), MacSchema).default({}),
  /** Set while this node is the active gateway of this cluster (a claim every agent honours). */
  gatewayFor: z.string().min(1).max(63).optional(),
  /** When the claim was made (Unix ms): the newest claim among alive candidates wins. */
  gatewaySince: z.number().int().nonnegative().optional(),
});
export type NodeStatus = z.infer<typeof NodeStatusSchema>;
export type NodeStatusInput = z.input<typeof NodeStatusSchema>;

/** One row of the local SWIM view (table members). */
export interface Member {
  name: string;
  state: MemberState;
  incarnation: number;
  /** Gossip address host:port. */
  address?: string;
  /** Unix epoch milliseconds. */
  updatedAt: number;
}

export const MemberSchema = z.object({
  name: z.string().min(1).max(253),
  state: MemberStateSchema,
  incarnation: z.number().int().nonnegative(),
  address: z.string().min(1).max(300).optional(),
  updatedAt: z.number().int().nonnegative(),
});

/** What the agent last applied (table applied, singleton). */
export interface AppliedRecord<TPlan = unknown> {
  plan: TPlan;
  planHash: string;
  /** Unix epoch milliseconds. */
  appliedAt: number;
  report?: unknown;
  capabilities?: unknown;
}

/** A gateway claim published in a node_status row: `node` is the active gateway of `cluster` since (Unix ms). */
export interface GatewayClaim {
  node: string;
  cluster: string;
  since: number;
}
