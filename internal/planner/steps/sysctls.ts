/**
 * Sysctls: forwarding on; reverse-path filtering off on overlay devices (asymmetric paths through
 * gateways). The kernel uses max(all, dev) for rp_filter; Debian's default is loose (2).
 */
import type { Sysctl, VxlanDevice } from "../../dataplane/index.ts";
import { type PlanContext, selfHas } from "../context.ts";

export function planSysctls(ctx: PlanContext, devices: VxlanDevice[]): Sysctl[] {
  const sysctls: Sysctl[] = [];
  if (selfHas(ctx, 4)) sysctls.push({ key: "net.ipv4.ip_forward", value: "1" });
  if (selfHas(ctx, 6)) sysctls.push({ key: "net.ipv6.conf.all.forwarding", value: "1" });
  for (const d of devices)
    if (d.family === 4) sysctls.push({ key: `net.ipv4.conf.${d.name}.rp_filter`, value: "0" });
  return sysctls;
}
