/**
 * Thin process helpers for the lab (root, iproute2): commands run through internal/sys's Runner;
 * only spawnDetached starts its own process (a daemon in a new session that outlives the CLI).
 */
import { KosmosError } from "../errors/index.ts";
import { closeSync, openSync, readFileSync } from "node:fs";
import { defaultRunner } from "../sys/index.ts";

export class LabCommandError extends KosmosError<"LAB_COMMAND_FAILED"> {
  constructor(
    readonly argv: string[],
    readonly stderr: string,
    readonly exitCode: number | undefined,
  ) {
    super(
      "LAB_COMMAND_FAILED",
      `${argv.join(" ")} failed (exit ${exitCode ?? "?"}): ${stderr.trim().split("\n").slice(-3).join(" | ")}`,
      "run `kosmosctl lab down` to clean up, then retry; the lab needs root and iproute2/nftables",
    );
  }
}

export interface ShResult {
  stdout: string;
  stderr: string;
  code: number;
}

export async function sh(
  argv: string[],
  opts: { input?: string; allowFail?: boolean } = {},
): Promise<ShResult> {
  if (argv.length === 0) throw new Error("empty argv");
  const res = await defaultRunner().run(argv, opts.input === undefined ? {} : { input: opts.input });
  if (res.code !== 0 && !opts.allowFail) throw new LabCommandError(argv, res.stderr || res.stdout, res.code);
  return res;
}

/** `ip -n ns -batch -` with the given lines (no-op when empty). */
export async function ipBatch(ns: string, lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  await sh(["ip", "-n", ns, "-batch", "-"], { input: `${lines.join("\n")}\n` });
}

export async function inNs(ns: string, argv: string[], opts: { input?: string; allowFail?: boolean } = {}) {
  return sh(["ip", "netns", "exec", ns, ...argv], opts);
}

export async function listNetns(): Promise<string[]> {
  const r = await sh(["ip", "-j", "netns", "list"], { allowFail: true });
  if (r.code !== 0 || !r.stdout.trim()) return [];
  const list = JSON.parse(r.stdout) as Array<{ name: string }>;
  return list.map((x) => x.name);
}

/** PIDs of processes whose network namespace is `ns`. */
export async function netnsPids(ns: string): Promise<number[]> {
  const r = await sh(["ip", "netns", "pids", ns], { allowFail: true });
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 1);
}

/**
 * Start a daemon in namespace `ns` that outlives this process (new session, stdio to `logFile`
 * or /dev/null, this process's environment plus `env`). Returns once `setsid -f` has forked it.
 */
export async function spawnDetached(
  ns: string,
  argv: string[],
  logFile?: string,
  env?: Record<string, string>,
): Promise<void> {
  // Append: a restarted agent must not write over its predecessor's log from offset 0.
  const fd = logFile ? openSync(logFile, "a") : undefined;
  try {
    const proc = Bun.spawn(["ip", "netns", "exec", ns, "setsid", "-f", ...argv], {
      stdin: "ignore",
      stdout: fd ?? "ignore",
      stderr: fd ?? "ignore",
      ...(env ? { env: { ...process.env, ...env } } : {}),
    });
    const code = await proc.exited;
    if (code !== 0) throw new LabCommandError(argv, `could not start in ${ns}`, code);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Whether `pid` is a live process (a zombie, dead but not yet reaped, is not). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2).charAt(0);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}
