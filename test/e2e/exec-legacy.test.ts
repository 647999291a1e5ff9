import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { legacyCall } from "../helpers/exec-agent.ts";
import { type RealAgent, startRealAgent } from "../helpers/real-agent.ts";
import { dialUpstream, goQueryEscape } from "../helpers/upstream-ws.ts";
import { until } from "../helpers/wait.ts";

/** The real agent, with upstream's WEB_USER/WEB_PASS Basic credentials (test/helpers/real-agent.ts). */
let agent: RealAgent;
beforeAll(async () => {
  agent = await startRealAgent();
});
afterAll(async () => {
  await agent?.stop();
});

const legacy = (path: string, send: (string | Uint8Array)[] = []) => legacyCall(agent, path, send);

describe("upstream-compatible endpoints", () => {
  test("/cmd: one text frame per line, close 1000 with the exit code as reason", async () => {
    const r = await legacy("/cmd?command=sh&args=-c&args=printf%20'a%5Cnb%5Cnc';%20exit%203");
    expect(r.frames).toEqual(["a", "b", "c"]);
    expect(r.code).toBe(1000);
    expect(r.reason).toBe("3");
    const ok = await legacy("/cmd?command=echo&args=hello&args=world");
    expect(ok.frames).toEqual(["hello world"]);
    expect(ok.reason).toBe("0");
  });

  test("/cmd: stderr lines are delivered too, concurrently with stdout", async () => {
    const r = await legacy("/cmd?command=sh&args=-c&args=echo%20o1;%20echo%20e1%20%3E%262;%20echo%20o2");
    expect([...r.frames].sort()).toEqual(["e1", "o1", "o2"]);
    expect(r.reason).toBe("0");
  });

  test("/cmd: stdout and stderr lines arrive in the order written (upstream sends all stdout, then all stderr)", async () => {
    // each line is written only after the client saw the one before: the command waits on a fifo
    const dir = await mkdtemp(join(agent.dir, "fifo-"));
    const [f1, f2] = [join(dir, "1"), join(dir, "2")];
    for (const f of [f1, f2]) expect(Bun.spawnSync(["mkfifo", f]).exitCode).toBe(0);
    const script = `echo o1; cat ${f1} >/dev/null; echo e1 >&2; cat ${f2} >/dev/null; echo o2`;
    const ws = await dialUpstream(
      agent.url,
      `/cmd/?command=sh&&args=-c&&args=${goQueryEscape(script)}`,
      agent.basic,
    );
    const lines = () => ws.messages.map((m) => new TextDecoder().decode(m.data));
    try {
      await until(() => lines().includes("o1"), "o1 arrives while the command still runs");
      await writeFile(f1, "go\n");
      await until(() => lines().includes("e1"), "e1 (stderr) arrives before stdout has ended");
      await writeFile(f2, "go\n");
      expect(await ws.closed).toEqual({ code: 1000, reason: "0" });
      expect(lines()).toEqual(["o1", "e1", "o2"]);
    } finally {
      ws.drop();
    }
  });

  test("/cmd: unknown program closes with 127", async () => {
    const r = await legacy("/cmd?command=no-such-program-xyz");
    expect(r.code).toBe(1000);
    expect(r.reason).toBe("127");
  });

  test("/cmd: missing command", async () => {
    const r = await legacy("/cmd");
    expect(r.frames).toEqual(["No command specified"]);
  });

  test("/sh and /py: script streamed until EOF, args appended", async () => {
    const sh = await legacy("/sh?args=one&args=two", ['echo "$1-$2"\n', "exit 4\n", "EOF"]);
    expect(sh.frames).toEqual(["one-two"]);
    expect(sh.reason).toBe("4");
    const py = await legacy("/py?args=x", ["import sys\n", "print('py', sys.argv[1])\n", "EOF"]);
    expect(py.frames).toEqual(["py x"]);
    expect(py.reason).toBe("0");
  });

  test("/upload: chunks then EOF, close 1000 '0', upstream backup name", async () => {
    const dir = join(agent.root, "conf");
    const chunks = [new Uint8Array([1, 2, 3]), new TextEncoder().encode("hello")];
    const r = await legacy(`/upload?file_name=kubelet.conf&file_path=${encodeURIComponent(dir)}`, [
      ...chunks,
      "EOF",
    ]);
    expect(r.code).toBe(1000);
    expect(r.reason).toBe("0");
    expect([...(await readFile(join(dir, "kubelet.conf")))]).toEqual([1, 2, 3, 104, 101, 108, 108, 111]);
    await legacy(`/upload?file_name=kubelet.conf&file_path=${encodeURIComponent(dir)}`, ["v2", "EOF"]);
    const files = await readdir(dir);
    expect(files.some((f) => /^kubelet\.conf_\d{4}-\d{2}-\d{2}-\d{9}_bak$/.test(f))).toBe(true);
    expect(await readFile(join(dir, "kubelet.conf"), "utf8")).toBe("v2");
  });

  test("/upload: missing parameters close 1007; disconnect before EOF keeps the old file", async () => {
    const bad = await legacy("/upload?file_name=x");
    expect(bad.code).toBe(1007);
    expect(bad.reason).toBe("Invalid file_name or file_path");
    const target = join(agent.root, "stable.txt");
    await writeFile(target, "old");
    const auth = `Basic ${Buffer.from(`${agent.basic.user}:${agent.basic.password}`).toString("base64")}`;
    const ws = new WebSocket(
      `${agent.url.replace("https", "wss")}/upload?file_name=stable.txt&file_path=${encodeURIComponent(agent.root)}`,
      { headers: { Authorization: auth }, tls: { rejectUnauthorized: false } } as unknown as string[],
    );
    await new Promise<void>((r) => {
      ws.onopen = () => r();
    });
    ws.send("partial new data");
    ws.close();
    // the server records the aborted upload (this session's record: its command names the target)
    // and removes its temp file; `until` fails the test when either never happens
    const aborted = () =>
      agent
        .audit()
        .find((a) => a.command === "upload" && a.args === JSON.stringify([target]) && a.ended_at !== null);
    await until(() => aborted() !== undefined, "the aborted upload is audited");
    expect(aborted()).toMatchObject({
      endpoint: "/upload",
      exit_code: null,
      error: "client disconnected before EOF",
    });
    await until(
      async () => !(await readdir(agent.root)).some((f) => f.endsWith(".tmp")),
      "the temp file of the aborted upload is removed",
    );
    expect(await readFile(target, "utf8")).toBe("old");
    expect((await readdir(agent.root)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  test("/check: 0 when the port is free, 1 when taken", async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, () => r()));
    const port = (srv.address() as { port: number }).port;
    try {
      const taken = await legacy(`/check?port=${port}`);
      expect(taken.code).toBe(1000);
      expect(taken.reason).toBe("1");
    } finally {
      srv.close();
    }
    const free = await legacy(`/check?port=${port}`);
    expect(free.reason).toBe("0");
  });

  test("/tty: raw binary frames both ways under a PTY", async () => {
    const r = await legacy("/tty?command=sh", ["echo $((6*7)); tty\n", "exit 5\n"]);
    const text = r.frames.map((f) => (typeof f === "string" ? f : new TextDecoder().decode(f))).join("");
    expect(r.frames.every((f) => f instanceof Uint8Array)).toBe(true);
    expect(text).toContain("42");
    expect(text).toContain("/dev/pts/");
    expect(r.code).toBe(1000);
    expect(r.reason).toBe("5");
  });

  test("compat sessions are audited in the agent's SQLite with their endpoint and Basic user", async () => {
    await legacy("/cmd?command=true");
    const rows = agent.audit();
    expect(rows.find((a) => a.endpoint === "/cmd" && a.command === "true")).toMatchObject({
      principal: `basic:${agent.basic.user}`,
      args: "[]",
      exit_code: 0,
    });
    expect(rows.some((a) => a.endpoint === "/upload" && a.exit_code === 0 && a.bytes_in === 8)).toBe(true);
    expect(rows.some((a) => a.endpoint === "/check" && a.command === "check")).toBe(true);
    expect(rows.find((a) => a.endpoint === "/tty")).toMatchObject({ command: "sh", exit_code: 5 });
  });
});
