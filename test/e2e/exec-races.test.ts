/**
 * Concurrent uploads to one path, against the real agent: every upload succeeds, the last one to
 * commit wins, the target is always one whole upload, and each commit keeps the version it
 * replaced as a backup of its own.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { AgentClient } from "../../internal/exec/client.ts";
import { type RealAgent, startRealAgent } from "../helpers/real-agent.ts";
import { dialUpstream, goQueryEscape } from "../helpers/upstream-ws.ts";

let agent: RealAgent;
beforeAll(async () => {
  agent = await startRealAgent();
});
afterAll(async () => {
  await agent?.stop();
});

const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");
const UPLOADS = 8;
const SIZE = 3 * 1024 * 1024;

/**
 * After `UPLOADS` concurrent uploads of `datas` over a target that held `original`: the target is
 * one of the uploads, and the backups are exactly the original plus every other upload (each commit
 * backed up what it replaced, under a name of its own). No temp file is left.
 */
async function expectLastWriterWins(name: string, original: string, datas: Uint8Array[]): Promise<void> {
  const files = await readdir(agent.root);
  expect(files.filter((f) => f.endsWith(".tmp"))).toEqual([]);
  const final = sha(await readFile(join(agent.root, name)));
  const uploaded = datas.map(sha);
  expect(uploaded).toContain(final);
  const backups = files.filter((f) => f.startsWith(`${name}_`) && f.endsWith("_bak"));
  expect(backups.length).toBe(UPLOADS);
  const backedUp = await Promise.all(backups.map(async (f) => sha(await readFile(join(agent.root, f)))));
  expect(backedUp.sort()).toEqual([sha(original), ...uploaded.filter((h) => h !== final)].sort());
}

describe("concurrent uploads to the same path", () => {
  test(`${UPLOADS} concurrent PUT /v1/files of 3 MiB: all 201, last writer wins, one backup per commit`, async () => {
    const name = "conc.bin";
    await writeFile(join(agent.root, name), "original");
    const datas = Array.from({ length: UPLOADS }, () => randomBytes(SIZE));
    const client = new AgentClient(agent.target());
    const results = await Promise.allSettled(
      datas.map(async (d, i) => {
        const local = join(agent.dir, `local-${i}.bin`);
        await writeFile(local, d);
        return client.upload(local, join(agent.root, name));
      }),
    );
    const failed = results.flatMap((r) => (r.status === "rejected" ? [String(r.reason)] : []));
    expect(failed).toEqual([]);
    await expectLastWriterWins(name, "original", datas);
    const audited = agent.audit().filter((r) => r.endpoint === "/v1/files" && r.args.includes(name));
    expect(audited.map((r) => [r.exit_code, r.error, r.bytes_in])).toEqual(
      Array(UPLOADS).fill([0, null, SIZE]),
    );
  }, 60_000);

  test(`${UPLOADS} concurrent legacy /upload sessions: all close 1000 "0", last writer wins`, async () => {
    const name = "legacy-conc.bin";
    await writeFile(join(agent.root, name), "original");
    const datas = Array.from({ length: UPLOADS }, () => randomBytes(SIZE));
    const target = `/upload/?file_name=${name}&file_path=${goQueryEscape(agent.root)}`;
    const closes = await Promise.all(
      datas.map(async (d) => {
        const ws = await dialUpstream(agent.url, target, agent.basic);
        for (let off = 0; off < d.byteLength; off += 256 * 1024)
          ws.sendBinary(d.subarray(off, off + 256 * 1024));
        ws.sendBinary(new TextEncoder().encode("EOF"));
        return ws.closed;
      }),
    );
    expect(closes).toEqual(Array(UPLOADS).fill({ code: 1000, reason: "0" }));
    await expectLastWriterWins(name, "original", datas);
  }, 60_000);
});
