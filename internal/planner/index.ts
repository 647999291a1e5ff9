export * from "./hoststate.ts";
export { electGateways, electServiceNodes, isAlive } from "./election.ts";
export { ipsecKey, ipsecReqid, ipsecSpi, KOSMOS_XFRM_ICV_BITS, KOSMOS_XFRM_PRIORITY } from "./ipsec.ts";
export { vtepMac } from "./mac.ts";
export { DEFAULT_UNDERLAY_MTU, DEVICES, type DeviceSpec, PlanError, plan, VXLAN_OVERHEAD } from "./plan.ts";
