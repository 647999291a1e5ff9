/**
 * Running processes: every command Kosmos runs to completion (iproute2, nft, openssl, the lab's
 * tools) goes through a Runner. Long-lived children with their own I/O are specialised elsewhere:
 * exec sessions (internal/exec/process.ts: a new session per child, PTYs, streamed stdio, process
 * tree kills), the kernel monitors (dataplane/watch.ts: line streams), the control plane daemons
 * (controlplane/daemon.ts) and the lab's detached agents (lab/sh.ts spawnDetached: setsid -f).
 */
import { SysError } from "./errors.ts";

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface RunOptions {
  /** Written to the command's stdin. */
  input?: string;
  /** Kept for compatibility with callers; runners never throw on a non-zero exit. */
  allowFail?: boolean;
  /** Working directory (default: this process's). */
  cwd?: string;
}

/** Executes a command (side effects enter the dataplane only through this). Never throws on exit != 0. */
export interface Runner {
  run(argv: string[], opts?: RunOptions): Promise<RunResult>;
}

/**
 * The production runner: Bun.spawn on Bun (execa costs ~20 MB of RSS per agent there), execa on Node.
 */
export function defaultRunner(): Runner {
  return typeof Bun !== "undefined" ? spawnRunner() : execaRunner();
}

/** Runs commands with Bun.spawn (Bun only). Never throws on exit != 0; a missing binary is code 127. */
export function spawnRunner(): Runner {
  return {
    async run(argv, opts = {}) {
      if (argv.length === 0) return { stdout: "", stderr: "empty argv", code: 127 };
      let proc: ReturnType<typeof Bun.spawn>;
      try {
        proc = Bun.spawn(argv, {
          ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
          stdin: opts.input === undefined ? "ignore" : new TextEncoder().encode(opts.input),
          stdout: "pipe",
          stderr: "pipe",
        });
      } catch (e) {
        return { stdout: "", stderr: (e as Error).message, code: 127 };
      }
      const [stdout, stderr, code] = await Promise.all([
        new Response(proc.stdout as ReadableStream).text(),
        new Response(proc.stderr as ReadableStream).text(),
        proc.exited,
      ]);
      return { stdout, stderr, code };
    },
  };
}

/** Runs commands with execa (loaded on first use, so Bun processes never pay for it). */
export function execaRunner(): Runner {
  return {
    async run(argv, opts = {}) {
      const [file, ...args] = argv;
      if (!file) return { stdout: "", stderr: "empty argv", code: 127 };
      const { execa } = await import("execa");
      const r = await execa(file, args, {
        reject: false,
        ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
        stdin: opts.input === undefined ? "ignore" : "pipe",
        ...(opts.input === undefined ? {} : { input: opts.input }),
        stripFinalNewline: false,
      });
      const code = typeof r.exitCode === "number" ? r.exitCode : 127;
      const stderr = typeof r.stderr === "string" ? r.stderr : "";
      return {
        stdout: typeof r.stdout === "string" ? r.stdout : "",
        stderr: code === 127 && !stderr ? String(r.message ?? "") : stderr,
        code,
      };
    },
  };
}

/** Runs every command inside network namespace `ns` (`ip netns exec ns ...`); for tests and tools. */
export function netnsRunner(ns: string, inner: Runner = defaultRunner()): Runner {
  return { run: (argv, opts) => inner.run(["ip", "netns", "exec", ns, ...argv], opts) };
}

/** Wraps a runner and records every argv (and input) it is given; for tests and dry runs. */
export function recordingRunner(
  inner: Runner,
): Runner & { calls: Array<{ argv: string[]; input?: string }> } {
  const calls: Array<{ argv: string[]; input?: string }> = [];
  return {
    calls,
    run(argv, opts) {
      calls.push(opts?.input === undefined ? { argv } : { argv, input: opts.input });
      return inner.run(argv, opts);
    },
  };
}

/**
 * Run `argv` and return its output, or throw SysError COMMAND_FAILED (exit code, the end of
 * stderr) when it exits non-zero or cannot start. For one-shot tools whose failure is an error
 * (openssl); `hint` says what to do about it.
 */
export async function runChecked(
  argv: string[],
  opts: RunOptions & { hint?: string; runner?: Runner } = {},
): Promise<RunResult> {
  const r = await (opts.runner ?? defaultRunner()).run(argv, opts);
  if (r.code === 0) return r;
  const tail = (r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ").slice(-400);
  throw new SysError("COMMAND_FAILED", `${argv.slice(0, 2).join(" ")} failed (exit ${r.code}): ${tail}`, {
    hint: opts.hint,
    argv,
    exitCode: r.code,
    stderr: r.stderr,
  });
}
