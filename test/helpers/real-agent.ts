/**
 * The real agent (internal/agent Agent: its config, auth middleware and rate limiter, identity
 * endpoint, exec routes, SQLite store) on 127.0.0.1 for the exec API tests. It is never seeded and
 * its dataplane runner refuses every command, so it touches nothing on this machine (the kernel side
 * is tested in test/dataplane). The audit is read back from its SQLite file, as an operator would.
 */
import { Database } from "bun:sqlite";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent } from "../../internal/agent/agent.ts";
import type { AgentConfigInput } from "../../internal/agent/config.ts";
import type { Runner } from "../../internal/sys/index.ts";
import type { AgentTarget } from "../../internal/exec/client.ts";
import { type Logger, silentLogger } from "../../internal/observability/index.ts";

/** A row of the agent's exec_sessions table (docs/operations.md), as sqlite3 shows it. */
export interface AuditRow {
  id: string;
  started_at: number;
  ended_at: number | null;
  principal: string;
  remote_addr: string | null;
  endpoint: string | null;
  command: string;
  args: string;
  exit_code: number | null;
  signal: string | null;
  duration_ms: number | null;
  bytes_in: number;
  bytes_out: number;
  error: string | null;
}

export interface RealAgent {
  agent: Agent;
  dir: string;
  /** the only upload root */
  root: string;
  url: string;
  fingerprint: string;
  token: string;
  basic: { user: string; password: string };
  unixSocket: string;
  target(extra?: Partial<AgentTarget>): AgentTarget;
  /** exec_sessions rows, oldest first, read from the agent's SQLite file */
  audit(): AuditRow[];
  stop(): Promise<void>;
}

/** Test credentials: a token of the minimum strength and upstream-style WEB_USER/WEB_PASS. */
export const REAL_AGENT_TOKEN = "real-agent-token-0123456789abcdef";
export const REAL_AGENT_BASIC = { user: "kosmos", password: "web-pass-0123456789" };

/** No kernel for these tests: every dataplane command fails (capabilities are reported missing). */
const noKernel: Runner = {
  run: async (argv) => ({ stdout: "", stderr: `${argv[0]}: not run by the exec tests`, code: 1 }),
};

export async function startRealAgent(
  config: Partial<AgentConfigInput> = {},
  logger: Logger = silentLogger(),
): Promise<RealAgent> {
  const dir = await mkdtemp(join(tmpdir(), "kosmos-real-agent-"));
  const root = join(dir, "root");
  await mkdir(root, { recursive: true });
  const agent = new Agent(
    {
      node: "exec-node",
      stateDir: join(dir, "state"),
      listenHost: "127.0.0.1",
      listenPort: 0,
      token: REAL_AGENT_TOKEN,
      basicAuth: REAL_AGENT_BASIC,
      uploadRoots: [root],
      watchKernel: false,
      logLevel: "silent",
      ...config,
    },
    { runner: noKernel, logger },
  );
  try {
    await agent.start();
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  const url = agent.endpoint as string;
  let db: Database;
  try {
    db = new Database(agent.cfg.db ?? join(agent.cfg.stateDir, "kosmos.db"), { readonly: true });
  } catch (e) {
    await agent.stop();
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    agent,
    dir,
    root,
    url,
    fingerprint: agent.tls.fingerprint,
    token: REAL_AGENT_TOKEN,
    basic: REAL_AGENT_BASIC,
    unixSocket: agent.adminSocket,
    target: (extra) => ({ url, token: REAL_AGENT_TOKEN, fingerprint: agent.tls.fingerprint, ...extra }),
    audit: () => db.query("SELECT * FROM exec_sessions ORDER BY started_at, rowid").all() as AuditRow[],
    async stop() {
      db.close();
      await agent.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
