/**
 * Credentials of the real agent: the one token strength rule for every way a token is given (and
 * what start-up says), the identity exchange (a PAKE: no offline test of a token), and the rate
 * limiter, which counts failed authentications and identity exchanges alike, on /v1 and on the
 * upstream endpoints.
 */
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { AuthConfigError } from "../../internal/api/auth.ts";
import { checkIdentity, IDENTITY_PATH } from "../../internal/api/identity.ts";
import { AgentClient } from "../../internal/exec/client.ts";
import { REAL_AGENT_TOKEN, type RealAgent, startRealAgent } from "../helpers/real-agent.ts";
import { dialUpstream } from "../helpers/upstream-ws.ts";

const ROOT = join(import.meta.dir, "..", "..");
const insecure = { tls: { rejectUnauthorized: false } } as RequestInit;

/** The error an agent start fails with; an agent that starts after all is stopped again (the test then fails). */
async function startError(config: Parameters<typeof startRealAgent>[0]): Promise<unknown> {
  try {
    const started = await startRealAgent(config);
    await started.stop();
    return undefined;
  } catch (e) {
    return e;
  }
}

async function withAgent<T>(
  fn: (a: RealAgent) => Promise<T>,
  config: Parameters<typeof startRealAgent>[0] = {},
): Promise<T> {
  const a = await startRealAgent(config);
  try {
    return await fn(a);
  } finally {
    await a.stop();
  }
}

describe("token strength, every way a token is given", () => {
  test("--token / KOSMOS_TOKEN: a weak token stops the agent before it creates anything; the token is never shown", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kosmos-weak-"));
    try {
      for (const [token, why] of [
        ["x", "has 1 character, fewer than the 16 required"],
        ["short-token", "has 11 characters, fewer than the 16 required"],
        ["0123456789abcdef 0123", "contains whitespace or control characters"],
        ["", "has 0 characters"],
      ] as const) {
        const stateDir = join(dir, "state");
        const err = await startError({ token, stateDir });
        expect(err).toBeInstanceOf(AuthConfigError);
        expect((err as AuthConfigError).message).toStartWith("the token given by --token / KOSMOS_TOKEN");
        expect((err as AuthConfigError).message).toContain(why);
        if (token) expect((err as AuthConfigError).message).not.toContain(token);
        expect((err as AuthConfigError).hint).toContain("at least 16 characters");
        expect(existsSync(stateDir)).toBe(false);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("--auth-file: a short token is refused with the entry named", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kosmos-weak-"));
    try {
      const file = join(dir, "auth.yaml");
      await writeFile(file, "tokens:\n  - 0123456789abcdef0123\n  - tiny\n");
      const err = await startError({ authFile: file });
      expect(err).toBeInstanceOf(AuthConfigError);
      expect((err as Error).message).toContain(
        "tokens.1: the token has 4 characters, fewer than the 16 required",
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("cmd/kosmos-agent and cmd/kosmos-controller refuse `--token x` at start-up with the rule", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kosmos-weak-"));
    try {
      const run = async (argv: string[], env: Record<string, string> = {}) => {
        const p = Bun.spawn([process.execPath, ...argv], {
          cwd: ROOT,
          stdout: "pipe",
          stderr: "pipe",
          env: { ...process.env, ...env },
        });
        // a process that accepted the token would run on: end it, the test then fails on the code
        const guard = setTimeout(() => p.kill("SIGKILL"), 60_000);
        const [out, err, code] = await Promise.all([
          new Response(p.stdout).text(),
          new Response(p.stderr).text(),
          p.exited,
        ]);
        clearTimeout(guard);
        return { code, text: out + err };
      };
      const agentArgs = ["cmd/kosmos-agent.ts", "--node", "n", "--data-dir", join(dir, "s")];
      // in parallel: each process loads its whole module graph, seconds on a busy machine
      const [agent, ctl, web] = await Promise.all([
        run([...agentArgs, "--token", "x"]),
        run(["cmd/kosmos-controller.ts", "--token", "x", "--no-leader-elect"]),
        // upstream's environment: WEB_USER without WEB_PASS is an error naming the missing one
        run(agentArgs, { WEB_USER: "kosmos", WEB_PASS: "" }),
      ]);
      expect(agent.code).toBe(1);
      expect(agent.text).toContain("the token given by --token / KOSMOS_TOKEN has 1 character");
      expect(existsSync(join(dir, "s"))).toBe(false);
      expect(ctl.code).toBe(2);
      expect(ctl.text).toContain("the token given by --token / KOSMOS_TOKEN has 1 character");
      expect(ctl.text).toContain("hint: bearer tokens need at least 16 characters");
      expect(web.code).toBe(2);
      expect(web.text).toContain("WEB_PASS is not set but WEB_USER is");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 90_000); // a deadline for three cold starts of bun, not a timing assertion

  test("start-up says what was accepted and the rule; a short Basic password is accepted with a warning", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const a = await startRealAgent({ basicAuth: { user: "kosmos", password: "pw" } }, logger);
    await a.stop();
    const auth = lines.find((l) => String(l.msg).startsWith("auth:"));
    expect(auth).toMatchObject({
      msg: "auth: 1 bearer token(s), each checked: at least 16 characters; 1 Basic user(s)",
      tokens: 1,
      basicUsers: ["kosmos"],
    });
    expect(String(auth?.tokenPolicy)).toContain("at least 16 characters");
    expect(
      lines.some((l) => String(l.msg).startsWith("Basic user kosmos has a password shorter than 16")),
    ).toBe(true);
  });
});

describe("identity exchange (the real agent)", () => {
  test("proves the certificate to the token holder; GET names node and certificate only; a wrong token proves nothing", async () => {
    await withAgent(async (a) => {
      const ok = await checkIdentity(a.url, REAL_AGENT_TOKEN);
      expect(ok).toMatchObject({ status: 200, fingerprint: a.fingerprint, proven: true });
      expect(ok.certificatePem).toStartWith("-----BEGIN CERTIFICATE-----");
      const wrong = await checkIdentity(a.url, "wrong-token-0123456789abcdef");
      expect(wrong).toMatchObject({ status: 200, proven: false });
      const shown = (await (await fetch(`${a.url}${IDENTITY_PATH}`, insecure)).json()) as object;
      expect(shown).toEqual({ node: "exec-node", fingerprint256: a.fingerprint });
      // the exec client with a token and no pin runs the exchange, then talks to the proven certificate
      const r = await new AgentClient({ url: a.url, token: REAL_AGENT_TOKEN }).exec(["echo", "proven"]);
      expect(r.stdout).toBe("proven\n");
    });
  });

  test("each exchange counts as a failed authentication until the address authenticates: the 6th in a row is 429", async () => {
    await withAgent(async (a) => {
      for (let i = 0; i < 4; i++)
        expect((await checkIdentity(a.url, `guess-${i}-0123456789abcdef`)).status).toBe(200);
      // an authenticated request clears the count
      expect((await new AgentClient(a.target()).exec(["true"])).exitCode).toBe(0);
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++)
        statuses.push((await checkIdentity(a.url, `guess-${i}-0123456789abcdef`)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
      // the address is blocked for everything now, the right token included
      const blocked = await fetch(`${a.url}/v1/state`, {
        ...insecure,
        headers: { Authorization: `Bearer ${REAL_AGENT_TOKEN}` },
      });
      expect(blocked.status).toBe(429);
      expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);
      const err = await new AgentClient({ url: a.url, token: REAL_AGENT_TOKEN })
        .exec(["true"])
        .catch((e: unknown) => e);
      expect((err as Error).message).toContain("refused the identity exchange: too many failed");
    });
  });
});

describe("rate limiting under the real agent's auth", () => {
  test("5 failed authentications (Bearer, Basic, upstream endpoints) block the address: 429 with Retry-After", async () => {
    await withAgent(async (a) => {
      const bad = { user: "kosmos", password: "wrong-password-000" };
      const first = await dialUpstream(a.url, "/cmd/?command=true", bad);
      expect(first.status).toBe(401);
      expect(
        (
          await fetch(`${a.url}/v1/exec?command=true`, {
            ...insecure,
            headers: { Authorization: "Bearer nope" },
          })
        ).status,
      ).toBe(401);
      for (let i = 0; i < 3; i++)
        expect((await dialUpstream(a.url, "/upload/?file_name=x&file_path=/", bad)).status).toBe(401);
      const blocked = await dialUpstream(a.url, "/cmd/?command=true", a.basic);
      expect(blocked.status).toBe(429);
      expect(JSON.parse(blocked.body)).toMatchObject({ code: "RATE_LIMITED" });
      // nothing ran, nothing was recorded
      expect(a.audit()).toEqual([]);
    });
  });
});
