/** The real CLI, as users run it: cmd/kosmosctl.ts in its own process. */

const KOSMOSCTL = new URL("../../cmd/kosmosctl.ts", import.meta.url).pathname;

/**
 * Run `kosmosctl ARGS` (in network namespace `ns` when given, with `env` added). Resolves with the
 * exit code and output; never throws on a non-zero exit.
 */
export async function kosmosctl(
  args: string[],
  opts: { ns?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const argv = [process.execPath, KOSMOSCTL, ...args];
  const p = Bun.spawn(opts.ns ? ["ip", "netns", "exec", opts.ns, ...argv] : argv, {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...opts.env },
    timeout: opts.timeoutMs ?? 120_000,
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, stdout, stderr };
}
