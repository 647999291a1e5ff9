/** Reasons a received frame is refused. Each one is counted in CodecStats.rejected. */
import { KosmosError } from "../errors/index.ts";

export type RejectReason = "oversized" | "malformed" | "forged" | "replayed" | "bad-version" | "stale-epoch";

export type GossipErrorCode = `GOSSIP_${Uppercase<string>}`;

/** Typed error of the gossip layer: a stable `code` and a human `hint`. */
export class GossipError extends KosmosError<GossipErrorCode> {
  override name = "GossipError";
  constructor(
    code: GossipErrorCode,
    message: string,
    hint: string,
    readonly reason?: RejectReason,
  ) {
    super(code, message, hint);
  }
}

const HINTS: Record<RejectReason, string> = {
  oversized:
    "the frame exceeds maxFrameBytes; peers chunk their messages, so this is a misconfigured or hostile peer",
  malformed: "the frame is not a valid gossip message (version skew or a hostile peer)",
  forged: "HMAC mismatch: the sender does not hold the same cluster secret (check the kosmos gossip secret)",
  replayed: "sequence number already seen or outside the replay window; a replayed or duplicated frame",
  "bad-version": "unknown frame version; upgrade all agents to the same release line",
  "stale-epoch": "frame from an older process incarnation of this sender (replay of a pre-restart frame)",
};

export function rejectError(reason: RejectReason, detail: string): GossipError {
  const code = `GOSSIP_${reason.toUpperCase().replace("-", "_")}` as GossipErrorCode;
  return new GossipError(code, `gossip frame rejected (${reason}): ${detail}`, HINTS[reason], reason);
}
