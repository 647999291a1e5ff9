/**
 * Wire messages of the gossip protocol (zod-validated on receive). Every frame carries exactly one
 * message inside an authenticated envelope (see codec.ts). Field names are short on purpose: they
 * are on every probe.
 */
import { z } from "zod";

export const LIMITS = {
  /** Default maximum frame size accepted and produced (bytes). */
  maxFrameBytes: 1 << 20,
  nameLen: 253,
  addrLen: 512,
  tableLen: 64,
  keyLen: 512,
  rowsPerMessage: 10_000,
  membersPerMessage: 100_000,
  digestsPerMessage: 100_000,
  rangesPerMessage: 256,
} as const;

const Name = z.string().min(1).max(LIMITS.nameLen);
const Addr = z.string().min(1).max(LIMITS.addrLen);
const Version = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** A lower bound (exclusive) of versions: -1 means "from the beginning". */
const Since = z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER);
const Inc = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const Hash = z.string().regex(/^[0-9a-f]{16}$/);
const Id = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const MemberStatus = z.enum(["alive", "suspect", "dead", "left"]);

/** A SWIM membership assertion: alive / suspect / dead / left (graceful leave) at an incarnation. */
export const MemberUpdateSchema = z.object({
  n: Name,
  a: Addr,
  i: Inc,
  s: MemberStatus,
  /** Who asserts it (suspect/dead), for Lifeguard's independent confirmations. */
  f: Name.optional(),
});
export type MemberUpdate = z.infer<typeof MemberUpdateSchema>;

export const RowSchema = z.object({
  table: z.string().min(1).max(LIMITS.tableLen),
  key: z.string().min(1).max(LIMITS.keyLen),
  owner: Name,
  version: Version,
  deleted: z.boolean(),
  data: z.record(z.string(), z.unknown()).nullable(),
});

export const OwnerDigestSchema = z.object({
  owner: Name,
  maxVersion: Version,
  count: z.number().int().min(0),
  hash: Hash,
});
export const RangeDigestSchema = z.object({
  lo: Since,
  hi: Version,
  count: z.number().int().min(0),
  hash: Hash,
});

const Piggy = z.array(MemberUpdateSchema).max(LIMITS.membersPerMessage).optional();
const Rows = z.array(RowSchema).max(LIMITS.rowsPerMessage);

export const MessageSchema = z.discriminatedUnion("t", [
  /** SWIM direct probe of member `to` (name check guards against address reuse). */
  z.object({ t: z.literal("ping"), id: Id, to: Name, m: Piggy }),
  /**
   * SWIM indirect probe: please ping `target` at `addr` for me and relay the ack. `nack`
   * (Lifeguard): also answer `nack` if the target stays silent, so the asker can tell "the target
   * is down" from "I am too slow to hear acks". Optional: older senders omit it.
   */
  z.object({ t: z.literal("pingReq"), id: Id, target: Name, addr: Addr, nack: z.boolean().optional() }),
  z.object({ t: z.literal("ack"), id: Id, m: Piggy }),
  /** Lifeguard: an indirect-probe helper got no ack from the target in time (only sent when asked). */
  z.object({ t: z.literal("nack"), id: Id }),
  /** Join through a seed: the seed answers with a full `members` state and an anti-entropy round. */
  z.object({ t: z.literal("join"), inc: Inc }),
  /** Full membership state (push-pull). `reply`: the receiver should answer with its own. */
  z.object({
    t: z.literal("members"),
    members: z.array(MemberUpdateSchema).max(LIMITS.membersPerMessage),
    reply: z.boolean(),
  }),
  /** Dissemination: new rows and/or membership updates. */
  z.object({ t: z.literal("push"), rows: Rows, m: Piggy }),
  /** Anti-entropy summary: XOR buckets of owner digests, and a membership hash. */
  z.object({
    t: z.literal("ae"),
    buckets: z.array(Hash).max(1024),
    mh: Hash,
    owners: z.number().int().min(0),
  }),
  /** Anti-entropy answer: this side's owner digests in the buckets that differ. */
  z.object({
    t: z.literal("aeOwners"),
    buckets: z.array(z.number().int().min(0).max(1023)).max(1024),
    digests: z.array(OwnerDigestSchema).max(LIMITS.digestsPerMessage),
  }),
  /** Pull rows of owners newer than `since`. */
  z.object({
    t: z.literal("pull"),
    wants: z.array(z.object({ owner: Name, since: Since })).max(LIMITS.digestsPerMessage),
  }),
  /** Rows answering a pull or repairing a peer (chunked). */
  z.object({ t: z.literal("rows"), rows: Rows }),
  /** Range reconciliation of one owner: the sender's digests of sub-ranges (lo, hi] of versions. */
  z.object({
    t: z.literal("range"),
    owner: Name,
    ranges: z.array(RangeDigestSchema).min(1).max(LIMITS.rangesPerMessage),
  }),
  /** Ask for rows of one owner whose version falls in the given (lo, hi] ranges. */
  z.object({
    t: z.literal("rangePull"),
    owner: Name,
    ranges: z
      .array(z.tuple([Since, Version]))
      .min(1)
      .max(LIMITS.rangesPerMessage),
  }),
]);
export type Message = z.infer<typeof MessageSchema>;
export type MessageType = Message["t"];

/** The authenticated envelope around a message. */
export const EnvelopeSchema = z.object({
  /** Sender name. */
  f: Name,
  /** Sender address (where to answer). */
  a: Addr,
  /** Sender process epoch (start time ms): a restart gets a new, higher epoch. */
  e: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** Per-sender sequence number within the epoch, strictly increasing. */
  s: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  m: MessageSchema,
});
export type Envelope = z.infer<typeof EnvelopeSchema>;
