/**
 * IPsec between elastic IPs: when this node (holding vx-bridge) and a remote bridge node both have
 * an elastic IP of the same family, tunnel-mode xfrm policies per advertised pod-CIDR pair and, with
 * the installation secret, the ESP states of both directions (keys derived per pair and epoch).
 */
import type { XfrmPolicy, XfrmState } from "../../dataplane/index.ts";
import type { AddressFamily, Cidr, Node } from "../../topology/index.ts";
import { type ClusterCtx, mustCidr, toGlobal } from "../cluster.ts";
import { type PlanContext, selfHas } from "../context.ts";
import { ipsecKey, ipsecReqid, ipsecSpi, KOSMOS_XFRM_ICV_BITS, KOSMOS_XFRM_PRIORITY } from "../ipsec.ts";
import type { RemoteBridgeNode } from "./peers.ts";
import { type LocalRanges, overlapsLocal } from "./routes.ts";

export interface XfrmParts {
  policies: XfrmPolicy[];
  states: XfrmState[];
}

const familyOf = (ip: string): AddressFamily => (ip.includes(":") ? 6 : 4);

/** The pod CIDRs a bridge node stands for (a gateway: its whole cluster's), globally mapped. */
const advertised = (n: Node, c: ClusterCtx): Cidr[] =>
  (c.cluster.networkType === "gateway" ? c.cluster.podCIDRs : n.podCIDRs).map((s) =>
    toGlobal(mustCidr(s, `pod CIDR of ${n.name}`), c.globals),
  );

export function planXfrm(ctx: PlanContext, remoteBridge: RemoteBridgeNode[], local: LocalRanges): XfrmParts {
  const out: XfrmParts = { policies: [], states: [] };
  const selfEip = ctx.self.elasticIP;
  if (!ctx.hasBridge || selfEip === undefined) return out;
  const localNets = advertised(ctx.self, ctx.selfCtx).filter((c) => selfHas(ctx, c.family));
  let missingSecretWarned = false;
  for (const { node: peer, ctx: c } of remoteBridge) {
    const peerEip = peer.elasticIP;
    if (peerEip === undefined || familyOf(peerEip) !== familyOf(selfEip)) continue;
    const reqid = ipsecReqid(ctx.selfName, peer.name);
    const remoteNets = advertised(peer, c).filter((r) => !overlapsLocal(local, r));
    if (!pairPolicies(out.policies, localNets, remoteNets, reqid, selfEip, peerEip)) continue;
    const secret = ctx.input.ipsecSecret;
    if (!secret) {
      if (!missingSecretWarned)
        ctx.warnings.push("no ipsecSecret: IPsec policies planned without states (keys)");
      missingSecretWarned = true;
      continue;
    }
    const epoch = ctx.input.ipsecEpoch ?? 0;
    const st = { reqid, icvBits: KOSMOS_XFRM_ICV_BITS, family: familyOf(selfEip) };
    const self = ctx.selfName;
    out.states.push(
      {
        ...st,
        src: selfEip,
        dst: peerEip,
        spi: ipsecSpi(self, peer.name, epoch),
        aeadKeyHex: ipsecKey(secret, self, peer.name, epoch),
      },
      {
        ...st,
        src: peerEip,
        dst: selfEip,
        spi: ipsecSpi(peer.name, self, epoch),
        aeadKeyHex: ipsecKey(secret, peer.name, self, epoch),
      },
    );
  }
  return out;
}

/** out/in/fwd policies for every same-family (local, remote) pair; false when there is none. */
function pairPolicies(
  policies: XfrmPolicy[],
  localNets: Cidr[],
  remoteNets: Cidr[],
  reqid: number,
  selfEip: string,
  peerEip: string,
): boolean {
  let any = false;
  for (const l of localNets) {
    for (const r of remoteNets) {
      if (l.family !== r.family) continue;
      any = true;
      const base = { reqid, priority: KOSMOS_XFRM_PRIORITY, family: l.family };
      policies.push(
        { ...base, src: l.text, dst: r.text, dir: "out", tmplSrc: selfEip, tmplDst: peerEip },
        { ...base, src: r.text, dst: l.text, dir: "in", tmplSrc: peerEip, tmplDst: selfEip },
        { ...base, src: r.text, dst: l.text, dir: "fwd", tmplSrc: peerEip, tmplDst: selfEip },
      );
    }
  }
  return any;
}
