import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GMAC, gmacChecksum, newGmacParams, SHA256_SEE_CHECKSUM } from "../../internal/exec/checksum.ts";
import { AgentClient } from "../../internal/exec/client.ts";
import { PROTOCOL_V4, PROTOCOL_V5 } from "../../internal/exec/k8s.ts";
import { legacyCall, startTestAgent } from "../helpers/exec-agent.ts";
import { type RealAgent, startRealAgent } from "../helpers/real-agent.ts";
import { alive, until } from "../helpers/wait.ts";

/** The real agent (its auth, rate limiter and SQLite audit); see test/helpers/real-agent.ts. */
let agent: RealAgent;
let client: AgentClient;

beforeAll(async () => {
  agent = await startRealAgent();
  client = new AgentClient(agent.target());
});
afterAll(async () => {
  await agent?.stop();
});

const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

const legacy = (path: string, send: (string | Uint8Array)[] = []) => legacyCall(agent, path, send);

describe("/v1/exec (kubernetes v5 channel protocol)", () => {
  test("exit codes 0, 1, 127 and signals", async () => {
    expect((await client.exec(["true"])).exitCode).toBe(0);
    expect((await client.exec(["false"])).exitCode).toBe(1);
    const nf = await client.exec(["definitely-not-a-command"]);
    expect(nf.exitCode).toBe(127);
    expect(nf.stderr).toContain("command not found");
    const sig = await client.exec(["sh", "-c", "kill -TERM $$"]);
    expect(sig.exitCode).toBe(143);
    expect(sig.status.reason).toBe("NonZeroExitCode");
    expect(sig.status.details?.causes[0]).toEqual({ reason: "ExitCode", message: "143" });
  });

  test("stdout and stderr interleaved are both delivered completely, in order per stream", async () => {
    const r = await client.exec([
      "sh",
      "-c",
      "i=0; while [ $i -lt 2000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done",
    ]);
    const out = r.stdout.trim().split("\n");
    const err = r.stderr.trim().split("\n");
    expect(out.length).toBe(2000);
    expect(err.length).toBe(2000);
    expect(out[1999]).toBe("out1999");
    expect(err[0]).toBe("err0");
    expect(out.every((l, i) => l === `out${i}`)).toBe(true);
  });

  test("large output (~40 MB) arrives complete", async () => {
    const h = createHash("sha256");
    let n = 0;
    const r = await client.exec(["sh", "-c", "head -c 40000000 /dev/zero | tr '\\0' x"], {
      onStdout: (c) => {
        n += c.byteLength;
        h.update(c);
      },
    });
    expect(r.exitCode).toBe(0);
    expect(n).toBe(40_000_000);
    expect(h.digest("hex")).toBe(sha("x".repeat(40_000_000)));
  });

  test("stdin streaming with half-close", async () => {
    const data = randomBytes(5 * 1024 * 1024);
    const r = await client.exec(["sha256sum"], { stdin: data });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split(" ")[0]).toBe(sha(data));
  });

  test("v4.channel.k8s.io from a client that offers only v4: same frames and status, no stdin half-close", async () => {
    const r = await client.exec(["sh", "-c", "read x; echo got:$x; exit 3"], {
      protocol: PROTOCOL_V4,
      stdin: "line\n",
    });
    expect(r.protocol).toBe(PROTOCOL_V4);
    expect(r.stdout).toBe("got:line\n");
    expect(r.exitCode).toBe(3);
    expect(r.status.details?.causes[0]).toEqual({ reason: "ExitCode", message: "3" });
    // v4 cannot signal the end of stdin: `cat` waits until the session timeout ends it
    const cat = await client.exec(["cat"], { protocol: PROTOCOL_V4, stdin: "abc", timeout: 1 });
    expect(cat).toMatchObject({ protocol: PROTOCOL_V4, stdout: "abc", exitCode: 143 });
    // the default offer is v5 first, and v5 half-closes stdin
    const v5 = await client.exec(["cat"], { stdin: "abc" });
    expect(v5).toMatchObject({ protocol: PROTOCOL_V5, stdout: "abc", exitCode: 0 });
  });

  // The child's stdin is a socket (Bun's stdio); Debian's bash would take that for an ssh session
  // and source the rc files: a node user's ~/.bashrc ran (or hung) in every `bash -c` with stdin.
  test("bash -c with stdin reads no rc file (as under kubelet's exec)", async () => {
    const home = join(agent.dir, "home-rc");
    await mkdir(home, { recursive: true });
    await writeFile(join(home, ".bashrc"), "echo RC-SOURCED\n");
    // an agent started by no shell (a DaemonSet pod) has no SHLVL, or 0; this one runs in the test process
    const shlvl = process.env.SHLVL;
    try {
      for (const level of [undefined, "0"]) {
        if (level === undefined) delete process.env.SHLVL;
        else process.env.SHLVL = level;
        const r = await client.exec(["bash", "-c", 'read x; echo "got:$x level:$SHLVL"'], {
          stdin: "line\n",
          env: { HOME: home },
        });
        expect(r.stdout, `agent SHLVL ${level}`).toBe("got:line level:2\n");
        expect(r.exitCode).toBe(0);
      }
    } finally {
      if (shlvl !== undefined) process.env.SHLVL = shlvl;
    }
  });

  test("env and working directory", async () => {
    const r = await client.exec(["sh", "-c", 'echo "$FOO:$(pwd)"'], {
      env: { FOO: "bar baz" },
      cwd: agent.dir,
    });
    expect(r.stdout.trim()).toBe(`bar baz:${agent.dir}`);
  });

  test("the agent's own JavaScriptCore settings do not reach commands; a session can still set them", async () => {
    // agents run with BUN_JSC_useBaselineJIT=0 (internal/agent/runtime.ts); this agent runs in the test
    const saved = process.env.BUN_JSC_useBaselineJIT;
    process.env.BUN_JSC_useBaselineJIT = "0";
    try {
      // (a session env makes the agent build the child's environment from process.env, where the
      // test's setting is visible; Bun.spawn without env passes the environ the process started with)
      const show = 'printenv BUN_JSC_useBaselineJIT || echo unset; echo "$FOO $PATH"';
      const plain = await client.exec(["sh", "-c", show], { env: { FOO: "x" } });
      expect(plain.stdout).toBe(`unset\nx ${process.env.PATH}\n`);
      const asked = await client.exec(["sh", "-c", show], { env: { BUN_JSC_useBaselineJIT: "1" } });
      expect(asked.stdout.split("\n")[0]).toBe("1");
    } finally {
      if (saved === undefined) delete process.env.BUN_JSC_useBaselineJIT;
      else process.env.BUN_JSC_useBaselineJIT = saved;
    }
  });

  test("no shell interpretation of arguments", async () => {
    const r = await client.exec(["echo", "$(id); rm -rf /", "`x`"]);
    expect(r.stdout).toBe("$(id); rm -rf / `x`\n");
  });

  test("PTY: isatty, initial size and resize really change the terminal", async () => {
    let out = "";
    let resize: (c: number, r: number) => void = () => {};
    let sawFirst: () => void = () => {};
    const first = new Promise<void>((r) => {
      sawFirst = r;
    });
    async function* input() {
      await first;
      resize(132, 50);
      // the resize frame is ordered before this stdin frame on the same connection
      yield new TextEncoder().encode("\n");
    }
    const r = await client.exec(["sh", "-c", "test -t 0 && echo TTY; stty size; read x; stty size"], {
      tty: true,
      size: { cols: 100, rows: 30 },
      stdin: input(),
      onResizer: (fn) => {
        resize = fn;
      },
      onStdout: (c) => {
        out += new TextDecoder().decode(c);
        if (out.includes("30 100")) sawFirst();
      },
    });
    expect(r.exitCode).toBe(0);
    expect(out).toContain("TTY");
    expect(out).toContain("30 100");
    expect(out).toContain("50 132");
  });

  test("client disconnect kills the whole process tree", async () => {
    const ws = await client.openWs(
      "/v1/exec?command=sh&command=-c&command=sleep%201000%20%26%20echo%20%24!%3B%20wait&stdout=true",
      ["v5.channel.k8s.io"],
    );
    let out = "";
    ws.addEventListener("message", (e) => {
      const b = new Uint8Array(e.data as ArrayBuffer);
      if (b[0] === 1) out += new TextDecoder().decode(b.subarray(1));
    });
    await until(() => out.includes("\n"), "child pid printed");
    const pid = Number(out.trim());
    expect(alive(pid)).toBe(true);
    ws.close();
    await until(() => !alive(pid), "background child killed after disconnect");
    expect(alive(pid)).toBe(false);
  });

  test("session timeout terminates the process group; the audit says so", async () => {
    const r = await client.exec(["sh", "-c", "sleep 1000"], { timeout: 0.3 });
    expect(r.exitCode).toBe(143);
    expect(r.status.message).toContain("session timeout");
    const row = agent.audit().find((a) => a.command === "sh" && a.args === '["-c","sleep 1000"]');
    expect(row).toMatchObject({ exit_code: 143, signal: "SIGTERM", error: "session timeout" });
  });

  test("the admin unix socket needs no credentials", async () => {
    const u = new AgentClient({ url: `unix:${agent.unixSocket}` });
    const r = await u.exec(["echo", "via-unix"]);
    expect(r.stdout).toBe("via-unix\n");
    const row = agent.audit().find((a) => a.command === "echo" && a.args === '["via-unix"]');
    expect(row).toMatchObject({ principal: "unix", remote_addr: "unix", exit_code: 0 });
  });

  test("sessions are audited in the agent's SQLite (exec_sessions)", async () => {
    await client.exec(["echo", "audited"]);
    const row = agent.audit().find((r) => r.command === "echo" && r.args === '["audited"]');
    expect(row).toMatchObject({
      endpoint: "/v1/exec",
      remote_addr: "127.0.0.1",
      exit_code: 0,
      signal: null,
      bytes_in: 0,
      bytes_out: 8,
      error: null,
    });
    expect(row?.principal).toMatch(/^token:[0-9a-f]{8}$/);
    expect(row?.ended_at).toBeGreaterThanOrEqual(row?.started_at as number);
    expect(row?.duration_ms).toBe((row?.ended_at as number) - (row?.started_at as number));
  });
});

describe("uploads", () => {
  test("large file upload, GMAC-verified by default, atomic, backup kept", async () => {
    const local = join(agent.dir, "big.bin");
    const data = randomBytes(48 * 1024 * 1024 + 12_345);
    await writeFile(local, data);
    const target = join(agent.root, "sub", "big.bin");
    const r = await client.upload(local, target);
    expect(r.bytes).toBe(data.length);
    expect(r.checksum?.algorithm).toBe(GMAC);
    expect(r.checksum?.verified).toBe(true);
    expect(sha(await readFile(target))).toBe(sha(data));
    expect(r.backup).toBeNull();
    await writeFile(local, "v2");
    const r2 = await client.upload(local, target);
    expect(r2.backup).toMatch(/big\.bin_\d{4}-\d{2}-\d{2}-\d{9}_bak$/);
    expect(sha(await readFile(r2.backup as string))).toBe(sha(data));
    expect(await readFile(target, "utf8")).toBe("v2");
    const leftovers = (await readdir(join(agent.root, "sub"))).filter((f) => f.endsWith(".tmp"));
    expect(leftovers).toEqual([]);
  });

  test("checksum: sha256 reports the SHA-256 of the installed file; empty files work", async () => {
    const local = join(agent.dir, "s.bin");
    const data = randomBytes(5 * 1024 * 1024 + 3);
    await writeFile(local, data);
    const target = join(agent.root, "s.bin");
    const r = await client.upload(local, target, { checksum: "sha256" });
    expect(r.sha256).toBe(sha(data));
    expect(r.checksum).toEqual({ algorithm: "sha256", value: sha(data), verified: true });
    expect(sha(await readFile(target))).toBe(sha(data));
    await writeFile(local, "");
    const e = await client.upload(local, join(agent.root, "empty"));
    expect(e.bytes).toBe(0);
    expect(await readFile(join(agent.root, "empty"), "utf8")).toBe("");
  });

  test("a wrong GMAC tag or a wrong sha256 trailer leaves the target untouched", async () => {
    const target = join(agent.root, "keep2.txt");
    await writeFile(target, "original");
    const p = newGmacParams();
    const data = Buffer.from("new content");
    const tag = gmacChecksum(p.key, p.iv);
    tag.update(Buffer.from("other content"));
    for (const [headers, body] of [
      [
        { "x-kosmos-checksum": p.header, "x-kosmos-sha256": SHA256_SEE_CHECKSUM },
        Buffer.concat([data, Buffer.from(tag.digest())]),
      ],
      [{ "x-kosmos-sha256": "trailer" }, Buffer.concat([data, Buffer.from("0".repeat(64))])],
    ] as const) {
      const res = await client.request(`/v1/files?path=${encodeURIComponent(target)}`, {
        method: "PUT",
        body,
        headers,
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe("CHECKSUM_MISMATCH");
      expect(await readFile(target, "utf8")).toBe("original");
    }
    expect((await readdir(agent.root)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  test("a client that disconnects mid-body leaves the target untouched and no temp file", async () => {
    const target = join(agent.root, "keep3.txt");
    await writeFile(target, "original");
    const ac = new AbortController();
    let sent = 0;
    // keep sending until the agent has written part of the body to its temp file, then go away
    // (aborting after a fixed amount raced: the client could drop the connection before the
    // agent had read anything, and the audit then rightly says 0 bytes)
    const tempWritten = async () => {
      for (const f of await readdir(agent.root)) {
        if (!f.startsWith(".keep3.txt.")) continue;
        const st = await stat(join(agent.root, f)).catch(() => null);
        if (st && st.size > 0) return true;
      }
      return false;
    };
    const body = new ReadableStream<Uint8Array>({
      async pull(ctl) {
        if (sent >= 4 * 1024 * 1024 && ((await tempWritten()) || sent >= 60 * 1024 * 1024)) {
          ac.abort();
          return;
        }
        sent += 1024 * 1024;
        ctl.enqueue(randomBytes(1024 * 1024));
      },
    });
    const p = newGmacParams();
    await client
      .request(`/v1/files?path=${encodeURIComponent(target)}`, {
        method: "PUT",
        body,
        signal: ac.signal,
        duplex: "half",
        headers: {
          "content-length": String(64 * 1024 * 1024),
          "x-kosmos-checksum": p.header,
          "x-kosmos-sha256": SHA256_SEE_CHECKSUM,
        },
      } as RequestInit)
      .catch(() => null);
    // the agent had received data when the client went away, and recorded the failed upload
    await until(
      () =>
        agent
          .audit()
          .some(
            (a) =>
              a.endpoint === "/v1/files" &&
              a.args === JSON.stringify([target]) &&
              a.ended_at !== null &&
              a.error !== null &&
              a.bytes_in > 0,
          ),
      "aborted upload audited",
    );
    expect((await readdir(agent.root)).filter((f) => f.startsWith(".keep3.txt"))).toEqual([]);
    expect(await readFile(target, "utf8")).toBe("original");
  }, 30_000); // a deadline, not a timing assertion: on a loaded 2-core machine the abort takes seconds to surface

  test("an agent that predates x-kosmos-checksum refuses the GMAC upload; the client falls back to sha256 first", async () => {
    // PUT /v1/files as agents before x-kosmos-checksum implemented it: the body is the data,
    // x-kosmos-sha256 is compared with its SHA-256 (so "see-x-kosmos-checksum" never matches)
    const attempts: Record<string, string | undefined>[] = [];
    const old = await startTestAgent({
      extend: (app) =>
        app.put("/v1/files", async (c) => {
          attempts.push({
            sha256: c.req.header("x-kosmos-sha256"),
            checksum: c.req.header("x-kosmos-checksum"),
          });
          const path = c.req.query("path") as string;
          const body = new Uint8Array(await c.req.arrayBuffer());
          const got = sha(body);
          const expected = c.req.header("x-kosmos-sha256");
          if (expected && expected.toLowerCase() !== got)
            return c.json(
              {
                code: "CHECKSUM_MISMATCH",
                message: `sha256 mismatch: got ${got}, expected ${expected}`,
                hint: "re-send the file",
              },
              400,
            );
          await writeFile(path, body);
          return c.json({ path, bytes: body.byteLength, sha256: got, backup: null }, 201);
        }),
    });
    try {
      const local = join(old.dir, "f.bin");
      const data = randomBytes(3 * 1024 * 1024 + 1);
      await writeFile(local, data);
      await mkdir(old.root, { recursive: true });
      const target = join(old.root, "f.bin");
      const r = await new AgentClient(old.target()).upload(local, target);
      expect(attempts).toHaveLength(2);
      expect(attempts[0]?.checksum).toStartWith(`${GMAC};`);
      expect(attempts[0]?.sha256).toBe(SHA256_SEE_CHECKSUM);
      expect(attempts[1]).toEqual({ sha256: sha(data), checksum: undefined });
      expect(r.checksum).toEqual({ algorithm: "sha256", value: sha(data), verified: true });
      expect(sha(await readFile(target))).toBe(sha(data));
    } finally {
      await old.stop();
    }
  });

  test("checksum mismatch leaves the target untouched", async () => {
    const target = join(agent.root, "keep.txt");
    await writeFile(target, "original");
    const res = await client.request(`/v1/files?path=${encodeURIComponent(target)}`, {
      method: "PUT",
      body: "new content",
      headers: { "x-kosmos-sha256": "0".repeat(64) },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("CHECKSUM_MISMATCH");
    expect(await readFile(target, "utf8")).toBe("original");
  });

  test("path escapes are refused (.., absolute elsewhere, symlink)", async () => {
    await mkdir(agent.root, { recursive: true });
    await symlink("/tmp", join(agent.root, "escape")).catch(() => {});
    for (const p of [
      `${agent.root}/../outside.txt`,
      "/etc/kosmos-test-should-not-exist",
      `${agent.root}/escape/x.txt`,
    ]) {
      const res = await client.request(`/v1/files?path=${encodeURIComponent(p)}`, {
        method: "PUT",
        body: "x",
      });
      expect(res.status).toBe(403);
      expect(((await res.json()) as { code: string }).code).toBe("PATH_OUTSIDE_ROOTS");
    }
    expect(await lstat("/etc/kosmos-test-should-not-exist").catch(() => null)).toBeNull();
    const lg = await legacy(`/upload?file_name=x.txt&file_path=${encodeURIComponent(`${agent.root}/..`)}`, [
      "data",
      "EOF",
    ]);
    expect(lg.code).toBe(1007);
    expect(lg.reason).toContain("outside the allowed upload roots");
  });
});

describe("authentication", () => {
  test("health is public; missing or bad credentials get 401 (rate limiting: exec-auth.test.ts)", async () => {
    const tls = { rejectUnauthorized: false };
    const h = await fetch(`${agent.url}/healthz`, { tls } as RequestInit);
    expect(h.status).toBe(200);
    const none = await fetch(`${agent.url}/v1/exec?command=true`, { tls } as RequestInit);
    expect(none.status).toBe(401);
    const bad = new AgentClient(agent.target({ token: "wrong-token-wrong-token" }));
    await expect(bad.exec(["true"])).rejects.toThrow();
    // a successful authentication clears the two failures: later tests are not blocked
    expect((await client.exec(["true"])).exitCode).toBe(0);
  });

  test("pinning a wrong fingerprint refuses to connect", async () => {
    const c = new AgentClient({ url: agent.url, token: agent.token, fingerprint: "ab".repeat(32) });
    await expect(c.exec(["true"])).rejects.toMatchObject({ code: "FINGERPRINT_MISMATCH" });
  });
});
