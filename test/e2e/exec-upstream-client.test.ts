/**
 * Upstream Kosmos' own clients against the real agent, byte for byte: the request targets below are
 * the exact strings upstream's Go code builds (cmd/kubenest/node-agent/app/client/client.go on
 * main_kubenest, and the kubenest operator's exector package), sent by an independent websocket
 * client (test/helpers/upstream-ws.ts) with the WEB_USER/WEB_PASS Basic credentials.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { type RealAgent, startRealAgent } from "../helpers/real-agent.ts";
import { dialUpstream, goQueryEscape, type UpstreamWs } from "../helpers/upstream-ws.ts";

let agent: RealAgent;
beforeAll(async () => {
  agent = await startRealAgent();
});
afterAll(async () => {
  await agent?.stop();
});

const dial = (target: string): Promise<UpstreamWs> => dialUpstream(agent.url, target, agent.basic);
const texts = (ws: UpstreamWs) => ws.messages.map((m) => new TextDecoder().decode(m.data));

/** What upstream's sendFile does: 1024-byte binary frames, then a binary "EOF". */
function sendFileLikeUpstream(ws: UpstreamWs, data: Uint8Array): void {
  for (let off = 0; off < data.byteLength; off += 1024) ws.sendBinary(data.subarray(off, off + 1024));
  ws.sendBinary(new TextEncoder().encode("EOF"));
}

describe("upstream's node-agent client (gorilla/websocket), exact request targets", () => {
  test("`client sh -o sh -r -c -r 'echo out; echo err >&2; exit 3'`: && separators, + for spaces, exit code as close reason", async () => {
    // executeWebSocketCommand: "command=%s&&" + "args=" + QueryEscape(p) joined by "&&args="
    const target = "/cmd/?command=sh&&args=-c&&args=echo+out%3B+echo+err+%3E%262%3B+exit+3";
    expect(target).toBe(
      `/cmd/?command=sh&&args=${["-c", "echo out; echo err >&2; exit 3"].map(goQueryEscape).join("&&args=")}`,
    );
    const ws = await dial(target);
    expect(ws.status).toBe(101);
    expect(await ws.closed).toEqual({ code: 1000, reason: "3" });
    expect(ws.messages.every((m) => m.type === "text")).toBe(true);
    expect(texts(ws).sort()).toEqual(["err", "out"]);
  });

  test("`client sh -o uname` (one word, no params): /cmd/?command=uname", async () => {
    const ws = await dial("/cmd/?command=uname");
    expect(ws.status).toBe(101);
    expect(await ws.closed).toEqual({ code: 1000, reason: "0" });
    expect(texts(ws)).toEqual(["Linux"]);
  });

  test("`client upload -f <dir> -n <file>`: 1024-byte binary frames and a binary EOF; close 1000 '0'", async () => {
    const dir = join(agent.root, "etc dir");
    const data = randomBytes(3000);
    // uploadFile: "/upload/?file_name=%s&file_path=%s" with QueryEscape of both
    const target = `/upload/?file_name=${goQueryEscape("kubelet.conf")}&file_path=${goQueryEscape(dir)}`;
    expect(target).toContain("file_path=%2Ftmp%2F");
    expect(target).toContain("%2Fetc+dir");
    const ws = await dial(target);
    expect(ws.status).toBe(101);
    sendFileLikeUpstream(ws, data);
    expect(await ws.closed).toEqual({ code: 1000, reason: "0" });
    expect((await readFile(join(dir, "kubelet.conf"))).equals(data)).toBe(true);
  });

  test("`client tty -o sh`: /tty/?command=sh, raw binary frames both ways", async () => {
    const ws = await dial("/tty/?command=sh");
    expect(ws.status).toBe(101);
    ws.sendBinary(new TextEncoder().encode("echo $((6*7))\n"));
    ws.sendBinary(new TextEncoder().encode("exit 5\n"));
    expect(await ws.closed).toEqual({ code: 1000, reason: "5" });
    expect(ws.messages.every((m) => m.type === "binary")).toBe(true);
    expect(ws.text()).toContain("42");
  });

  test("`client check -r <port>`: /check/?port=N closes with '1' when taken, '0' when free", async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, () => r()));
    const port = (srv.address() as { port: number }).port;
    try {
      const taken = await dial(`/check/?port=${port}`);
      expect(taken.status).toBe(101);
      expect(await taken.closed).toEqual({ code: 1000, reason: "1" });
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
    const free = await dial(`/check/?port=${port}`);
    expect(await free.closed).toEqual({ code: 1000, reason: "0" });
  });

  test("/sh/ and /py/ with a trailing slash: script frames until EOF, args appended", async () => {
    const sh = await dial("/sh/?args=one&&args=two");
    expect(sh.status).toBe(101);
    for (const f of ['echo "$1-$2"\n', "exit 4\n", "EOF"]) sh.sendText(f);
    expect(await sh.closed).toEqual({ code: 1000, reason: "4" });
    expect(texts(sh)).toEqual(["one-two"]);
    const py = await dial("/py/?args=x");
    for (const f of ["import sys\n", "print('py', sys.argv[1])\n", "EOF"]) py.sendText(f);
    expect(await py.closed).toEqual({ code: 1000, reason: "0" });
    expect(texts(py)).toEqual(["py x"]);
  });

  test("the sessions land in the agent's SQLite audit under the Basic user, endpoint without the slash", async () => {
    const rows = agent.audit();
    const byEndpoint = (e: string) => rows.filter((r) => r.endpoint === e);
    for (const e of ["/cmd", "/upload", "/tty", "/check", "/sh", "/py"])
      expect(byEndpoint(e).length).toBeGreaterThan(0);
    expect(rows.every((r) => r.principal === "basic:kosmos" && r.remote_addr === "127.0.0.1")).toBe(true);
    const cmd = byEndpoint("/cmd").find((r) => r.command === "sh");
    expect(cmd).toMatchObject({
      args: JSON.stringify(["-c", "echo out; echo err >&2; exit 3"]),
      exit_code: 3,
    });
    expect(cmd?.bytes_out).toBe("out\nerr\n".length);
    expect(byEndpoint("/upload")[0]).toMatchObject({ exit_code: 0, bytes_in: 3000, error: null });
  });
});

describe("upstream's kubenest operator (exector package), exact request targets", () => {
  test("SCPExector: upload/?file_name=X&&file_path=<url.PathEscape'd>; CheckExector: check/?port=N", async () => {
    // createWebsocketConnection: url.URL{Path: "upload/", RawQuery: url.PathEscape("file_name=%s&&file_path=%s")}
    const dir = `${agent.root}/apps/conf/kosmos/tmp`;
    const target = `/upload/?file_name=ca.crt&&file_path=${dir.replaceAll("/", "%2F")}`;
    const ws = await dial(target);
    expect(ws.status).toBe(101);
    const data = new TextEncoder().encode("-----BEGIN CERTIFICATE-----\n");
    sendFileLikeUpstream(ws, data);
    expect(await ws.closed).toEqual({ code: 1000, reason: "0" });
    expect(await readFile(join(dir, "ca.crt"), "utf8")).toBe("-----BEGIN CERTIFICATE-----\n");
    const check = await dial("/check/?port=1");
    expect((await check.closed).code).toBe(1000);
  });

  test("CMDExector: cmd/?command=bash&args=<script>&args=check (a missing script: close reason '127' for the operator's retry)", async () => {
    const ws = await dial("/cmd/?command=bash&args=kubelet_node_helper_missing.sh&args=check");
    expect(ws.status).toBe(101);
    expect(await ws.closed).toEqual({ code: 1000, reason: "127" });
  });
});

describe("what stays refused", () => {
  test("wrong Basic credentials: 401 (upstream's client reports 'bad handshake'); other paths: 404", async () => {
    const bad = await dialUpstream(agent.url, "/cmd/?command=true", { user: "kosmos", password: "nope" });
    expect(bad.status).toBe(401);
    for (const path of ["/cmdx?command=true", "/cmd/x?command=true", "/cmd//?command=true"]) {
      const r = await dial(path);
      expect({ path, status: r.status }).toEqual({ path, status: 404 });
    }
  });
});
