/**
 * Shared network-namespace helper for root tests (test/dataplane, test/e2e).
 *
 * Naming: every object a test makes is called `kt<pid base36>-<suffix>` (≤ 15 chars, so the same
 * scheme works for link names). The pid of the creating test process is encoded in the name, so
 * `sweepLeftovers()` can remove namespaces (and root-namespace links) left behind by test processes
 * that died, without touching those of tests still running in parallel.
 *
 * Typical use:
 *   const scope = new NetnsScope();
 *   afterEach(() => scope.cleanup());
 *   const a = await scope.netns("a"); const b = await scope.netns("b");
 *   await scope.veth(a, b, { aAddr: "192.168.50.1/24", bAddr: "192.168.50.2/24" });
 *   await a.exec(["ping", "-c1", "-W1", "192.168.50.2"]);
 */

export const NAME_PREFIX = "kt";
const MAX_NAME = 15;

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ExecOptions {
  input?: string;
  /** Do not throw when the command exits non-zero. */
  allowFail?: boolean;
}

export class NetnsCommandError extends Error {
  readonly code = "NETNS_COMMAND_FAILED";
  constructor(
    readonly argv: string[],
    readonly result: ExecResult,
    readonly hint = "the command failed inside the test namespace; see stderr",
  ) {
    super(`${argv.join(" ")} exited ${result.code}: ${result.stderr.trim()}`);
  }
}

/** Run a command in the current (root) namespace. */
export async function execHost(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const proc = Bun.spawn(argv, {
    stdin: opts.input !== undefined ? new TextEncoder().encode(opts.input) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  const result = { stdout, stderr, code };
  if (code !== 0 && !opts.allowFail) throw new NetnsCommandError(argv, result);
  return result;
}

let counter = 0;
const pidTag = process.pid.toString(36);

/** A unique name `kt<pid36>-<tag><n>`, at most 15 characters (safe for link names). */
export function uniqueName(tag = ""): string {
  const n = (counter++).toString(36);
  const head = `${NAME_PREFIX}${pidTag}-`;
  const room = MAX_NAME - head.length - n.length;
  return `${head}${tag.replace(/[^a-zA-Z0-9]/g, "").slice(0, Math.max(0, room))}${n}`;
}

/** The pid encoded in a name made by `uniqueName`, or undefined for foreign names. */
export function ownerPid(name: string): number | undefined {
  const m = /^kt([0-9a-z]+)-/.exec(name);
  if (!m?.[1]) return undefined;
  const pid = Number.parseInt(m[1], 36);
  return Number.isFinite(pid) && pid > 0 ? pid : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === "EPERM";
  }
}

export function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/** True when this process may create network namespaces (root + `ip netns` works). */
export async function canUseNetns(): Promise<boolean> {
  if (!isRoot()) return false;
  const r = await execHost(["ip", "netns", "list"], { allowFail: true }).catch(() => undefined);
  return r?.code === 0;
}

export class Netns {
  constructor(readonly name: string) {}

  /** Argv prefix to run something inside this namespace. */
  prefix(): string[] {
    return ["ip", "netns", "exec", this.name];
  }

  exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return execHost([...this.prefix(), ...argv], opts);
  }

  /** Run a shell script inside the namespace (`sh -ec`). */
  sh(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return execHost([...this.prefix(), "sh", "-ec", script], opts);
  }

  /**
   * Ping until one reply arrives (up to `tries` probes, 1 s timeout each). Returns true on success.
   * Use for reachability checks: the first packet may be lost to neighbour discovery.
   */
  async ping(addr: string, tries = 5): Promise<boolean> {
    for (let i = 0; i < tries; i++) {
      const r = await this.exec(["ping", "-n", "-c1", "-W1", addr], { allowFail: true });
      if (r.code === 0) return true;
    }
    return false;
  }

  /** A dataplane-compatible runner: { run(argv, opts) } executing inside this namespace. */
  runner(): { run(argv: string[], opts?: ExecOptions): Promise<ExecResult> } {
    return { run: (argv, opts) => this.exec(argv, { allowFail: true, ...opts }) };
  }
}

async function listNetns(): Promise<string[]> {
  const r = await execHost(["ip", "-j", "netns", "list"], { allowFail: true });
  if (r.code !== 0 || !r.stdout.trim()) return [];
  return (JSON.parse(r.stdout) as Array<{ name: string }>).map((x) => x.name);
}

/** Kill processes living in a namespace (tests' own daemons such as iperf3/socat). */
async function killNetnsPids(name: string): Promise<void> {
  const r = await execHost(["ip", "netns", "pids", name], { allowFail: true });
  for (const line of r.stdout.split("\n")) {
    const pid = Number(line.trim());
    if (pid > 0 && pid !== process.pid) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }
  }
}

export async function deleteNetns(name: string): Promise<void> {
  await killNetnsPids(name);
  await execHost(["ip", "netns", "del", name], { allowFail: true });
}

/**
 * Remove namespaces and root-namespace links named by `uniqueName` whose creating process is dead
 * (or, with `includeSelf`, also this process's own). Returns the removed names.
 */
export async function sweepLeftovers(opts: { includeSelf?: boolean } = {}): Promise<string[]> {
  const removed: string[] = [];
  const stale = (name: string): boolean => {
    const pid = ownerPid(name);
    if (pid === undefined) return false;
    if (pid === process.pid) return opts.includeSelf === true;
    return !alive(pid);
  };
  for (const ns of await listNetns()) {
    if (stale(ns)) {
      await deleteNetns(ns);
      removed.push(ns);
    }
  }
  const links = await execHost(["ip", "-j", "link", "show"], { allowFail: true });
  if (links.code === 0 && links.stdout.trim()) {
    for (const l of JSON.parse(links.stdout) as Array<{ ifname: string }>) {
      if (stale(l.ifname)) {
        await execHost(["ip", "link", "del", l.ifname], { allowFail: true });
        removed.push(l.ifname);
      }
    }
  }
  return removed;
}

export interface VethOptions {
  aName?: string;
  bName?: string;
  aAddr?: string | string[];
  bAddr?: string | string[];
  mtu?: number;
}

/**
 * Tracks everything a test creates and removes it in `cleanup()` (call from afterEach/afterAll;
 * it never throws, so it is safe after a failed test).
 */
export class NetnsScope {
  private readonly namespaces: Netns[] = [];
  private readonly procs: Array<{ kill(sig?: number): void; exited: Promise<number> }> = [];

  /** Create a namespace with loopback up and IPv4/IPv6 forwarding enabled. */
  async netns(tag = "ns"): Promise<Netns> {
    const ns = new Netns(uniqueName(tag));
    await execHost(["ip", "netns", "add", ns.name]);
    this.namespaces.push(ns);
    await ns.sh(
      "ip link set lo up; sysctl -qw net.ipv4.ip_forward=1; sysctl -qw net.ipv6.conf.all.forwarding=1 || true; " +
        "sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 || true",
    );
    return ns;
  }

  /** Connect two namespaces with a veth pair (created directly inside them). */
  async veth(a: Netns, b: Netns, opts: VethOptions = {}): Promise<{ aIf: string; bIf: string }> {
    const aIf = opts.aName ?? uniqueName("v");
    const bIf = opts.bName ?? uniqueName("v");
    await execHost(["ip", "link", "add", aIf, "netns", a.name, "type", "veth", "peer", bIf, "netns", b.name]);
    for (const [ns, ifn, addr] of [
      [a, aIf, opts.aAddr],
      [b, bIf, opts.bAddr],
    ] as const) {
      const addrs = addr === undefined ? [] : Array.isArray(addr) ? addr : [addr];
      for (const ad of addrs)
        await ns.exec(["ip", "addr", "add", ad, "dev", ifn, ...(ad.includes(":") ? ["nodad"] : [])]);
      if (opts.mtu) await ns.exec(["ip", "link", "set", ifn, "mtu", String(opts.mtu)]);
      await ns.exec(["ip", "link", "set", ifn, "up"]);
    }
    return { aIf, bIf };
  }

  /** Start a long-running process inside a namespace; it is killed at cleanup. */
  spawn(ns: Netns, argv: string[]): { kill(sig?: number): void; exited: Promise<number> } {
    const p = Bun.spawn([...ns.prefix(), ...argv], { stdout: "ignore", stderr: "ignore", stdin: "ignore" });
    this.procs.push(p);
    return p;
  }

  async cleanup(): Promise<void> {
    for (const p of this.procs.splice(0)) {
      try {
        p.kill(9);
        await p.exited;
      } catch {
        /* ignore */
      }
    }
    for (const ns of this.namespaces.splice(0).reverse()) {
      await deleteNetns(ns.name).catch(() => undefined);
    }
  }
}
