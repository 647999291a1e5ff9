/**
 * Every process an exec session started. The child runs in a session of its own (setsid), so its
 * session id is its pid; signalling only its process group misses the jobs a shell with job control
 * (an interactive shell on a PTY, `bash -c 'set -m; …'`) puts in groups of their own. The members of
 * the session, plus the descendants of those members (a child that called setsid itself while its
 * parent still runs), are read from /proc.
 *
 * Not covered: a process that left the session with setsid(2) and whose parent already exited (it
 * was re-parented to init): only a cgroup per session would still find it.
 */
import { readdirSync, readFileSync } from "node:fs";

interface ProcStat {
  pid: number;
  ppid: number;
  sid: number;
}

/** Zombies (Z) and dead tasks (X) cannot be signalled into anything: they are not counted. */
const GONE = new Set(["Z", "X"]);

/** `/proc/<pid>/stat` fields after the command name: state ppid pgrp session …; null for zombies. */
export function parseStat(pid: number, stat: string): ProcStat | null {
  const close = stat.lastIndexOf(")");
  if (close < 0) return null;
  const f = stat.slice(close + 2).split(" ");
  if (GONE.has(f[0] ?? "")) return null;
  const ppid = Number(f[1]);
  const sid = Number(f[3]);
  return Number.isInteger(ppid) && Number.isInteger(sid) ? { pid, ppid, sid } : null;
}

/** Whether `pid` exists and is not a zombie (a dead process stays one until it is reaped). */
export function isRunning(pid: number): boolean {
  try {
    return parseStat(pid, readFileSync(`/proc/${pid}/stat`, "utf8")) !== null;
  } catch {
    return false;
  }
}

/**
 * Pids are handed out in increasing order until they wrap at pid_max, so every process a session
 * started (and their descendants) has a pid above the session id — unless the counter wrapped since.
 * `ns_last_pid` below `sid` proves a wrap; sessions longer than this are scanned whole anyway, since
 * a full turn of the counter (pid_max, 4 million by default) could bring it back above `sid`.
 */
const FULL_SCAN_AFTER_MS = 600_000;

function lowestPossiblePid(sid: number, startedAt?: number): number {
  if (startedAt === undefined || Date.now() - startedAt > FULL_SCAN_AFTER_MS) return 1;
  try {
    const last = Number(readFileSync("/proc/sys/kernel/ns_last_pid", "utf8"));
    return Number.isInteger(last) && last >= sid ? sid : 1;
  } catch {
    return 1;
  }
}

function readProcs(procDir: string, minPid = 1): ProcStat[] {
  const out: ProcStat[] = [];
  let names: string[];
  try {
    names = readdirSync(procDir);
  } catch {
    return out;
  }
  for (const name of names) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid < minPid) continue;
    try {
      const s = parseStat(pid, readFileSync(`${procDir}/${name}/stat`, "utf8"));
      if (s) out.push(s);
    } catch {
      // exited while we read
    }
  }
  return out;
}

/**
 * Pids of the session `sid` and of their descendants (never this process). `procs` is for tests;
 * by default /proc is read.
 */
export function sessionProcesses(sid: number, procs: ProcStat[] = readProcs("/proc")): number[] {
  const found = new Set<number>();
  const children = new Map<number, number[]>();
  for (const p of procs) {
    if (p.sid === sid) found.add(p.pid);
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  const queue = [...found];
  while (queue.length) {
    for (const c of children.get(queue.pop() as number) ?? []) {
      if (!found.has(c)) {
        found.add(c);
        queue.push(c);
      }
    }
  }
  found.delete(process.pid);
  return [...found];
}

function kill(pid: number, signal: NodeJS.Signals | number): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false; // already gone
  }
}

/** Rounds of scan-and-SIGKILL (a process may fork between a scan and its kill). */
const KILL_ROUNDS = 5;

/**
 * Signal the process group `sid` and every process of the session (see sessionProcesses). With
 * SIGKILL the scan is repeated until it finds nothing to kill, so a fork racing the first scan is
 * caught by the next. Returns how many processes were signalled. `startedAt` (when the session's
 * leader was spawned) lets the scan skip the pids older than the session (lowestPossiblePid): on a
 * node with 1,000 processes an exec's end then reads a handful of /proc entries, not all of them.
 */
export function signalSession(sid: number, signal: NodeJS.Signals | number, startedAt?: number): number {
  let signalled = kill(-sid, signal) ? 1 : 0;
  const rounds = signal === "SIGKILL" || signal === 9 ? KILL_ROUNDS : 1;
  for (let i = 0; i < rounds; i++) {
    const pids = sessionProcesses(sid, readProcs("/proc", lowestPossiblePid(sid, startedAt)));
    let n = 0;
    for (const pid of pids) if (kill(pid, signal)) n++;
    signalled += n;
    if (n === 0) break;
  }
  return signalled;
}
