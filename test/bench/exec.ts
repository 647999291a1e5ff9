/**
 * Exec benchmarks: round trip of `true` over /v1/exec vs a local spawn and vs `ssh localhost true`
 * (a private sshd on 127.0.0.1), upload throughput vs a local `cp` + fsync, 100 concurrent sessions + RSS.
 * The agent runs in this process, so the RSS figure is the bench process (agent + client). The
 * upload is measured against an agent in a child process (as in real use: kosmosctl and the agent
 * are different processes), so client and agent each get a core, like cp's reader and writer.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentClient, type AgentTarget } from "../../internal/exec/client.ts";
import { startTestAgent } from "../helpers/exec-agent.ts";
import { type BenchResult, cpuMs, percentile, printResults } from "./lib.ts";

async function time(fn: () => Promise<unknown>, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

/** Private sshd on 127.0.0.1 with temp keys; returns the argv prefix for `ssh ... true`. */
async function startSshd(dir: string): Promise<{ argv: string[]; stop: () => void } | null> {
  const sh = (argv: string[]) => Bun.spawnSync(argv, { stdout: "ignore", stderr: "ignore" }).exitCode;
  // sshd refuses to start without its privilege-separation directory (normally made by systemd)
  await mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  if (sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host")]) !== 0) return null;
  if (sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", join(dir, "user")]) !== 0) return null;
  await Bun.write(join(dir, "authorized_keys"), await Bun.file(join(dir, "user.pub")).text());
  const port = await freePort();
  const cfg = join(dir, "sshd_config");
  await writeFile(
    cfg,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${join(dir, "host")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "PermitRootLogin yes",
      "",
    ].join("\n"),
  );
  const proc = Bun.spawn(["/usr/sbin/sshd", "-D", "-e", "-f", cfg], { stdout: "ignore", stderr: "ignore" });
  const argv = [
    "ssh",
    "-p",
    String(port),
    "-i",
    join(dir, "user"),
    "-o",
    `UserKnownHostsFile=${join(dir, "known_hosts")}`,
    "-o",
    "StrictHostKeyChecking=accept-new",
    "-o",
    "BatchMode=yes",
    "-o",
    "LogLevel=ERROR",
    "root@127.0.0.1",
  ];
  for (let i = 0; i < 100; i++) {
    if (Bun.spawnSync([...argv, "true"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0)
      return { argv, stop: () => proc.kill() };
    await Bun.sleep(50);
  }
  proc.kill();
  return null;
}

/** An exec agent (startTestAgent) in a child process; its TLS target and upload root. */
async function startChildAgent(): Promise<{
  target: AgentTarget;
  root: string;
  pid: number;
  stop: () => Promise<void>;
}> {
  const testing = new URL("../helpers/exec-agent.ts", import.meta.url).pathname;
  const code = [
    `import { startTestAgent } from ${JSON.stringify(testing)};`,
    "const a = await startTestAgent({});",
    "console.log(JSON.stringify({ target: a.target(), root: a.root }));",
    "process.stdin.on('end', async () => { await a.stop(); process.exit(0); });",
    "process.stdin.resume();",
  ].join("\n");
  const proc = Bun.spawn([process.execPath, "-e", code], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error("child agent exited before reporting its address");
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  const info = JSON.parse(text.slice(0, text.indexOf("\n"))) as { target: AgentTarget; root: string };
  return {
    ...info,
    pid: proc.pid,
    stop: async () => {
      proc.stdin.end();
      const t = setTimeout(() => proc.kill(), 5000);
      await proc.exited;
      clearTimeout(t);
    },
  };
}

export async function run(): Promise<BenchResult[]> {
  const dir = await mkdtemp(join(tmpdir(), "kosmos-bench-exec-"));
  const agent = await startTestAgent({ limits: { maxSessions: 256 } });
  const results: BenchResult[] = [];
  let sshd: Awaited<ReturnType<typeof startSshd>> = null;
  try {
    const client = new AgentClient(agent.target());
    const N = 200;
    await time(() => client.exec(["true"]), 20); // warm-up (TLS pin, JIT)
    const local = percentile(
      await time(async () => {
        await Bun.spawn(["true"], { stdout: "ignore", stderr: "ignore" }).exited;
      }, N),
      50,
    );
    const api = percentile(await time(() => client.exec(["true"]), N), 50);
    results.push({
      name: "exec `true` overhead over local spawn (p50)",
      value: api - local,
      unit: "ms",
      baseline: { name: "local spawn p50 ms", value: local },
      target: "<= 3 ms",
      ok: api - local <= 3,
    });
    sshd = await startSshd(dir);
    if (sshd) {
      const argv = sshd.argv;
      const ssh = percentile(
        await time(async () => {
          await Bun.spawn([...argv, "true"], { stdout: "ignore", stderr: "ignore" }).exited;
        }, 30),
        50,
      );
      results.push({
        // value and baseline in ms, so the ratio column reads as "fraction of ssh's time"
        name: `exec \`true\` round trip p50 vs ssh localhost true (${(ssh / api).toFixed(0)}x faster)`,
        value: api,
        unit: "ms",
        baseline: { name: "ssh p50 ms", value: ssh },
        target: ">= 10x faster (<= 0.1x)",
        ok: ssh / api >= 10,
      });
    } else {
      results.push({
        name: "ssh baseline unavailable (sshd failed to start)",
        value: Number.NaN,
        unit: "",
        ok: false,
      });
    }

    // 100 concurrent sessions
    const rs = await Promise.allSettled(
      Array.from({ length: 100 }, (_, i) => client.exec(["sh", "-c", `sleep 0.5; echo ${i}`])),
    );
    const errors = rs.filter((r) => r.status === "rejected" || r.value.exitCode !== 0).length;
    const rss = process.memoryUsage().rss / 1024 / 1024;
    results.push({
      name: "100 concurrent sessions: errors",
      value: errors,
      unit: "",
      target: "0",
      ok: errors === 0,
    });
    results.push({
      name: "RSS after 100 concurrent sessions (agent+client process)",
      value: rss,
      unit: "MB",
      target: "<= 100 MB",
      ok: rss <= 100,
    });

    // upload throughput vs cp (agent in a child process)
    const child = await startChildAgent();
    try {
      const upClient = new AgentClient(child.target);
      const src = join(dir, "blob.bin");
      const size = 256 * 1024 * 1024;
      Bun.spawnSync(["head", "-c", String(size), "/dev/urandom"], { stdout: Bun.file(src) });
      // warm-up (TLS pin, JIT; both modes), and the source is in the page cache for cp and uploads alike
      await upClient.upload(src, join(child.root, "warm.bin"));
      await upClient.upload(src, join(child.root, "warm.bin"), { checksum: "sha256" });
      const cpTimes: number[] = [];
      const cpSyncfsTimes: number[] = [];
      const up: { ms: number; client: number; agent: number }[] = [];
      const upSha: number[] = [];
      const upload = async (opts: { checksum?: "sha256" } = {}) => {
        const c0 = process.cpuUsage();
        const a0 = cpuMs(child.pid);
        const t = performance.now();
        await upClient.upload(src, join(child.root, "blob.bin"), opts);
        const ms = performance.now() - t;
        const c = process.cpuUsage(c0);
        // the upload keeps the replaced file as a backup: drop it so they do not pile up
        for (const f of new Bun.Glob("blob.bin_*_bak").scanSync(child.root)) await rm(join(child.root, f));
        return { ms, client: (c.user + c.system) / 1000, agent: cpuMs(child.pid) - a0 };
      };
      for (let i = 0; i < 5; i++) {
        // interleaved, so background load hits all alike. The baseline is cp + fsync of the copy
        // (`sync FILE`): the same durability as the upload's fsync. `sync -f` (syncfs) would also
        // flush whatever else is dirty on the filesystem and is kept only as a reference.
        cpTimes.push(
          ...(await time(async () => {
            await Bun.spawn(["cp", src, join(dir, "copy.bin")]).exited;
            Bun.spawnSync(["sync", join(dir, "copy.bin")]);
          }, 1)),
        );
        cpSyncfsTimes.push(
          ...(await time(async () => {
            await Bun.spawn(["cp", src, join(dir, "copy2.bin")]).exited;
            Bun.spawnSync(["sync", "-f", join(dir, "copy2.bin")]);
          }, 1)),
        );
        up.push(await upload());
        upSha.push((await upload({ checksum: "sha256" })).ms);
      }
      const mbs = (ms: number) => size / 1e6 / (ms / 1000);
      const cpMBs = mbs(Math.min(...cpTimes));
      const upMBs = mbs(Math.min(...up.map((u) => u.ms)));
      results.push({
        name: "upload throughput (256 MiB, GMAC-verified, O_DIRECT, fsync, TLS; best of 5) vs local cp + fsync",
        value: upMBs,
        unit: "MB/s",
        baseline: { name: "cp + fsync MB/s", value: cpMBs },
        target: ">= 70% of cp",
        ok: upMBs >= 0.7 * cpMBs,
      });
      results.push({
        name: "upload throughput, --sha256 (SHA-256 both ends; best of 5)",
        value: mbs(Math.min(...upSha)),
        unit: "MB/s",
        baseline: { name: "cp + fsync MB/s", value: cpMBs },
      });
      results.push({
        name: "reference: cp + sync -f (syncfs) MB/s, best of 5",
        value: mbs(Math.min(...cpSyncfsTimes)),
        unit: "MB/s",
      });
      results.push({
        name: "upload CPU per 256 MiB: client (median)",
        value: percentile(
          up.map((u) => u.client),
          50,
        ),
        unit: "ms",
      });
      results.push({
        name: "upload CPU per 256 MiB: agent (median)",
        value: percentile(
          up.map((u) => u.agent),
          50,
        ),
        unit: "ms",
      });
    } finally {
      await child.stop();
    }
  } finally {
    sshd?.stop();
    await agent.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}

if (import.meta.main) printResults(await run());
