/**
 * Is traffic between two underlay addresses encrypted? A tcpdump capture in a namespace on the path
 * (the lab's fabric) while a ping with a recognisable payload runs: the capture must hold ESP
 * packets between the two addresses and never the payload in clear.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inNs, sh } from "../../internal/lab/sh.ts";
import { until } from "./helpers.ts";

/** The ping payload: "kosmos-esp" repeated (ping -p takes up to 16 bytes of hex). */
const PAYLOAD = "kosmos-esp";
const PAYLOAD_HEX = Buffer.from(PAYLOAD).toString("hex");

/** Resolve once `stream` has printed a line matching `re` (tcpdump: "listening on ..."). */
async function lineOf(stream: ReadableStream<Uint8Array>, re: RegExp, timeoutMs: number): Promise<string> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const timer = setTimeout(() => void reader.cancel(), timeoutMs);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`no line matching ${re} (got: ${text.trim().slice(-300)})`);
      text += decoder.decode(value, { stream: true });
      const hit = text.split("\n").find((l) => re.test(l));
      if (hit) return hit;
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
}

export interface EspCapture {
  /** Exit code and output of the ping. */
  ping: { code: number; output: string };
  /** ESP packets captured between the two addresses (each may be seen on two interfaces). */
  espPackets: number;
  /** The ping's payload appeared in clear somewhere in the capture. */
  clearPayload: boolean;
}

/**
 * Capture in `captureNs` (all interfaces) the packets between `a` and `b` while `count` pings with
 * the marker payload go from `srcNs` to `dst`; wait until the capture holds at least one ESP packet
 * per ping and direction (or 10 s), then stop it and look for the payload in clear.
 */
export async function pingUnderCapture(o: {
  captureNs: string;
  a: string;
  b: string;
  srcNs: string;
  dst: string;
  count?: number;
}): Promise<EspCapture> {
  const count = o.count ?? 3;
  const dir = await mkdtemp(join(tmpdir(), "kosmos-esp-"));
  const pcap = join(dir, "underlay.pcap");
  const filter = `host ${o.a} and host ${o.b}`;
  // -U --immediate-mode: every packet is in the file as soon as it is seen; -Z root: write as root.
  const argv = ["tcpdump", "-i", "any", "-n", "-U", "--immediate-mode", "-Z", "root", "-w", pcap, filter];
  const cap = Bun.spawn(["ip", "netns", "exec", o.captureNs, ...argv], { stdout: "ignore", stderr: "pipe" });
  try {
    await lineOf(cap.stderr, /listening on/, 15_000);
    const fam = o.dst.includes(":") ? "-6" : "-4";
    const p = await inNs(
      o.srcNs,
      ["ping", fam, "-n", "-c", String(count), "-i", "0.2", "-W", "2", "-p", PAYLOAD_HEX, o.dst],
      { allowFail: true },
    );
    const esp = async () =>
      (await sh(["tcpdump", "-r", pcap, "-n", "esp"], { allowFail: true })).stdout
        .split("\n")
        .filter((l) => l.includes("ESP")).length;
    // Echo requests and replies: at least 2 * count ESP packets once the capture caught up.
    const espPackets =
      p.code === 0
        ? await until("ESP packets in the capture", 10_000, async () => {
            const n = await esp();
            return n >= 2 * count ? n : undefined;
          }).catch(() => esp())
        : await esp();
    cap.kill();
    await cap.exited;
    const bytes = await readFile(pcap);
    return {
      ping: { code: p.code, output: `${p.stdout}${p.stderr}` },
      espPackets,
      clearPayload: bytes.includes(Buffer.from(PAYLOAD)),
    };
  } finally {
    cap.kill();
    await cap.exited;
    await rm(dir, { recursive: true, force: true });
  }
}
