/**
 * Framing and authentication.
 *
 * Frame = [version:1 byte = 1][HMAC-SHA256:32 bytes][body: UTF-8 JSON envelope]
 * The MAC covers the version byte and the body, keyed by HKDF-SHA256(cluster secret,
 * salt "kosmos-gossip", info "hmac-v1"). The envelope carries sender name, address, process epoch
 * and a per-sender sequence; a sliding replay window per sender (like IPsec's) refuses duplicates
 * and old frames, and frames from an older epoch of the same sender.
 */
import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import { type RejectReason, rejectError } from "./errors.ts";
import { type Envelope, EnvelopeSchema, LIMITS, type Message } from "./messages.ts";

export const FRAME_VERSION = 1;
const MAC_LEN = 32;
const HEADER = 1 + MAC_LEN;

export interface CodecOptions {
  /** Cluster secret (shared by all agents); never sent. */
  secret: Uint8Array | string;
  /** Our name and address (put in every envelope). */
  name: string;
  addr: string;
  /** Process epoch: must grow across restarts (start time in ms is the usual choice). */
  epoch: number;
  maxFrameBytes?: number;
  /** Replay window size in sequence numbers (default 64, max 64). */
  replayWindow?: number;
  /** Bound on remembered senders (oldest forgotten first). */
  maxSenders?: number;
}

export interface CodecStats {
  framesOut: number;
  bytesOut: number;
  framesIn: number;
  bytesIn: number;
  rejected: Record<RejectReason, number>;
}

interface SenderWindow {
  epoch: number;
  max: number;
  bits: bigint;
}

export function deriveKey(secret: Uint8Array | string): Uint8Array {
  const ikm = typeof secret === "string" ? new TextEncoder().encode(secret) : secret;
  return new Uint8Array(hkdfSync("sha256", ikm, "kosmos-gossip", "hmac-v1", 32));
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

export class Codec {
  readonly stats: CodecStats = {
    framesOut: 0,
    bytesOut: 0,
    framesIn: 0,
    bytesIn: 0,
    rejected: { oversized: 0, malformed: 0, forged: 0, replayed: 0, "bad-version": 0, "stale-epoch": 0 },
  };
  /** Called on every refused frame (the agent turns these into Prometheus counters). */
  onReject: ((reason: RejectReason, detail: string) => void) | undefined;
  /**
   * Called when a sender seen before shows a newer epoch: it restarted. `addr` is its address; a
   * connection to the old process may be dead without having failed yet (see WsTransport.reset).
   */
  onRestart: ((from: string, addr: string) => void) | undefined;
  readonly maxFrameBytes: number;
  private readonly key: Uint8Array;
  private readonly window: number;
  private readonly maxSenders: number;
  private readonly senders = new Map<string, SenderWindow>();
  private seq = 0;

  constructor(private readonly opts: CodecOptions) {
    this.key = deriveKey(opts.secret);
    this.maxFrameBytes = opts.maxFrameBytes ?? LIMITS.maxFrameBytes;
    this.window = Math.min(64, Math.max(1, opts.replayWindow ?? 64));
    this.maxSenders = opts.maxSenders ?? 65_536;
  }

  private mac(version: Uint8Array, body: Uint8Array): Uint8Array {
    const h = createHmac("sha256", this.key);
    h.update(version);
    h.update(body);
    return new Uint8Array(h.digest());
  }

  /** Serialise, number and sign one message. Throws GOSSIP_OVERSIZED when it does not fit. */
  encode(m: Message): Uint8Array {
    this.seq += 1;
    const env: Envelope = { f: this.opts.name, a: this.opts.addr, e: this.opts.epoch, s: this.seq, m };
    const body = enc.encode(JSON.stringify(env));
    if (body.length + HEADER > this.maxFrameBytes) {
      throw rejectError(
        "oversized",
        `outgoing ${m.t} of ${body.length + HEADER} bytes > ${this.maxFrameBytes}`,
      );
    }
    const frame = new Uint8Array(HEADER + body.length);
    frame[0] = FRAME_VERSION;
    frame.set(this.mac(frame.subarray(0, 1), body), 1);
    frame.set(body, HEADER);
    this.stats.framesOut += 1;
    this.stats.bytesOut += frame.length;
    return frame;
  }

  /** Verify and parse a frame; throws a GossipError (and counts the reason) when refused. */
  decode(frame: Uint8Array): Envelope {
    this.stats.framesIn += 1;
    this.stats.bytesIn += frame.length;
    if (frame.length > this.maxFrameBytes) return this.reject("oversized", `${frame.length} bytes`);
    if (frame.length <= HEADER) return this.reject("malformed", "frame shorter than its header");
    if (frame[0] !== FRAME_VERSION) return this.reject("bad-version", `version ${frame[0]}`);
    const body = frame.subarray(HEADER);
    const expect = this.mac(frame.subarray(0, 1), body);
    if (!timingSafeEqual(expect, frame.subarray(1, HEADER))) return this.reject("forged", "HMAC mismatch");
    let raw: unknown;
    try {
      raw = JSON.parse(dec.decode(body));
    } catch {
      return this.reject("malformed", "body is not UTF-8 JSON");
    }
    const parsed = EnvelopeSchema.safeParse(raw);
    if (!parsed.success) return this.reject("malformed", parsed.error.issues[0]?.message ?? "schema");
    const env = parsed.data;
    const before = this.senders.get(env.f)?.epoch;
    const why = this.checkReplay(env.f, env.e, env.s);
    if (why) return this.reject(why, `${env.f} epoch ${env.e} seq ${env.s}`);
    if (before !== undefined && env.e > before) this.onRestart?.(env.f, env.a);
    return env;
  }

  /** decode() that returns null instead of throwing (the reason is counted either way). */
  tryDecode(frame: Uint8Array): Envelope | null {
    try {
      return this.decode(frame);
    } catch {
      return null;
    }
  }

  private reject(reason: RejectReason, detail: string): never {
    this.stats.rejected[reason] += 1;
    this.onReject?.(reason, detail);
    throw rejectError(reason, detail);
  }

  private checkReplay(from: string, epoch: number, seq: number): RejectReason | null {
    const w = this.senders.get(from);
    if (!w || epoch > w.epoch) {
      if (w) this.senders.delete(from);
      else if (this.senders.size >= this.maxSenders) {
        const oldest = this.senders.keys().next().value;
        if (oldest !== undefined) this.senders.delete(oldest);
      }
      this.senders.set(from, { epoch, max: seq, bits: 1n });
      return null;
    }
    if (epoch < w.epoch) return "stale-epoch";
    if (seq > w.max) {
      const shift = seq - w.max;
      w.bits = shift >= 64 ? 1n : ((w.bits << BigInt(shift)) | 1n) & 0xffffffffffffffffn;
      w.max = seq;
      return null;
    }
    const back = w.max - seq;
    if (back >= this.window) return "replayed";
    const bit = 1n << BigInt(back);
    if (w.bits & bit) return "replayed";
    w.bits |= bit;
    return null;
  }
}
