/** kosmosctl exec NODE -- CMD, kosmosctl cp FILE NODE:PATH (exit with the remote exit code). */
import { Command } from "commander";
import { SingleBar } from "cli-progress";
import { AgentClient, type AgentTarget } from "../exec/index.ts";

export interface ExecCliContext {
  /** lab/cluster resolution of a node name; `--agent` overrides it */
  resolveNode?: (name: string) => Promise<{ url: string; token?: string; fingerprint?: string }>;
  exit?: (code: number) => void;
}

async function target(
  ctx: ExecCliContext,
  node: string,
  o: { agent?: string; token?: string; fingerprint?: string },
): Promise<AgentTarget> {
  const base = o.agent ? { url: o.agent } : ctx.resolveNode ? await ctx.resolveNode(node) : { url: node };
  return {
    ...base,
    token: o.token ?? process.env.KOSMOS_TOKEN ?? base.token,
    fingerprint: o.fingerprint ?? base.fingerprint,
  };
}

export function execCommands(ctx: ExecCliContext = {}): Command[] {
  const exit = ctx.exit ?? ((c: number) => process.exit(c));
  const exec = new Command("exec")
    .description("run a command on a node (no shell); exits with the remote exit code")
    .argument("<node>")
    .argument("<cmd...>")
    .option("-i, --stdin", "pass stdin")
    .option("-t, --tty", "allocate a PTY")
    .option("-e, --env <kv...>", "KEY=VALUE")
    .option("-w, --workdir <dir>", "working directory of the command on the node")
    .option("--timeout <seconds>", "session timeout", Number)
    .option("--agent <url>", "https://host:port or unix:/path.sock")
    .option("--token <token>", "bearer token (default $KOSMOS_TOKEN)")
    .option("--fingerprint <sha256>", "pin the agent certificate")
    .action(async (node: string, cmd: string[], o) => {
      const client = new AgentClient(await target(ctx, node, o));
      const env = Object.fromEntries(
        (o.env ?? []).map((kv: string) => [kv.split("=")[0], kv.slice(kv.indexOf("=") + 1)]),
      );
      const tty = Boolean(o.tty) && process.stdout.isTTY;
      if (tty && process.stdin.isTTY) process.stdin.setRawMode(true);
      try {
        const r = await client.exec(cmd, {
          tty,
          env,
          cwd: o.workdir,
          timeout: o.timeout,
          stdin: o.stdin ? (process.stdin as unknown as AsyncIterable<Uint8Array>) : undefined,
          size: tty ? { cols: process.stdout.columns, rows: process.stdout.rows } : undefined,
          onResizer: (resize) =>
            process.stdout.on("resize", () => resize(process.stdout.columns, process.stdout.rows)),
          onStdout: (c) => process.stdout.write(c),
          onStderr: (c) => process.stderr.write(c),
        });
        exit(r.exitCode);
      } catch (err) {
        const e = err as Error & { hint?: string };
        process.stderr.write(`error: ${e.message}${e.hint ? `\nhint: ${e.hint}` : ""}\n`);
        exit(255);
      } finally {
        if (tty && process.stdin.isTTY) process.stdin.setRawMode(false);
      }
    });
  const cp = new Command("cp")
    .description("upload FILE to NODE:PATH (atomic, verified end to end, backup kept)")
    .argument("<file>")
    .argument("<dest>", "NODE:/abs/path")
    .option("--agent <url>", "https://host:port or unix:/path.sock")
    .option("--token <token>", "bearer token (default $KOSMOS_TOKEN)")
    .option("--fingerprint <sha256>", "pin the agent certificate")
    .option(
      "--sha256",
      "verify with SHA-256 and print the file's digest (default: GMAC, ~5x cheaper to compute)",
    )
    .action(async (file: string, dest: string, o) => {
      const i = dest.indexOf(":");
      if (i <= 0) {
        process.stderr.write("error: destination must be NODE:/abs/path\n");
        return exit(2);
      }
      const client = new AgentClient(await target(ctx, dest.slice(0, i), o));
      const bar = new SingleBar({ format: "{bar} {percentage}% {value}/{total} bytes" });
      try {
        bar.start(Bun.file(file).size, 0);
        const r = await client.upload(file, dest.slice(i + 1), {
          onProgress: (p) => bar.update(p.sent),
          checksum: o.sha256 ? "sha256" : undefined,
        });
        bar.stop();
        const sum = r.checksum ? ` ${r.checksum.algorithm}:${r.checksum.value}` : "";
        process.stdout.write(`${r.path} ${r.bytes} bytes${sum}${r.backup ? ` (backup ${r.backup})` : ""}\n`);
        exit(0);
      } catch (err) {
        bar.stop();
        const e = err as Error & { hint?: string };
        process.stderr.write(`error: ${e.message}${e.hint ? `\nhint: ${e.hint}` : ""}\n`);
        exit(1);
      }
    });
  return [exec, cp];
}
