/**
 * A long-running child process (etcd, an API server): its own process group, stderr and stdout to a
 * log file, killed with its parent (`setpriv --pdeathsig KILL`, so a test runner that dies leaves no
 * control plane behind), stopped with SIGTERM then SIGKILL, and `stop()` returns only once it exited.
 */
import { closeSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";

const DIE_WITH_PARENT: string[] = Bun.which("setpriv") ? ["setpriv", "--pdeathsig", "KILL", "--"] : [];

export class Daemon {
  private readonly proc: ReturnType<typeof Bun.spawn>;
  readonly exited: Promise<number>;
  private exitCode: number | undefined;

  constructor(
    readonly name: string,
    argv: string[],
    readonly logFile: string,
    env: Record<string, string> = {},
  ) {
    const fd = openSync(logFile, "a");
    try {
      this.proc = Bun.spawn([...DIE_WITH_PARENT, ...argv], {
        stdin: "ignore",
        stdout: fd,
        stderr: fd,
        detached: true,
        env: { ...process.env, ...env },
      });
    } finally {
      closeSync(fd);
    }
    this.exited = this.proc.exited.then((c) => {
      this.exitCode = c;
      return c;
    });
  }

  get pid(): number {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** The last lines of its log (for error messages). */
  tail(lines = 15): string {
    try {
      return readFileSync(this.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  }

  private signal(sig: NodeJS.Signals): void {
    try {
      process.kill(-this.proc.pid, sig);
    } catch {
      try {
        this.proc.kill(sig);
      } catch {
        /* already gone */
      }
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.signal("SIGTERM");
    this.signal("SIGCONT"); // a frozen process acts on SIGTERM only once it runs again
    const t = setTimeout(() => this.signal("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(t);
  }

  /**
   * Fault injection: stop the process (SIGSTOP) without closing anything. The kernel still accepts
   * connections on its sockets and nothing answers: a hung server, not a dead one. `thaw()` resumes.
   */
  freeze(): void {
    if (this.running) this.signal("SIGSTOP");
  }

  thaw(): void {
    if (this.running) this.signal("SIGCONT");
  }

  /** Kill at once (fault injection: a crash, not a shutdown). */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.signal("SIGKILL");
    await this.exited;
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Poll `check` until it returns true, the daemon dies, or the deadline passes. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  o: { timeoutMs: number; daemon?: Daemon; intervalMs?: number },
): Promise<void> {
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    if (o.daemon && !o.daemon.running)
      throw new Error(`${o.daemon.name} exited before ${what}:\n${o.daemon.tail()}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${o.timeoutMs} ms waiting for ${what}${o.daemon ? `:\n${o.daemon.tail()}` : ""}`,
      );
    await Bun.sleep(o.intervalMs ?? 100);
  }
}
