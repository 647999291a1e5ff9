/**
 * The agent as labs and benchmarks start it: cmd/kosmos-agent.ts bundled by Bun into one file (like
 * the image's `bun build --compile` executable), so a lab agent loads one module instead of ~200
 * (≈ 8 MB less RSS per agent) and runs what production runs. Built on demand and cached under
 * node_modules/.cache/kosmos/; rebuilt when any file it was built from (sources, dependencies, the
 * Bun version) changed, so editing the code and restarting an agent runs the new code.
 */
import { KosmosError } from "../errors/index.ts";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { AGENT_RUNTIME_ENV } from "../agent/index.ts";

export const REPO_ROOT = resolve(dirname(new URL(import.meta.url).pathname), "../..");
export const AGENT_ENTRY = join(REPO_ROOT, "cmd/kosmos-agent.ts");
export const MIGRATIONS_DIR = join(REPO_ROOT, "migrations");
/**
 * One cache per checkout: git worktrees often share one node_modules (a symlink), and a bundle built
 * from another checkout would be "fresh" against that checkout's files while this one's changed.
 * Read on every call (not at load): a test may point it elsewhere after another file loaded this module.
 */
export function bundleCacheDir(root = REPO_ROOT): string {
  const env = process.env.KOSMOS_BUNDLE_CACHE;
  if (env) return env;
  return join(
    root,
    "node_modules/.cache/kosmos",
    createHash("sha256").update(root).digest("hex").slice(0, 12),
  );
}
const BUNDLE = "kosmos-agent.js";

export class BundleError extends KosmosError<"AGENT_BUNDLE_FAILED"> {
  constructor(message: string, options?: { cause?: unknown }) {
    super(
      "AGENT_BUNDLE_FAILED",
      message,
      "fix the build error above (bun build cmd/kosmos-agent.ts shows the same)",
      options,
    );
  }
}

interface Stamp {
  bun: string;
  inputs: Array<[path: string, mtimeMs: number, size: number]>;
}

async function fresh(file: string, stampFile: string): Promise<boolean> {
  if (!existsSync(file) || !existsSync(stampFile)) return false;
  try {
    const s = JSON.parse(await readFile(stampFile, "utf8")) as Stamp;
    if (s.bun !== Bun.version || s.inputs.length === 0) return false;
    for (const [path, mtimeMs, size] of s.inputs) {
      const st = await stat(path);
      if (st.mtimeMs !== mtimeMs || st.size !== size) return false;
    }
    return true;
  } catch {
    return false;
  }
}

let pending: Promise<string> | undefined;

/** Path of an up-to-date agent bundle (built now if missing or stale). */
export function agentBundle(): Promise<string> {
  pending ??= ensure().finally(() => {
    pending = undefined;
  });
  return pending;
}

async function ensure(): Promise<string> {
  const dir = bundleCacheDir();
  const file = join(dir, BUNDLE);
  const stampFile = `${file}.inputs.json`;
  if (await fresh(file, stampFile)) return file;
  await mkdir(dir, { recursive: true });
  // Build into a private directory, then rename into place: concurrent builders (parallel labs)
  // never expose a half-written file, and a running agent keeps the inode it loaded.
  const tmp = await mkdtemp(join(dir, ".build-"));
  try {
    const out = await Bun.build({
      entrypoints: [AGENT_ENTRY],
      outdir: tmp,
      target: "bun",
      naming: BUNDLE,
      // Whitespace and syntax only: class and function names stay (error types in logs, stacks).
      // No source map: Bun loads a linked one at start (+3 MB RSS); stacks name bundle lines.
      minify: { whitespace: true, syntax: true, identifiers: false },
      metafile: true,
      throw: false,
    });
    if (!out.success || !out.metafile) {
      throw new BundleError(`building the agent bundle failed:\n${out.logs.map(String).join("\n")}`);
    }
    const inputs: Stamp["inputs"] = [];
    for (const p of Object.keys(out.metafile.inputs)) {
      const path = resolve(process.cwd(), p); // the metafile names inputs relative to the cwd
      const st = await stat(path).catch(() => undefined);
      if (st) inputs.push([path, st.mtimeMs, st.size]);
    }
    const stamp: Stamp = { bun: Bun.version, inputs };
    await writeFile(join(tmp, "inputs.json"), JSON.stringify(stamp));
    await rename(join(tmp, BUNDLE), file);
    await rename(join(tmp, "inputs.json"), stampFile);
    return file;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * argv + environment to start the agent with `flags`: the cached bundle on this Bun, the runtime
 * environment of internal/agent/runtime.ts, and the migrations of this checkout (a bundle's
 * import.meta.url is the cache directory, not the source tree).
 */
export async function agentCommand(
  flags: string[],
): Promise<{ argv: string[]; env: Record<string, string> }> {
  // KOSMOS_AGENT_JS=jit: agents with the JIT, for A/B measurements of the runtime setting.
  const runtime = process.env.KOSMOS_AGENT_JS === "jit" ? {} : AGENT_RUNTIME_ENV;
  return {
    argv: [process.execPath, await agentBundle(), ...flags],
    env: { ...runtime, KOSMOS_MIGRATIONS_DIR: MIGRATIONS_DIR },
  };
}
