/**
 * One container process of the lab kubelet: started in the pod's network namespace and in a private
 * mount and UTS namespace of its own (`unshare -m -u`, mounts from mounts.ts), as the leader of a new
 * process group (so a stop reaches its children), stdout/stderr written to the container's log file
 * in the CRI format the kubelet uses (`<RFC3339Nano> stdout|stderr F <line>`).
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { constants } from "node:os";
import { dirname } from "node:path";
import { type MountScriptInput, mountScript } from "./mounts.ts";

export interface ContainerLaunch {
  /** Network namespace (the pod's, or the node's for hostNetwork). */
  ns: string;
  argv: string[];
  env: Record<string, string>;
  mounts: MountScriptInput;
  logFile: string;
}

export interface RunningContainer {
  pid: number;
  startedAt: string;
  /** Resolves with the exit code (128+signal when killed) once the process and its log pipes end. */
  exited: Promise<{ exitCode: number; signal?: number; finishedAt: string }>;
}

/** Nanosecond-style RFC 3339 timestamp (the CRI log format's first field). */
export function criTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000000Z");
}

/** Append every complete line of `stream` to `file` in CRI format. */
async function pump(
  stream: ReadableStream<Uint8Array>,
  tag: "stdout" | "stderr",
  file: string,
): Promise<void> {
  const dec = new TextDecoder();
  let buf = "";
  const flush = (final: boolean) => {
    const parts = buf.split("\n");
    buf = final ? "" : parts.pop()!;
    const lines = final ? parts.filter((l, i) => i < parts.length - 1 || l !== "") : parts;
    if (lines.length === 0) return;
    appendFileSync(file, lines.map((l) => `${criTime()} ${tag} F ${l}\n`).join(""));
  };
  for await (const chunk of stream) {
    buf += dec.decode(chunk, { stream: true });
    flush(false);
  }
  flush(true);
}

export function startContainer(c: ContainerLaunch): RunningContainer {
  mkdirSync(dirname(c.logFile), { recursive: true });
  appendFileSync(c.logFile, "");
  const script = mountScript(c.mounts);
  // setsid: a new session and process group with the container's pid, so a stop signals them all.
  const argv = ["setsid", "ip", "netns", "exec", c.ns, "unshare", "-m", "-u", "--propagation", "private"];
  const proc = Bun.spawn([...argv, "bash", "-c", script, "bash", ...c.argv], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: c.env,
  });
  const startedAt = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const exited = (async () => {
    const pumps = Promise.all([
      pump(proc.stdout, "stdout", c.logFile),
      pump(proc.stderr, "stderr", c.logFile),
    ]);
    const code = await proc.exited;
    // A child the container left behind may hold the pipes open: the exit does not wait for it.
    await Promise.race([pumps, Bun.sleep(300)]);
    const signal = proc.signalCode ? signalNumber(String(proc.signalCode)) : undefined;
    return {
      exitCode: signal !== undefined ? 128 + signal : code,
      ...(signal !== undefined ? { signal } : {}),
      finishedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    };
  })();
  return { pid: proc.pid, startedAt, exited };
}

function signalNumber(name: string): number | undefined {
  const n = constants.signals[name as NodeJS.Signals];
  return typeof n === "number" ? n : undefined;
}

/** Signal the container's process group (the container and what it started). */
export function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  }
}
