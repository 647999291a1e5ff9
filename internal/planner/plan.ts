/**
 * The planner: (topology snapshot, self node) -> HostState. Pure: no I/O, no clocks, no randomness.
 * Semantics as in docs/architecture.md ("Semantics"); decisions the spec leaves open are noted in
 * the steps.
 *
 * plan() builds one shared context, then runs the steps in order, each producing one part of the
 * HostState; the order step sorts every list and assembles it.
 *
 * Cost: one pass over all nodes (grouping + elections), then work proportional to the peers and
 * routes of `self` only. Every list is sorted so equal inputs give deep-equal outputs.
 */
import type { HostState } from "../dataplane/index.ts";
import type { PlanInput } from "../topology/index.ts";
import { buildContext } from "./context.ts";
import { planDevices } from "./steps/devices.ts";
import { planNft } from "./steps/nft.ts";
import { orderHostState } from "./steps/order.ts";
import { planPeers } from "./steps/peers.ts";
import { planServices } from "./steps/services.ts";
import { localRangesOf, planRoutes, planRules } from "./steps/routes.ts";
import { planSysctls } from "./steps/sysctls.ts";
import { planXfrm } from "./steps/xfrm.ts";

export function plan(input: PlanInput): HostState {
  const ctx = buildContext(input);
  const devices = planDevices(ctx);
  const peers = planPeers(ctx);
  const local = localRangesOf(ctx);
  const routes = planRoutes(ctx, peers.bridgeIp, local);
  const rules = planRules(ctx);
  const nft = planNft(ctx, devices);
  const vips = planServices(ctx);
  if (vips.length > 0) nft.serviceVips = vips;
  const xfrm = planXfrm(ctx, peers.remoteBridge, local);
  const sysctls = planSysctls(ctx, devices);
  return orderHostState(ctx, { devices, peers: peers.byDevice, routes, rules, nft, xfrm, sysctls });
}
