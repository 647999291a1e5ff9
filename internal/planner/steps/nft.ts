/**
 * nftables intent: the global-IP prefix maps (on nodes holding vx-bridge) and the gateway's
 * masquerade rules. The device lists and the no-masquerade destinations are filled in by the order
 * step, from the sorted devices and routes.
 */
import type { NftIntent, PrefixMap, VxlanDevice } from "../../dataplane/index.ts";
import { mustCidr } from "../cluster.ts";
import { cmp, type PlanContext, selfHas } from "../context.ts";
import { DEVICES } from "./devices.ts";

export interface NftParts {
  globalMaps: PrefixMap[];
  masquerade: NftIntent["masquerade"];
  serviceVips?: NftIntent["serviceVips"];
}

export function planNft(ctx: PlanContext, devices: VxlanDevice[]): NftParts {
  const globalMaps: PrefixMap[] = ctx.hasBridge
    ? ctx.selfCtx.globals
        .filter((g) => selfHas(ctx, g.key.family))
        .map((g) => ({ local: g.key.text, global: g.value.text, family: g.key.family }))
    : [];
  return { globalMaps, masquerade: ctx.selfIsGateway ? gatewayMasquerade(ctx, devices) : [] };
}

/**
 * The active gateway of a gateway cluster is the cluster's only door to the bridge overlay:
 * 1. Sources in the local CIDR (node-sourced traffic of non-gateway nodes: src = their vx-local
 *    address) leaving via vx-bridge are masqueraded to this gateway's vx-bridge address. Every
 *    gateway cluster uses the same local prefix, so remote nodes cannot route back to it.
 * 2. Sources in the bridge CIDR (node-sourced traffic of remote nodes: src = their vx-bridge
 *    address) leaving through anything but an overlay device (the underlay NIC or the CNI's
 *    devices, towards pods of this cluster on other nodes) are masqueraded to this gateway's
 *    address there. Non-gateway nodes have no route to the bridge prefix, so without this the
 *    replies would leave through their default route and be lost; masqueraded, they return
 *    to the gateway, are un-NATed by conntrack and leave via vx-bridge. Pod-sourced traffic
 *    needs neither: remote pod CIDRs are routed via the gateway on every node.
 */
function gatewayMasquerade(ctx: PlanContext, devices: VxlanDevice[]): NftIntent["masquerade"] {
  const cluster = ctx.selfCtx.cluster;
  const deviceNames = devices.map((d) => d.name).sort(cmp);
  const masquerade: NftIntent["masquerade"] = [];
  for (const f of ctx.fams) {
    const localCidr = mustCidr(f === 4 ? cluster.localCIDRs.ip : cluster.localCIDRs.ip6, "localCIDRs");
    const bridgeCidr = mustCidr(f === 4 ? cluster.bridgeCIDRs.ip : cluster.bridgeCIDRs.ip6, "bridgeCIDRs");
    masquerade.push({ srcCIDRs: [localCidr.text], oif: DEVICES.bridge[f].name, family: f });
    masquerade.push({
      srcCIDRs: [bridgeCidr.text],
      oif: "*",
      family: f,
      exceptOif: deviceNames.filter((d) => devices.some((x) => x.name === d && x.family === f)),
    });
  }
  return masquerade;
}
