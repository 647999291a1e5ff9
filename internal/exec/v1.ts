/**
 * GET /v1/exec — Kubernetes websocket streaming protocol (v5.channel.k8s.io, v4 accepted).
 * Query: command (repeatable, required), stdin/stdout/stderr/tty (true|1), env KEY=V (repeatable),
 * workingDir, timeout (seconds), cols/rows (initial PTY size).
 * PUT /v1/files?path=/abs/file[&mode=0644] — streamed upload verified end to end (`x-kosmos-sha256`
 * / `x-kosmos-checksum`, see checksum.ts and docs/exec.md), confined to the roots, atomic, backup
 * kept. Replies JSON UploadResult.
 */
import { Hono } from "hono";
import { parseChecksumHeaders, trailerBytes } from "./checksum.ts";
import { type ExecEnv, sessionInfo, tooMany } from "./env.ts";
import { ExecError } from "./errors.ts";
import {
  errorStatus,
  exitStatus,
  frame,
  negotiateProtocol,
  PROTOCOL_V5,
  parseResize,
  STREAM,
} from "./k8s.ts";
import type { Session, SessionManager } from "./session.ts";
import { AtomicUpload, confinePath } from "./upload.ts";
import { messageBytes, upgradeWs, WsPeer } from "./ws.ts";

const truthy = (v: string | undefined) => v === "true" || v === "1";
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface ExecRequest {
  argv: string[];
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
  env: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  cols: number;
  rows: number;
}

/** Parse and validate the query of /v1/exec (pure). */
export function parseExecQuery(
  q: (k: string) => string | undefined,
  qs: (k: string) => string[] | undefined,
): ExecRequest {
  const argv = qs("command") ?? [];
  if (argv.length === 0 || !argv[0])
    throw new ExecError("BAD_REQUEST", "command is required", "pass ?command=prog&command=arg1 ...");
  const env: Record<string, string> = {};
  for (const kv of qs("env") ?? []) {
    const i = kv.indexOf("=");
    const k = i > 0 ? kv.slice(0, i) : "";
    if (!ENV_KEY.test(k))
      throw new ExecError("BAD_REQUEST", `invalid env ${JSON.stringify(kv)}`, "use env=KEY=VALUE");
    env[k] = kv.slice(i + 1);
  }
  const timeout = q("timeout");
  const t = timeout === undefined ? undefined : Number(timeout);
  if (t !== undefined && (!Number.isFinite(t) || t <= 0))
    throw new ExecError("BAD_REQUEST", `invalid timeout ${timeout}`, "timeout is in seconds, > 0");
  const cwd = q("workingDir") ?? q("cwd");
  if (cwd !== undefined && !cwd.startsWith("/"))
    throw new ExecError("BAD_REQUEST", "workingDir must be absolute", "use an absolute path");
  const stdoutQ = q("stdout");
  const stderrQ = q("stderr");
  return {
    argv,
    stdin: truthy(q("stdin")),
    stdout: stdoutQ === undefined ? true : truthy(stdoutQ),
    stderr: stderrQ === undefined ? true : truthy(stderrQ),
    tty: truthy(q("tty")),
    env,
    cwd,
    timeoutMs: t === undefined ? undefined : Math.round(t * 1000),
    cols: Number(q("cols") ?? 80) || 80,
    rows: Number(q("rows") ?? 24) || 24,
  };
}

export function v1Routes(deps: { sessions: SessionManager; roots: string[] }): Hono<ExecEnv> {
  const app = new Hono<ExecEnv>();
  execRoute(app, deps.sessions);
  filesRoute(app, deps);
  return app;
}

/** GET /v1/exec: a session streamed over a websocket (Kubernetes channel protocol). */
function execRoute(app: Hono<ExecEnv>, sessions: SessionManager): void {
  app.get("/v1/exec", (c) => {
    let req: ExecRequest;
    try {
      req = parseExecQuery(
        (k) => c.req.query(k),
        (k) => c.req.queries(k),
      );
    } catch (err) {
      return c.json((err as ExecError).toJSON(), 400);
    }
    const protocol = negotiateProtocol(c.req.header("sec-websocket-protocol"));
    if (!protocol)
      return c.json(
        {
          code: "PROTOCOL",
          message: "no supported subprotocol",
          hint: "offer v5.channel.k8s.io or v4.channel.k8s.io",
        },
        400,
      );
    const info = sessionInfo(c, "/v1/exec");
    if (!sessions.tryAcquire()) return tooMany(c, sessions.limits.maxSessions);
    let session: Session | null = null;
    let peer: WsPeer;
    const res = upgradeWs(
      c,
      {
        onOpen: (_e, ws) => {
          peer = new WsPeer(ws);
          const p = peer;
          session = sessions.start(
            info,
            {
              argv: req.argv,
              env: Object.keys(req.env).length ? req.env : undefined,
              cwd: req.cwd,
              stdin: req.stdin,
              tty: req.tty ? { cols: req.cols, rows: req.rows } : undefined,
            },
            {
              stdout: (d) => (req.stdout ? p.send(frame(STREAM.stdout, d)) : undefined),
              stderr: (d) => (req.stderr ? p.send(frame(STREAM.stderr, d)) : undefined),
            },
            req.timeoutMs,
          );
          session.done.then(async (r) => {
            const st = exitStatus(r.exitCode, req.argv);
            if (r.timedOut)
              st.message = `${r.timedOut} timeout: process group terminated (exit code ${r.exitCode})`;
            await p.send(frame(STREAM.error, JSON.stringify(st)));
            p.close(1000, "");
          });
        },
        onMessage: (e) => {
          const b = messageBytes(e.data);
          if (session && b.length > 0) forwardFrame(session, protocol, b);
        },
        onClose: () => {
          if (peer) peer.closed = true;
          session?.abort("client disconnected");
        },
      },
      protocol,
    );
    if (!res) {
      sessions.release();
      return c.json(errorStatus("websocket upgrade required", "BadRequest"), 426);
    }
    return res;
  });
}

/** A client frame of a running exec: stdin bytes, a terminal resize, or (v5) closing stdin. */
function forwardFrame(session: Session, protocol: string, b: Uint8Array): void {
  const body = b.subarray(1);
  switch (b[0]) {
    case STREAM.stdin:
      session.input(body.byteLength);
      session.proc.write(body.slice());
      break;
    case STREAM.resize: {
      const size = parseResize(body);
      if (size) session.proc.resize(size.cols, size.rows);
      break;
    }
    case STREAM.close:
      if (protocol === PROTOCOL_V5 && body[0] === STREAM.stdin) session.proc.closeStdin();
      break;
    default:
      break;
  }
}

/** PUT /v1/files: a streamed, verified, atomic upload confined to the roots. */
function filesRoute(app: Hono<ExecEnv>, deps: { sessions: SessionManager; roots: string[] }): void {
  const { sessions } = deps;
  app.put("/v1/files", async (c) => {
    const path = c.req.query("path") ?? "";
    const modeQ = c.req.query("mode");
    const mode = modeQ ? Number.parseInt(modeQ, 8) : 0o644;
    const finish = sessions.record(sessionInfo(c, "/v1/files"), ["upload", path]);
    let upload: AtomicUpload | null = null;
    try {
      if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777)
        throw new ExecError("BAD_REQUEST", `invalid mode ${modeQ}`, "octal, e.g. 0644");
      const checksum = parseChecksumHeaders((h) => c.req.header(h));
      const target = await confinePath(deps.roots, path);
      const declared = Number(c.req.header("content-length") ?? 0) - trailerBytes(checksum);
      if (declared > sessions.limits.maxUploadBytes)
        throw new ExecError(
          "UPLOAD_TOO_LARGE",
          `upload of ${declared} bytes exceeds the limit`,
          "raise limits.maxUploadBytes",
        );
      upload = await AtomicUpload.open(target, {
        maxBytes: sessions.limits.maxUploadBytes,
        mode,
        checksum,
      });
      const body = c.req.raw.body;
      if (body) {
        const reader = body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          await upload.write(value);
          if (upload.error) break;
        }
      }
      const r = await upload.commit();
      finish({ exitCode: 0, bytesIn: r.bytes });
      return c.json(r, 201);
    } catch (err) {
      await upload?.abort();
      const x =
        err instanceof ExecError ? err : new ExecError("UPLOAD_FAILED", String(err), "see agent logs");
      finish({ exitCode: null, bytesIn: upload?.size ?? 0, error: x.message });
      return c.json(x.toJSON(), uploadErrorStatus(x.code));
    }
  });
}

function uploadErrorStatus(code: string): 400 | 403 | 413 | 500 {
  return code === "PATH_OUTSIDE_ROOTS"
    ? 403
    : code === "UPLOAD_TOO_LARGE"
      ? 413
      : code === "UPLOAD_FAILED"
        ? 500
        : 400;
}
