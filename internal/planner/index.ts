// plan() returns the dataplane's desired-state type; re-exported for callers of plan().
export { type HostState, KOSMOS_ROUTE_TABLE, KOSMOS_RULE_PRIORITY } from "../dataplane/index.ts";
export { electGateways, electServiceNodes, isAlive } from "./election.ts";
export { PlanError } from "./errors.ts";
export { ipsecKey, ipsecReqid, ipsecSpi, KOSMOS_XFRM_ICV_BITS, KOSMOS_XFRM_PRIORITY } from "./ipsec.ts";
export { vtepMac } from "./mac.ts";
export { plan } from "./plan.ts";
export { DEFAULT_UNDERLAY_MTU, DEVICES, type DeviceSpec, VXLAN_OVERHEAD } from "./steps/devices.ts";
