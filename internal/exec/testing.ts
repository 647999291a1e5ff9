/** A real agent API (TLS + unix socket, auth, exec routes) on 127.0.0.1 for tests and benches. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { createBunWebSocket } from "hono/bun";
import { type AuthConfig, authMiddleware, type RateLimitOptions } from "../api/auth.ts";
import { type ServerBindings, startServer } from "../api/server.ts";
import { loadOrCreateTls } from "../api/tls.ts";
import { silentLogger } from "../observability/index.ts";
import { type AuditSink, MemoryAudit } from "./audit.ts";
import type { AgentTarget } from "./client.ts";
import { createExecRoutes } from "./routes.ts";
import type { ExecLimits, SessionManager } from "./session.ts";

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
