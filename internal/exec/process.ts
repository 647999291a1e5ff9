/**
 * Child processes for exec sessions. Each child runs in its own session (Bun.spawn `detached` =
 * setsid), and the whole session is signalled: its process group, and the jobs a shell put in
 * groups of their own (proctree.ts).
 * PTY sessions use Bun's built-in `terminal` option (openpty; the child gets it as controlling tty).
 * stdout and stderr are read concurrently; a sink may return a promise to apply backpressure.
 * Why not internal/sys's Runner: it runs a command to completion and buffers its output; a session
 * needs its own process group, a PTY, streamed stdio with backpressure and signals while it runs.
 */
import type { Subprocess } from "bun";
import { signalSession } from "./proctree.ts";

export interface ProcessSpec {
  argv: string[];
  /** Added to (and overriding) the agent's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Run under a PTY of this size (stderr is merged into stdout, as kubectl does). */
  tty?: { cols: number; rows: number };
  /** Whether the caller will write stdin (otherwise stdin is /dev/null). */
  stdin?: boolean;
}

export interface OutputSink {
  stdout(chunk: Uint8Array): void | Promise<void>;
  stderr(chunk: Uint8Array): void | Promise<void>;
}

export interface ExitResult {
  /** Exit status; 128+signal number when killed by a signal (shell convention). */
  exitCode: number;
  signal: string | null;
}

export interface RunningProcess {
  readonly pid: number;
  write(data: Uint8Array | string): void;
  closeStdin(): void;
  resize(cols: number, rows: number): void;
  /**
   * Signal every process of the child's session: its process group, other groups of the session
   * (shell jobs) and their descendants (ignored when already gone).
   */
  killSession(signal?: NodeJS.Signals | number): void;
  /** Resolves after the process exited and its output streams were drained. */
  readonly result: Promise<ExitResult>;
}

export interface StartOptions {
  /** After the main process exits, how long to wait for stragglers holding stdout open before killing the group. */
  drainGraceMs?: number;
}

const enc = new TextEncoder();

/** A process that never started (command not found / not executable): behaves like sh would. */
function failedProcess(argv0: string, err: NodeJS.ErrnoException, sink: OutputSink): RunningProcess {
  const exitCode = err.code === "ENOENT" ? 127 : 126;
  const msg = err.code === "ENOENT" ? `${argv0}: command not found\n` : `${argv0}: ${err.message}\n`;
  const result = (async () => {
    await sink.stderr(enc.encode(msg));
    return { exitCode, signal: null };
  })();
  return { pid: -1, write() {}, closeStdin() {}, resize() {}, killSession() {}, result };
}

async function pump(
  stream: ReadableStream<Uint8Array>,
  out: (c: Uint8Array) => void | Promise<void>,
): Promise<void> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      if (value && value.byteLength > 0) await out(value);
    }
  } catch {
    // stream torn down (process group killed): nothing more to read
  } finally {
    reader.releaseLock();
  }
}

/**
 * The environment of a command run for a client: the agent's own, minus JavaScriptCore tuning
 * (`BUN_JSC_*`, e.g. the interpreter-only setting the agent is launched with, internal/agent/runtime.ts,
 * which would make a `bun` run through the API several times slower), plus the session's `env`.
 */
export function commandEnv(
  own: Record<string, string | undefined>,
  extra: Record<string, string> | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(own)) if (v !== undefined && !k.startsWith("BUN_JSC_")) out[k] = v;
  // Bun hands a child its stdin as a socketpair, not a pipe. Debian's bash (built with
  // SSH_SOURCE_BASHRC) takes a socket on stdin for an rsh/ssh session and, when it is a top-level
  // shell (SHLVL < 2 after its own increment), sources /etc/bash.bashrc and ~/.bashrc even for
  // `bash -c CMD`: every exec with stdin ran the node user's rc files (slow, or hanging where one
  // waits on stdin). kubelet's exec gives pipes, so bash reads none there. SHLVL=1 makes bash a
  // nested shell (it reports 2), which skips them; a caller's own SHLVL wins. (The lab's agents
  // inherit SHLVL=0 from the shell that started them: 0 counts as none.)
  if (!(Number(out.SHLVL) >= 1)) out.SHLVL = "1";
  return { ...out, ...extra };
}

export function startProcess(spec: ProcessSpec, sink: OutputSink, opts: StartOptions = {}): RunningProcess {
  const argv0 = spec.argv[0] ?? "";
  const env = commandEnv(process.env, spec.env);
  const graceMs = opts.drainGraceMs ?? 2000;
  let proc: Subprocess;
  let ptyDone: Promise<void> | undefined;
  try {
    if (spec.tty) {
      let endPty: () => void = () => {};
      ptyDone = new Promise<void>((r) => {
        endPty = r;
      });
      let chain: Promise<void> = Promise.resolve();
      proc = Bun.spawn(spec.argv, {
        cwd: spec.cwd,
        env,
        detached: true,
        terminal: {
          cols: spec.tty.cols,
          rows: spec.tty.rows,
          data: (_t, data) => {
            const copy = new Uint8Array(data);
            chain = chain.then(() => sink.stdout(copy));
          },
          exit: () => {
            chain.then(endPty, endPty);
          },
        },
      });
    } else {
      proc = Bun.spawn(spec.argv, {
        cwd: spec.cwd,
        env,
        detached: true,
        stdin: spec.stdin ? "pipe" : "ignore",
        stdout: "pipe",
        stderr: "pipe",
      });
    }
  } catch (err) {
    return failedProcess(argv0, err as NodeJS.ErrnoException, sink);
  }
  const pid = proc.pid;
  const startedAt = Date.now();
  // setsid made the child a session leader: the session id is its pid
  const killSession = (signal: NodeJS.Signals | number = "SIGTERM") => {
    signalSession(pid, signal, startedAt);
  };
  const streams: Promise<void>[] = [];
  if (ptyDone) streams.push(ptyDone);
  else {
    streams.push(pump(proc.stdout as ReadableStream<Uint8Array>, (c) => sink.stdout(c)));
    streams.push(pump(proc.stderr as ReadableStream<Uint8Array>, (c) => sink.stderr(c)));
  }
  const result = (async (): Promise<ExitResult> => {
    const code = await proc.exited;
    const drained = Promise.all(streams).then(() => true);
    const timer = new Promise<boolean>((r) => setTimeout(() => r(false), graceMs));
    if (!(await Promise.race([drained, timer]))) {
      // background children still hold the output open: end them with the session
      killSession("SIGKILL");
      if (spec.tty) proc.terminal?.close();
      await Promise.race([drained, new Promise((r) => setTimeout(r, 500))]);
    }
    if (spec.tty) proc.terminal?.close();
    const signal = proc.signalCode == null ? null : String(proc.signalCode);
    return { exitCode: code, signal };
  })();
  const stdinSink = !spec.tty && spec.stdin ? (proc.stdin as import("bun").FileSink) : undefined;
  let stdinClosed = false;
  return {
    pid,
    result,
    killSession,
    write(data) {
      if (stdinClosed) return;
      try {
        if (spec.tty) proc.terminal?.write(data);
        else if (stdinSink) {
          stdinSink.write(data);
          stdinSink.flush();
        }
      } catch {
        // child closed its stdin
      }
    },
    closeStdin() {
      if (stdinClosed) return;
      stdinClosed = true;
      try {
        if (spec.tty) proc.terminal?.write("\x04");
        else stdinSink?.end();
      } catch {
        // already closed
      }
    },
    resize(cols, rows) {
      if (spec.tty && cols > 0 && rows > 0) proc.terminal?.resize(cols, rows);
    },
  };
}
