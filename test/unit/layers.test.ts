/**
 * The import layering of internal/ and cmd/ (docs/architecture.md, "Layers"): every import between
 * two modules goes through the imported module's index.ts, and only downwards (a module imports
 * modules of lower layers only, never its own layer or higher). The table is read from
 * docs/architecture.md, so a new module adds one row there and nothing here.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize } from "node:path";

const ROOT = join(import.meta.dir, "..", "..");
const DOC = "docs/architecture.md";

/** Module name -> layer, from the "Layers" table of docs/architecture.md. */
export function parseLayerTable(markdown: string): Map<string, number> {
  const section = markdown.split(/^## /m).find((s) => s.startsWith("Layers"));
  if (!section) throw new Error(`${DOC} has no "## Layers" section`);
  const layers = new Map<string, number>();
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    const layer = Number(cells[1]);
    if (cells.length < 4 || cells[1] === "" || !Number.isInteger(layer)) continue;
    for (const m of (cells[2] ?? "").matchAll(/`([a-z0-9-]+)`/g)) layers.set(m[1] as string, layer);
  }
  return layers;
}

/** The relative module specifiers a TypeScript source imports or re-exports (static and dynamic). */
export function importsOf(source: string): string[] {
  const out: string[] = [];
  const statement = /^\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']/gms;
  const bare = /^\s*import\s*["']([^"']+)["']/gm;
  const dynamic = /\bimport\(\s*["']([^"']+)["']\s*\)/g;
  for (const re of [statement, bare, dynamic]) for (const m of source.matchAll(re)) out.push(m[1] as string);
  return out.filter((s) => s.startsWith("."));
}

/** internal/<m>/... -> m; cmd/... -> "cmd"; anything else -> undefined. */
function moduleOf(path: string): string | undefined {
  const parts = path.split("/");
  if (parts[0] === "cmd") return "cmd";
  if (parts[0] === "internal" && parts.length > 2) return parts[1];
  return undefined;
}

/**
 * Violations of the layering among `files` (path relative to the repository -> source): a module
 * missing from the table, a module without index.ts, a cross-module import not via index.ts, an
 * import of the same or a higher layer.
 */
export function layerViolations(files: Map<string, string>, layers: Map<string, number>): string[] {
  const out: string[] = [];
  const modules = new Set([...files.keys()].map(moduleOf).filter((m): m is string => m !== undefined));
  for (const m of [...modules].sort()) {
    if (!layers.has(m))
      out.push(`module ${m} is not in the layer table: add a row for it to the "Layers" table of ${DOC}`);
    if (m !== "cmd" && !files.has(`internal/${m}/index.ts`))
      out.push(`module ${m} has no internal/${m}/index.ts: every module exports its API from index.ts`);
  }
  for (const [path, source] of files) {
    const from = moduleOf(path);
    if (from === undefined) continue;
    for (const spec of importsOf(source)) {
      const target = normalize(join(dirname(path), spec));
      const to = moduleOf(target);
      if (to === undefined || to === from) continue;
      if (target !== `internal/${to}/index.ts`)
        out.push(`${path}: imports ${spec}: import module ${to} through internal/${to}/index.ts only`);
      const lf = layers.get(from);
      const lt = layers.get(to);
      if (lf === undefined || lt === undefined) continue; // reported above
      if (lt >= lf)
        out.push(
          `${path}: imports module ${to} (layer ${lt}) from ${from} (layer ${lf}): a module imports lower layers only (${DOC}, "Layers")`,
        );
    }
  }
  return out;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const rel = `${dir}/${name}`;
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...sources(rel));
    else if (name.endsWith(".ts")) out.push(rel);
  }
  return out;
}

function tree(): Map<string, string> {
  const files = new Map<string, string>();
  for (const p of [...sources("internal"), ...sources("cmd")])
    files.set(p, readFileSync(join(ROOT, p), "utf8"));
  return files;
}

const table = () => parseLayerTable(readFileSync(join(ROOT, DOC), "utf8"));

describe("import layers", () => {
  test("every import under internal/ and cmd/ follows the layer table", () => {
    const files = tree();
    expect(files.size).toBeGreaterThan(100);
    expect(layerViolations(files, table())).toEqual([]);
  });

  test("the checker catches a planted violation of each kind", () => {
    const layers = table();
    const files = tree();
    // the store (layer above gossip) imported by gossip, past the index; the agent reaching into
    // a file of the store; a module nobody put in the table
    files.set("internal/gossip/planted.ts", 'import { openStore } from "../store/open.ts";\n');
    files.set("internal/agent/planted.ts", 'import type { Store } from "../store/store.ts";\n');
    files.set("internal/newmod/index.ts", 'export { x } from "./x.ts";\n');
    const found = layerViolations(files, layers);
    expect(found).toContain(
      'module newmod is not in the layer table: add a row for it to the "Layers" table of docs/architecture.md',
    );
    expect(found).toContain(
      "internal/gossip/planted.ts: imports ../store/open.ts: import module store through internal/store/index.ts only",
    );
    expect(found.some((v) => v.startsWith("internal/gossip/planted.ts: imports module store (layer"))).toBe(
      true,
    );
    expect(found).toContain(
      "internal/agent/planted.ts: imports ../store/store.ts: import module store through internal/store/index.ts only",
    );
    expect(found.filter((v) => v.includes("planted") || v.includes("newmod"))).toHaveLength(4);
  });

  test("imports are found in every form: static, type-only, multi-line, re-export, dynamic", () => {
    const src = [
      'import { a } from "../x/index.ts";',
      'import type { B } from "../y/y.ts";',
      "import {\n  c,\n  d,\n} from '../z/index.ts';",
      'export { e } from "./local.ts";',
      'export * from "../w/index.ts";',
      'const m = await import("../v/index.ts");',
      'import "../side/index.ts";',
      'import { Hono } from "hono";',
    ].join("\n");
    expect(importsOf(src).sort()).toEqual(
      [
        "../side/index.ts",
        "../v/index.ts",
        "../w/index.ts",
        "../x/index.ts",
        "../y/y.ts",
        "../z/index.ts",
        "./local.ts",
      ].sort(),
    );
  });
});
