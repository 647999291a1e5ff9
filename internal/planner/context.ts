/**
 * The shared context of one plan: the node being planned, its cluster, every cluster's parsed data
 * and the elections, computed once (one pass over all nodes) and read by every step.
 */
import type { AddressFamily, MemberState, Node, PlanInput } from "../topology/index.ts";
import { type ClusterCtx, clusterCtxOf, underlayOf } from "./cluster.ts";
import { electGateways, electServiceNodes } from "./election.ts";
import { PlanError } from "./errors.ts";

export interface PlanContext {
  input: PlanInput;
  /** Liveness for routes and tunnel peers (input.members). */
  members: Record<string, MemberState> | undefined;
  selfName: string;
  self: Node;
  selfCtx: ClusterCtx;
  /** Every cluster's data, in topology order (self's cluster included). */
  clusters: Map<string, ClusterCtx>;
  /** Elected gateway per gateway cluster, service node per P2P cluster. */
  gateways: Record<string, string>;
  serviceNodes: Record<string, string>;
  isGatewayCluster: boolean;
  selfIsGateway: boolean;
  /** This node holds vx-bridge: any node of a P2P cluster, the active gateway of a gateway cluster. */
  hasBridge: boolean;
  /** The active gateway of this node's gateway cluster, if any. */
  selfGateway: Node | undefined;
  /** Families this node actually runs: its cluster's, where it has an underlay address. */
  fams: AddressFamily[];
  /** Non-fatal notes; steps append, the order step sorts. */
  warnings: string[];
}

export const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export const selfHas = (ctx: PlanContext, f: AddressFamily): boolean => ctx.fams.includes(f);

export const nodeByName = (ctx: ClusterCtx, name: string | undefined): Node | undefined =>
  name === undefined ? undefined : ctx.nodes.find((n) => n.name === name);

export function buildContext(input: PlanInput): PlanContext {
  const { topology, self: selfName, members } = input;
  const warnings: string[] = [];

  // Group nodes by cluster and find self: one pass.
  const byCluster = new Map<string, Node[]>();
  let self: Node | undefined;
  for (const n of topology.nodes) {
    if (n.name === selfName) self = n;
    let list = byCluster.get(n.cluster);
    if (!list) {
      list = [];
      byCluster.set(n.cluster, list);
    }
    list.push(n);
  }
  if (!self) {
    throw new PlanError(
      "PLAN_SELF_UNKNOWN",
      `node "${selfName}" is not in the topology`,
      "check the agent's --node name",
    );
  }

  const clusters = new Map<string, ClusterCtx>();
  for (const c of topology.clusters) clusters.set(c.name, clusterCtxOf(c, byCluster.get(c.name) ?? []));
  const selfCtx = clusters.get(self.cluster);
  if (!selfCtx) {
    throw new PlanError(
      "PLAN_CLUSTER_UNKNOWN",
      `node "${selfName}" references unknown cluster "${self.cluster}"`,
      "run validateTopology first",
    );
  }
  const selfCluster = selfCtx.cluster;

  const electionView = input.electionMembers ?? members;
  const gateways = electGateways(topology, electionView, input.gateways, input.gatewayClaims);
  const serviceNodes = electServiceNodes(topology, electionView, input.serviceNodes);

  const isGatewayCluster = selfCluster.networkType === "gateway";
  const selfIsGateway = isGatewayCluster && gateways[selfCluster.name] === selfName;

  const fams: AddressFamily[] = [];
  for (const f of selfCtx.fams) {
    if (underlayOf(self, f) !== undefined) fams.push(f);
    else
      warnings.push(`node ${selfName} has no ${f === 4 ? "ipv4" : "ipv6"} underlay address: IPv${f} skipped`);
  }

  return {
    input,
    members,
    selfName,
    self,
    selfCtx,
    clusters,
    gateways,
    serviceNodes,
    isGatewayCluster,
    selfIsGateway,
    hasBridge: !isGatewayCluster || selfIsGateway,
    selfGateway: isGatewayCluster ? nodeByName(selfCtx, gateways[selfCluster.name]) : undefined,
    fams,
    warnings,
  };
}
