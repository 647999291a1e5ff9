/** Devices: this node's VXLAN devices (vx-bridge where it holds the bridge, vx-local in gateway clusters). */
import type { VxlanDevice } from "../../dataplane/index.ts";
import type { AddressFamily, OverlayMapper } from "../../topology/index.ts";
import { canonicalUnderlay, underlayOf } from "../cluster.ts";
import type { PlanContext } from "../context.ts";
import { vtepMac } from "../mac.ts";

export interface DeviceSpec {
  name: string;
  vni: number;
  port: number;
}

/** Device names, VNIs and UDP ports (upstream Kosmos values). */
export const DEVICES: Record<"bridge" | "local", Record<AddressFamily, DeviceSpec>> = {
  bridge: { 4: { name: "vx-bridge", vni: 54, port: 4876 }, 6: { name: "vx-bridge-6", vni: 64, port: 4866 } },
  local: { 4: { name: "vx-local", vni: 55, port: 4877 }, 6: { name: "vx-local-6", vni: 65, port: 4867 } },
};

export const DEFAULT_UNDERLAY_MTU = 1500;
/** VXLAN overhead per underlay family. */
export const VXLAN_OVERHEAD: Record<AddressFamily, number> = { 4: 50, 6: 70 };

export function planDevices(ctx: PlanContext): VxlanDevice[] {
  const devices: VxlanDevice[] = [];
  for (const f of ctx.fams) {
    if (ctx.hasBridge) devices.push(device(ctx, "bridge", f));
    if (ctx.isGatewayCluster) devices.push(device(ctx, "local", f));
  }
  return devices;
}

function device(ctx: PlanContext, kind: "bridge" | "local", f: AddressFamily): VxlanDevice {
  const { self, selfCtx } = ctx;
  const spec = DEVICES[kind][f];
  const mapper = (kind === "bridge" ? selfCtx.bridge : selfCtx.local)[f] as OverlayMapper;
  const local = canonicalUnderlay(underlayOf(self, f) as string, f) as string;
  const dev: VxlanDevice = {
    name: spec.name,
    family: f,
    vni: spec.vni,
    port: spec.port,
    local,
    mtu: selfCtx.cluster.mtu ?? (self.underlayMTU ?? DEFAULT_UNDERLAY_MTU) - VXLAN_OVERHEAD[f],
    mac: vtepMac(ctx.selfName, spec.name),
    address: `${mapper.ip(local)}/${mapper.len}`,
  };
  if (self.interfaceName !== undefined) dev.parent = self.interfaceName;
  return dev;
}
