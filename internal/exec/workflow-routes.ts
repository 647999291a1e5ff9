/**
 * GET /v1/node/join, /v1/node/leave (websocket): the client sends the WorkflowSpec as the first
 * text frame; the agent streams WorkflowEvent JSON text frames and closes 1000 with reason "0"
 * (succeeded) or "1" (failed / rolled back). The workflow keeps running if the client goes away.
 */
import { Hono } from "hono";
import { type ExecEnv, sessionInfo } from "./env.ts";
import type { SessionManager } from "./session.ts";
import { runWorkflow, type WorkflowJournal, WorkflowSpecSchema } from "./workflow.ts";
import { upgradeWs, WsPeer } from "./ws.ts";

export function workflowRoutes(deps: {
  sessions: SessionManager;
  journal: WorkflowJournal;
  roots: string[];
}): Hono<ExecEnv> {
  const app = new Hono<ExecEnv>();
  for (const kind of ["join", "leave"] as const) {
    app.get(`/v1/node/${kind}`, (c) => {
      const finish = deps.sessions.record(sessionInfo(c, `/v1/node/${kind}`), ["workflow", kind]);
      let started = false;
      let peer: WsPeer;
      const res = upgradeWs(c, {
        onOpen: (_e, ws) => {
          peer = new WsPeer(ws);
        },
        onMessage: (e, ws) => {
          peer ??= new WsPeer(ws);
          if (started) return;
          started = true;
          let spec: ReturnType<typeof WorkflowSpecSchema.parse>;
          try {
            const raw = JSON.parse(
              typeof e.data === "string" ? e.data : new TextDecoder().decode(e.data as ArrayBuffer),
            );
            spec = WorkflowSpecSchema.parse({ kind, ...raw });
            if (spec.kind !== kind) throw new Error(`spec kind ${spec.kind} on /v1/node/${kind}`);
          } catch (err) {
            finish({ exitCode: null, error: "invalid workflow spec" });
            peer.close(1007, `invalid workflow spec: ${(err as Error).message}`);
            return;
          }
          const p = peer;
          void runWorkflow(spec, {
            journal: deps.journal,
            roots: deps.roots,
            onEvent: (ev) => void p.send(JSON.stringify(ev)),
          }).then((r) => {
            finish({ exitCode: r.status === "succeeded" ? 0 : 1, error: r.error ?? null });
            p.close(1000, r.status === "succeeded" ? "0" : "1");
          });
        },
        onClose: () => {
          if (peer) peer.closed = true;
          if (!started) finish({ exitCode: null, error: "closed before a spec was sent" });
        },
      });
      return res ?? c.text("websocket upgrade required", 426);
    });
  }
  return app;
}
