import { afterAll, describe, expect, test } from "bun:test";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

// Point the bundle cache at a private directory (bundle.ts reads it on every call).
const cache = await mkdtemp(join(tmpdir(), "kosmos-bundle-"));
process.env.KOSMOS_BUNDLE_CACHE = cache;
const { agentBundle, agentCommand, bundleCacheDir, MIGRATIONS_DIR } = await import(
  "../../internal/lab/bundle.ts"
);
const { AGENT_RUNTIME_ENV } = await import("../../internal/agent/runtime.ts");
afterAll(async () => {
  delete process.env.KOSMOS_BUNDLE_CACHE;
  await rm(cache, { recursive: true, force: true });
});

describe("agent bundle (how labs start the agent)", () => {
  test("built on first use, runs, reused while its inputs are unchanged, rebuilt when one changed", async () => {
    const file = await agentBundle();
    expect(file).toBe(join(cache, "kosmos-agent.js"));
    const help = Bun.spawnSync([process.execPath, file, "--help"], {
      env: { ...process.env, ...AGENT_RUNTIME_ENV },
    });
    expect(help.exitCode).toBe(0);
    expect(help.stdout.toString()).toContain("--node <name>");

    const built = (await stat(file)).mtimeMs;
    expect(await agentBundle()).toBe(file);
    expect((await stat(file)).mtimeMs).toBe(built); // reused

    // An input whose recorded size no longer matches (as after an edit) forces a rebuild.
    const stampFile = `${file}.inputs.json`;
    const stamp = JSON.parse(await readFile(stampFile, "utf8")) as { inputs: [string, number, number][] };
    expect(stamp.inputs.some(([p]) => p.endsWith("cmd/kosmos-agent.ts"))).toBe(true);
    expect(stamp.inputs.length).toBeGreaterThan(100); // sources and dependencies
    const first = stamp.inputs[0] as [string, number, number];
    stamp.inputs[0] = [first[0], first[1], first[2] + 1];
    await writeFile(stampFile, JSON.stringify(stamp));
    await Bun.sleep(10);
    await agentBundle();
    expect((await stat(file)).mtimeMs).toBeGreaterThan(built);
  }, 60_000);

  test("one cache per checkout: worktrees sharing node_modules never run each other's bundle", () => {
    delete process.env.KOSMOS_BUNDLE_CACHE;
    try {
      const a = bundleCacheDir("/work/wt/a");
      expect(a.startsWith("/work/wt/a/node_modules/.cache/kosmos/")).toBe(true);
      expect(bundleCacheDir("/work/wt/b")).not.toBe(a.replace("/work/wt/a/", "/work/wt/b/"));
    } finally {
      process.env.KOSMOS_BUNDLE_CACHE = cache;
    }
  });

  test("the command carries the runtime environment and this checkout's migrations", async () => {
    const { argv, env } = await agentCommand(["--node", "n1"]);
    expect(argv).toEqual([process.execPath, join(cache, "kosmos-agent.js"), "--node", "n1"]);
    expect(env).toEqual({ ...AGENT_RUNTIME_ENV, KOSMOS_MIGRATIONS_DIR: MIGRATIONS_DIR });
    expect((await stat(join(MIGRATIONS_DIR, "meta/_journal.json"))).isFile()).toBe(true);
  });
});
