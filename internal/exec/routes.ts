import { Hono } from "hono";
import type { Logger, Registry } from "../observability/index.ts";
import type { AuditSink } from "./audit.ts";
import type { ExecEnv } from "./env.ts";
import { legacyRoutes } from "./legacy.ts";
import { type ExecLimits, SessionManager } from "./session.ts";
import { v1Routes } from "./v1.ts";
import { MemoryJournal, type WorkflowJournal } from "./workflow.ts";
import { workflowRoutes } from "./workflow-routes.ts";

export interface ExecDeps {
  audit: AuditSink;
  /** Workflow state (SqliteJournal in the agent; in-memory when omitted). */
  journal?: WorkflowJournal;
  /** Upload roots: every upload target must be inside one of these. */
  roots: string[];
  limits?: Partial<ExecLimits>;
  logger: Logger;
  registry?: Registry;
}

/**
 * All exec endpoints: upstream-compatible /cmd /sh /py /upload /tty /check, /v1/exec, /v1/files,
 * /v1/node/join, /v1/node/leave. Call `recoverWorkflows` once at agent start.
 * Mount after the auth middleware (it reads `c.var.principal`).
 */
export function createExecRoutes(deps: ExecDeps): Hono<ExecEnv> & { sessions: SessionManager } {
  const sessions = new SessionManager(deps);
  const app = new Hono<ExecEnv>();
  app.route("/", legacyRoutes({ sessions, roots: deps.roots }));
  app.route("/", v1Routes({ sessions, roots: deps.roots }));
  app.route(
    "/",
    workflowRoutes({ sessions, roots: deps.roots, journal: deps.journal ?? new MemoryJournal() }),
  );
  return Object.assign(app, { sessions });
}
