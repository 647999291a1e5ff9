import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { lstat, mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { AgentClient } from "../../internal/exec/client.ts";
import { legacyCall, startTestAgent, type TestAgent } from "../../internal/exec/testing.ts";

let agent: TestAgent;
let client: AgentClient;

beforeAll(async () => {
  agent = await startTestAgent({ rateLimit: { maxFailures: 3, windowMs: 60_000, blockMs: 60_000 } });
  client = new AgentClient(agent.target());
});
afterAll(async () => {
  await agent?.stop();
});

const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(cond: () => boolean | Promise<boolean>, what: string, tries = 500): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await cond()) return;
    await Bun.sleep(20);
  }
  throw new Error(`condition never became true: ${what}`);
}

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

  test("env and working directory", async () => {
    const r = await client.exec(["sh", "-c", 'echo "$FOO:$(pwd)"'], {
      env: { FOO: "bar baz" },
      cwd: agent.dir,
    });
    expect(r.stdout.trim()).toBe(`bar baz:${agent.dir}`);
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

  test("session timeout terminates the process group", async () => {
    const r = await client.exec(["sh", "-c", "sleep 1000"], { timeout: 0.3 });
    expect(r.exitCode).toBe(143);
    expect(r.status.message).toContain("session timeout");
  });

  test("the admin unix socket needs no credentials", async () => {
    const u = new AgentClient({ url: `unix:${agent.unixSocket}` });
    const r = await u.exec(["echo", "via-unix"]);
    expect(r.stdout).toBe("via-unix\n");
    const last = agent.audit.list().at(-1);
    expect(last?.principal).toBe("unix");
  });

  test("sessions are audited", async () => {
    await client.exec(["echo", "audited"]);
    const rec = agent.audit.list().find((r) => r.command.join(" ") === "echo audited");
    expect(rec?.exitCode).toBe(0);
    expect(rec?.principal).toMatch(/^token:/);
    expect(rec?.bytesOut).toBe(8);
    expect(rec?.endpoint).toBe("/v1/exec");
  });
});

describe("uploads", () => {
  test("large file upload with checksum verification, atomic, backup kept", async () => {
    const local = join(agent.dir, "big.bin");
    const data = randomBytes(48 * 1024 * 1024);
    await writeFile(local, data);
    const target = join(agent.root, "sub", "big.bin");
    const r = await client.upload(local, target);
    expect(r.bytes).toBe(data.length);
    expect(r.sha256).toBe(sha(data));
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
  test("health is public; missing/bad credentials get 401, then 429 with Retry-After", async () => {
    const tls = { rejectUnauthorized: false };
    const h = await fetch(`${agent.url}/healthz`, { tls } as RequestInit);
    expect(h.status).toBe(200);
    const none = await fetch(`${agent.url}/v1/exec?command=true`, { tls } as RequestInit);
    expect(none.status).toBe(401);
    const bad = new AgentClient(agent.target({ token: "wrong-token-wrong-token" }));
    await expect(bad.exec(["true"])).rejects.toThrow();
    const third = await fetch(`${agent.url}/v1/exec?command=true`, {
      tls,
      headers: { Authorization: "Basic " + Buffer.from("kosmos:nope").toString("base64") },
    } as RequestInit);
    expect(third.status).toBe(401);
    const blocked = await fetch(`${agent.url}/v1/exec?command=true`, {
      tls,
      headers: { Authorization: `Bearer ${agent.token}` },
    } as RequestInit);
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);
  });

  test("pinning a wrong fingerprint refuses to connect", async () => {
    const c = new AgentClient({ url: agent.url, token: agent.token, fingerprint: "ab".repeat(32) });
    await expect(c.exec(["true"])).rejects.toMatchObject({ code: "FINGERPRINT_MISMATCH" });
  });
});
