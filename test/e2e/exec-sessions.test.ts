/**
 * Nothing a session started outlives it, against the real agent: a shell's background jobs (which
 * job control puts in process groups of their own) die with the session when the client's TCP
 * connection drops, under a PTY and over pipes, on the upstream endpoints and on /v1/exec, and when
 * the command ends normally while a job still runs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type RealAgent, startRealAgent } from "../helpers/real-agent.ts";
import { dialUpstream, goQueryEscape, type UpstreamWs } from "../helpers/upstream-ws.ts";
import { alive, until } from "../helpers/wait.ts";

let agent: RealAgent;
beforeAll(async () => {
  agent = await startRealAgent();
});
afterAll(async () => {
  await agent?.stop();
});

/** A background job, then a foreground one; each prints its pid (BG=…, FG=…). */
const JOBS = "sleep 302 & echo BG=$!; sh -c 'echo FG=$$; exec sleep 303'";
const V5 = { "Sec-WebSocket-Protocol": "v5.channel.k8s.io" };
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Output of a /v1/exec session: the payload of its stdout frames (stream 1). */
const v1Stdout = (ws: UpstreamWs) =>
  ws.messages
    .filter((m) => m.data[0] === 1)
    .map((m) => dec.decode(m.data.subarray(1)))
    .join("");

const pidsIn = (out: string): number[] =>
  ["BG", "FG"].flatMap((k) => {
    const m = new RegExp(`${k}=(\\d+)`).exec(out);
    return m ? [Number(m[1])] : [];
  });

/**
 * Open a session, wait until it printed the pids of its jobs (both alive), run `end` (drop the
 * connection, or wait for the end), then expect every job to be gone. Jobs still alive when the
 * test fails are killed.
 */
async function expectJobsDie(
  open: () => Promise<UpstreamWs>,
  output: (ws: UpstreamWs) => string,
  want: number,
  end: (ws: UpstreamWs) => Promise<unknown>,
): Promise<void> {
  const ws = await open();
  expect(ws.status).toBe(101);
  let pids: number[] = [];
  try {
    await until(() => pidsIn(output(ws)).length === want, `the session printed ${want} job pid(s)`);
    pids = pidsIn(output(ws));
    expect(pids.every(alive)).toBe(true);
    await end(ws);
    await until(() => !pids.some(alive), `jobs ${pids.join(", ")} are gone`, 15_000);
  } finally {
    ws.drop();
    for (const pid of pids.filter(alive)) process.kill(pid, "SIGKILL");
  }
}

const drop = async (ws: UpstreamWs) => ws.drop();

describe("a dropped connection ends every job of the session", () => {
  test("/tty (PTY, interactive sh with job control)", async () => {
    await expectJobsDie(
      async () => {
        const ws = await dialUpstream(agent.url, "/tty/?command=sh", agent.basic);
        ws.sendBinary(enc.encode(`${JOBS}\n`));
        return ws;
      },
      (ws) => ws.text(),
      2,
      drop,
    );
  }, 30_000);

  test("/v1/exec tty=true (PTY)", async () => {
    await expectJobsDie(
      async () => {
        const ws = await dialUpstream(agent.url, "/v1/exec?command=sh&tty=true&stdin=true", agent.basic, V5);
        ws.sendBinary(new Uint8Array([0, ...enc.encode(`${JOBS}\n`)]));
        return ws;
      },
      v1Stdout,
      2,
      drop,
    );
  }, 30_000);

  // (dash turns job control off without a tty; bash's `set -m` gives each job a group of its own)
  test("/v1/exec over pipes (bash -c with set -m: jobs in groups of their own)", async () => {
    const q = ["bash", "-c", `set -m; ${JOBS}`].map((a) => `command=${encodeURIComponent(a)}`).join("&");
    await expectJobsDie(() => dialUpstream(agent.url, `/v1/exec?${q}`, agent.basic, V5), v1Stdout, 2, drop);
  }, 30_000);

  test("/cmd over pipes (upstream endpoint)", async () => {
    const target = `/cmd/?command=bash&&args=-c&&args=${goQueryEscape(`set -m; ${JOBS}`)}`;
    await expectJobsDie(
      () => dialUpstream(agent.url, target, agent.basic),
      (ws) => ws.text(),
      2,
      drop,
    );
  }, 30_000);
});

describe("a command that ends leaves no job behind", () => {
  test("/v1/exec: `bash -c 'set -m; sleep 302 & echo BG=$!'` exits 0, its job holding stdout is ended with it", async () => {
    const q = ["bash", "-c", "set -m; sleep 302 & echo BG=$!"]
      .map((a) => `command=${encodeURIComponent(a)}`)
      .join("&");
    await expectJobsDie(
      () => dialUpstream(agent.url, `/v1/exec?${q}`, agent.basic, V5),
      v1Stdout,
      1,
      async (ws) => {
        expect((await ws.closed).code).toBe(1000);
        const status = ws.messages.find((m) => m.data[0] === 3);
        expect(JSON.parse(dec.decode(status?.data.subarray(1)))).toMatchObject({ status: "Success" });
      },
    );
  }, 30_000);
});
