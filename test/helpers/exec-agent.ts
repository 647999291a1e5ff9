/**
 * A stand-in agent API for tests and benches: the exec routes behind the real auth middleware, TLS and
 * the admin unix socket on 127.0.0.1, with an in-memory audit.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { createBunWebSocket } from "hono/bun";
import { type AuthConfig, authMiddleware, type RateLimitOptions } from "../../internal/api/auth.ts";
import { type ServerBindings, startServer } from "../../internal/api/server.ts";
import { loadOrCreateTls } from "../../internal/api/tls.ts";
import { silentLogger } from "../../internal/observability/index.ts";
import { type AuditSink, MemoryAudit } from "../../internal/exec/audit.ts";
import type { AgentTarget } from "../../internal/exec/client.ts";
import { createExecRoutes } from "../../internal/exec/routes.ts";
import type { ExecLimits, SessionManager } from "../../internal/exec/session.ts";

export interface TestAgent {
  dir: string;
  root: string;
  url: string;
  unixSocket: string;
  fingerprint: string;
  token: string;
  basic: { user: string; password: string };
  audit: MemoryAudit;
  sessions: SessionManager;
  target(extra?: Partial<AgentTarget>): AgentTarget;
  stop(): Promise<void>;
}

export async function startTestAgent(
  opts: {
    limits?: Partial<ExecLimits>;
    rateLimit?: Partial<RateLimitOptions>;
    audit?: AuditSink;
    extend?: (app: Hono<{ Bindings: ServerBindings }>) => void;
    dir?: string;
  } = {},
): Promise<TestAgent> {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), "kosmos-exec-")));
  const root = join(dir, "root");
  // tests may write into the root before any upload created it (and run one at a time with -t)
  await mkdir(root, { recursive: true });
  const token = "test-token-0123456789abcdef";
  const basic = { user: "kosmos", password: "s3cret-pass" };
  const auth: AuthConfig = { basic: [basic], tokens: [token] };
  const tls = await loadOrCreateTls({ stateDir: dir, commonName: "test-node" });
  const audit = new MemoryAudit();
  const { websocket } = createBunWebSocket();
  const app = new Hono<{ Bindings: ServerBindings }>();
  app.get("/healthz", (c) => c.text("ok"));
  app.use("*", authMiddleware(auth, { rateLimit: opts.rateLimit }));
  const exec = createExecRoutes({
    audit: opts.audit ?? audit,
    roots: [root],
    limits: opts.limits,
    logger: silentLogger(),
  });
  opts.extend?.(app);
  app.route("/", exec);
  const unixSocket = join(dir, "agent.sock");
  const srv = await startServer({
    app,
    websocket,
    tcp: { hostname: "127.0.0.1", port: 0, tls: { cert: tls.cert, key: tls.key } },
    unixSocket,
    logger: silentLogger(),
  });
  return {
    dir,
    root,
    url: srv.url as string,
    unixSocket,
    fingerprint: tls.fingerprint,
    token,
    basic,
    audit,
    sessions: exec.sessions,
    target: (extra) => ({ url: srv.url as string, token, fingerprint: tls.fingerprint, ...extra }),
    async stop() {
      await srv.stop();
      if (!opts.dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * What the upstream (Go) node-agent client does: Basic auth over wss, collect every text/binary
 * frame, then the close frame (code, and the exit code as reason). For tests and benches.
 */
export async function legacyCall(
  agent: Pick<TestAgent, "url" | "basic">,
  path: string,
  send: (string | Uint8Array)[] = [],
): Promise<{ frames: (string | Uint8Array)[]; code: number; reason: string }> {
  const auth = `Basic ${Buffer.from(`${agent.basic.user}:${agent.basic.password}`).toString("base64")}`;
  const ws = new WebSocket(agent.url.replace("https", "wss") + path, {
    headers: { Authorization: auth },
    tls: { rejectUnauthorized: false },
  } as unknown as string[]);
  ws.binaryType = "arraybuffer";
  const frames: (string | Uint8Array)[] = [];
  ws.onmessage = (e) =>
    frames.push(typeof e.data === "string" ? e.data : new Uint8Array(e.data as ArrayBuffer));
  const closed = new Promise<{ code: number; reason: string }>((r) => {
    ws.onclose = (e) => r({ code: e.code, reason: e.reason });
  });
  await new Promise<void>((r) => {
    ws.onopen = () => r();
  });
  for (const m of send) ws.send(m);
  return { frames, ...(await closed) };
}
