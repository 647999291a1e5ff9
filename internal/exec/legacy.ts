/**
 * Upstream Kosmos node-agent compatible endpoints: /cmd /sh /py /upload /tty /check.
 * Same query parameters, one text frame per output line, close 1000 with the decimal exit code as
 * reason; upload errors close 1011 (server error) or 1007 (bad parameters). Fixed defects: stdout
 * and stderr are read concurrently, the process group dies with the connection, timeouts apply,
 * uploads are confined and atomic.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Handler, Hono } from "hono";
import type { WSContext } from "hono/ws";
import { type ExecEnv, sessionInfo, tooMany } from "./env.ts";
import { ExecError } from "./errors.ts";
import { LineSplitter } from "./lines.ts";
import type { OutputSink } from "./process.ts";
import type { Session, SessionManager } from "./session.ts";
import { AtomicUpload, confinePath } from "./upload.ts";
import { messageBytes, upgradeWs, WsPeer } from "./ws.ts";

export const CLOSE = { normal: 1000, invalidPayload: 1007, internal: 1011 } as const;

/**
 * The paths an upstream endpoint answers on: upstream's server matches by prefix, and its clients
 * dial `/cmd/?…`, `/upload/?…`, `/tty/?…`, `/check/?…` (and the operator `cmd/`, `upload/`, `check/`)
 * with a trailing slash. Both spellings are accepted; other paths under the prefix are not.
 */
const compatPaths = (path: string): string[] => [path, `${path}/`];

const dec = new TextDecoder();
const isEof = (b: Uint8Array) => b.length === 3 && b[0] === 69 && b[1] === 79 && b[2] === 70;

/** Output sink writing one text frame per line, per stream. */
function lineSink(peer: WsPeer): OutputSink & { flush(): Promise<void> } {
  const out = new LineSplitter();
  const err = new LineSplitter();
  const emit = async (lines: Uint8Array[]) => {
    for (const l of lines) await peer.send(dec.decode(l));
  };
  return {
    stdout: (c) => emit(out.push(c)),
    stderr: (c) => emit(err.push(c)),
    flush: async () => {
      await emit(out.flush());
      await emit(err.flush());
    },
  };
}

export interface LegacyDeps {
  sessions: SessionManager;
  roots: string[];
}

export function legacyRoutes(deps: LegacyDeps): Hono<ExecEnv> {
  const app = new Hono<ExecEnv>();
  app.on("GET", compatPaths("/cmd"), cmdHandler(deps));
  app.on("GET", compatPaths("/sh"), scriptHandler(deps, "/sh", ["sh"]));
  app.on("GET", compatPaths("/py"), scriptHandler(deps, "/py", ["python3", "-u"]));
  app.on("GET", compatPaths("/tty"), ttyHandler(deps));
  app.on("GET", compatPaths("/check"), checkHandler(deps));
  app.on("GET", compatPaths("/upload"), uploadHandler(deps));
  return app;
}

/** Run argv, streaming lines; close with the exit code. */
function runLines(
  sessions: SessionManager,
  peer: WsPeer,
  info: ReturnType<typeof sessionInfo>,
  argv: string[],
  cleanup?: () => Promise<void>,
): Session {
  const sink = lineSink(peer);
  const s = sessions.start(info, { argv }, sink);
  s.done.then(async (r) => {
    await sink.flush();
    await cleanup?.();
    peer.close(CLOSE.normal, String(r.exitCode));
  });
  return s;
}

/** GET /cmd?command=…&args=…: run a command, one text frame per output line. */
function cmdHandler(deps: LegacyDeps): Handler<ExecEnv> {
  const { sessions } = deps;
  return (c) => {
    const command = c.req.query("command");
    const args = c.req.queries("args") ?? [];
    const info = sessionInfo(c, "/cmd");
    if (!sessions.tryAcquire()) return tooMany(c, sessions.limits.maxSessions);
    let session: Session | null = null;
    let peer: WsPeer;
    const res = upgradeWs(c, {
      onOpen: (_e, ws) => {
        peer = new WsPeer(ws);
        if (!command) {
          sessions.release();
          void peer
            .send("No command specified")
            .then(() => peer.close(CLOSE.invalidPayload, "No command specified"));
          return;
        }
        session = runLines(sessions, peer, info, [command, ...args]);
      },
      onClose: () => {
        if (peer) peer.closed = true;
        session?.abort("client disconnected");
      },
    });
    if (!res) sessions.release();
    return res ?? c.text("websocket upgrade required", 426);
  };
}

/** GET /sh, /py?args=…: receive a script (binary frames, then "EOF"), run it with `interpreter`. */
function scriptHandler(deps: LegacyDeps, path: "/sh" | "/py", interpreter: string[]): Handler<ExecEnv> {
  const { sessions } = deps;
  return (c) => {
    const args = c.req.queries("args") ?? [];
    const info = sessionInfo(c, path);
    if (!sessions.tryAcquire()) return tooMany(c, sessions.limits.maxSessions);
    const chunks: Uint8Array[] = [];
    let size = 0;
    let session: Session | null = null;
    let peer: WsPeer;
    let started = false;
    let released = false;
    const giveBack = () => {
      if (!released && !session) {
        released = true;
        sessions.release();
      }
    };
    const res = upgradeWs(c, {
      onOpen: (_e, ws) => {
        peer = new WsPeer(ws);
      },
      onMessage: (e, ws) => {
        peer ??= new WsPeer(ws);
        if (started) {
          session?.input(0);
          return;
        }
        const b = messageBytes(e.data);
        if (!isEof(b)) {
          size += b.byteLength;
          if (size > sessions.limits.maxUploadBytes) {
            started = true;
            giveBack();
            peer.close(CLOSE.invalidPayload, "script too large");
            return;
          }
          chunks.push(b.slice());
          return;
        }
        started = true;
        void (async () => {
          const dir = await mkdtemp(join(tmpdir(), "kosmos-script-"));
          const file = join(dir, "script");
          await writeFile(file, Buffer.concat(chunks), { mode: 0o700 });
          chunks.length = 0;
          if (peer.closed) {
            giveBack();
            await rm(dir, { recursive: true, force: true });
            return;
          }
          session = runLines(sessions, peer, info, [...interpreter, file, ...args], () =>
            rm(dir, { recursive: true, force: true }),
          );
          session.input(size);
        })();
      },
      onClose: () => {
        if (peer) peer.closed = true;
        if (session) session.abort("client disconnected");
        else if (!started || !session) giveBack();
      },
    });
    if (!res) giveBack();
    return res ?? c.text("websocket upgrade required", 426);
  };
}

/** GET /tty?command=…: an interactive command on a PTY (raw frames both ways). */
function ttyHandler(deps: LegacyDeps): Handler<ExecEnv> {
  const { sessions } = deps;
  return (c) => {
    const command = c.req.query("command");
    const info = sessionInfo(c, "/tty");
    if (!command) return c.text("command is required", 400);
    if (!sessions.tryAcquire()) return tooMany(c, sessions.limits.maxSessions);
    let session: Session | null = null;
    let peer: WsPeer;
    const res = upgradeWs(c, {
      onOpen: (_e, ws) => {
        peer = new WsPeer(ws);
        const p = peer;
        session = sessions.start(
          info,
          { argv: [command], tty: { cols: 80, rows: 24 } },
          {
            stdout: (d) => p.send(d),
            stderr: (d) => p.send(d),
          },
        );
        session.done.then((r) => p.close(CLOSE.normal, String(r.exitCode)));
      },
      onMessage: (e) => {
        const b = messageBytes(e.data);
        session?.input(b.byteLength);
        session?.proc.write(b);
      },
      onClose: () => {
        if (peer) peer.closed = true;
        session?.abort("client disconnected");
      },
    });
    if (!res) sessions.release();
    return res ?? c.text("websocket upgrade required", 426);
  };
}

/** GET /check?port=…: is the TCP port free on this node (close reason 0/1)? */
function checkHandler(deps: LegacyDeps): Handler<ExecEnv> {
  const { sessions } = deps;
  return (c) => {
    const port = Number(c.req.query("port"));
    const finish = sessions.record(sessionInfo(c, "/check"), ["check", String(c.req.query("port"))]);
    const res = upgradeWs(c, {
      onOpen: (_e, ws) => {
        const peer = new WsPeer(ws);
        if (!Number.isInteger(port) || port < 1 || port > 65535) {
          finish({ exitCode: null, error: "invalid port" });
          peer.close(CLOSE.invalidPayload, "port is required");
          return;
        }
        void portFree(port).then((free) => {
          finish({ exitCode: free ? 0 : 1 });
          peer.close(CLOSE.normal, free ? "0" : "1");
        });
      },
    });
    return res ?? c.text("websocket upgrade required", 426);
  };
}

/** GET /upload?file_name=…&file_path=…: binary frames then "EOF", written atomically inside the roots. */
function uploadHandler(deps: LegacyDeps): Handler<ExecEnv> {
  const { sessions } = deps;
  return (c) => {
    const fileName = c.req.query("file_name") ?? "";
    const filePath = c.req.query("file_path") ?? "";
    const finish = sessions.record(sessionInfo(c, "/upload"), ["upload", join(filePath, fileName)]);
    let upload: Promise<AtomicUpload | ExecError>;
    let chain: Promise<unknown> = Promise.resolve();
    let done = false;
    let peer: WsPeer;
    const fail = (ws: WSContext, code: number, err: ExecError) => {
      done = true;
      finish({ exitCode: null, error: err.message });
      (peer ?? new WsPeer(ws)).close(code, err.message);
    };
    const res = upgradeWs(c, {
      onOpen: (_e, ws) => {
        peer = new WsPeer(ws);
        if (!fileName || !filePath) {
          done = true;
          finish({ exitCode: null, error: "invalid parameters" });
          peer.close(CLOSE.invalidPayload, "Invalid file_name or file_path");
          return;
        }
        upload = confinePath(deps.roots, filePath, fileName)
          .then((target) =>
            AtomicUpload.open(target, {
              maxBytes: sessions.limits.maxUploadBytes,
              checksum: { algorithm: "none" },
            }),
          )
          .catch((err: unknown) =>
            err instanceof ExecError ? err : new ExecError("UPLOAD_FAILED", String(err), ""),
          );
        void upload.then((u) => {
          if (u instanceof ExecError)
            fail(ws, u.code === "UPLOAD_FAILED" ? CLOSE.internal : CLOSE.invalidPayload, u);
        });
      },
      onMessage: (e, ws) => {
        if (done || !upload) return;
        const b = messageBytes(e.data);
        if (isEof(b)) {
          done = true;
          chain = chain.then(async () => {
            const u = await upload;
            if (u instanceof ExecError) return;
            try {
              const r = await u.commit();
              finish({ exitCode: 0, bytesIn: r.bytes });
              peer.close(CLOSE.normal, "0");
            } catch (err) {
              const x = err instanceof ExecError ? err : new ExecError("UPLOAD_FAILED", String(err), "");
              finish({ exitCode: null, bytesIn: u.size, error: x.message });
              peer.close(x.code === "UPLOAD_TOO_LARGE" ? 1009 : CLOSE.internal, x.message);
            }
          });
          return;
        }
        const copy = b.slice();
        chain = chain.then(async () => {
          const u = await upload;
          if (u instanceof ExecError) return;
          await u.write(copy);
          if (u.size > sessions.limits.maxUploadBytes && !done) {
            await u.abort();
            fail(ws, 1009, new ExecError("UPLOAD_TOO_LARGE", "upload too large", ""));
          }
        });
      },
      onClose: () => {
        if (peer) peer.closed = true;
        if (!done) {
          done = true;
          finish({ exitCode: null, error: "client disconnected before EOF" });
          chain = chain.then(async () => {
            const u = await upload;
            if (!(u instanceof ExecError)) await u?.abort();
          });
        }
      },
    });
    return res ?? c.text("websocket upgrade required", 426);
  };
}

/** Can the TCP port be bound on all interfaces (what upstream checks with net.Listen(":port"))? */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}
