/**
 * No function in internal/ or cmd/ is longer than MAX_LINES lines (its body, measured with the
 * TypeScript compiler's own parse) unless the line right above it says why:
 * `// long-function: <reason>`. That makes the brief's "functions under ~120 lines" checkable, like
 * the import layering in layers.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";

const ROOT = join(import.meta.dir, "..", "..");
export const MAX_LINES = 120;
const MARKER = /\/\/\s*long-function:\s*\S/;

/**
 * Functions over the limit that are not split yet ("file name"). Issue 12 tracks them; shrink this
 * list, never grow it. A stale entry (the function is gone or short now) fails the test too.
 */
const NOT_YET_SPLIT = new Set<string>([]);

export interface LongFunction {
  file: string;
  name: string;
  line: number;
  lines: number;
  marked: boolean;
}

function nameOf(node: ts.Node, sf: ts.SourceFile): string {
  const named = node as ts.Node & { name?: ts.Node };
  if (named.name) {
    const own = named.name.getText(sf);
    const cls = ts.isClassLike(node.parent) && node.parent.name ? `${node.parent.name.getText(sf)}.` : "";
    return cls + own;
  }
  const p = node.parent;
  if (p && ts.isVariableDeclaration(p)) return p.name.getText(sf);
  if (p && ts.isPropertyAssignment(p)) return p.name.getText(sf);
  if (p && ts.isCallExpression(p)) return `<callback of ${p.expression.getText(sf).slice(0, 40)}>`;
  return "<anonymous>";
}

/** The line the marker comment must sit right above: the statement that holds the function. */
function anchorOf(node: ts.Node): ts.Node {
  let n: ts.Node = node;
  while (n.parent && !ts.isSourceFile(n.parent) && !ts.isBlock(n.parent) && !ts.isClassLike(n.parent)) {
    if (
      ts.isVariableDeclaration(n.parent) ||
      ts.isVariableDeclarationList(n.parent) ||
      ts.isVariableStatement(n.parent)
    )
      n = n.parent;
    else if (ts.isExportAssignment(n.parent)) n = n.parent;
    else break;
  }
  return n;
}

/** Functions (declarations, methods, arrows, function expressions) in `source` whose body spans more than `max` lines. */
export function longFunctions(file: string, source: string, max = MAX_LINES): LongFunction[] {
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: LongFunction[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && "body" in node && node.body) {
      const body = node.body as ts.Node;
      const first = sf.getLineAndCharacterOfPosition(body.getStart(sf)).line;
      const last = sf.getLineAndCharacterOfPosition(body.getEnd()).line;
      const lines = last - first + 1;
      if (lines > max) {
        const anchor = anchorOf(node);
        const start = sf.getLineAndCharacterOfPosition(anchor.getStart(sf)).line;
        const above = source.split("\n")[start - 1] ?? "";
        out.push({ file, name: nameOf(node, sf), line: start + 1, lines, marked: MARKER.test(above) });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(ROOT, dir))) {
    const rel = `${dir}/${entry}`;
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...sources(rel));
    else if (rel.endsWith(".ts") && !rel.endsWith(".d.ts")) out.push(rel);
  }
  return out;
}

describe("function size", () => {
  test("the checker measures bodies and honours the marker", () => {
    const body = Array.from({ length: 5 }, (_, i) => `  x(${i});`).join("\n");
    const src = `function a() {\n${body}\n}\n// long-function: one linear state machine\nconst b = () => {\n${body}\n};\nclass C {\n  m() {\n${body}\n  }\n}\n`;
    const found = longFunctions("x.ts", src, 4);
    expect(found.map((f) => [f.name, f.lines, f.marked])).toEqual([
      ["a", 7, false],
      ["b", 7, true],
      ["C.m", 7, false],
    ]);
  });

  test(`no function in internal/ or cmd/ over ${MAX_LINES} lines without a "// long-function: <reason>" line above it`, () => {
    const long = [...sources("internal"), ...sources("cmd")]
      .flatMap((f) => longFunctions(f, readFileSync(join(ROOT, f), "utf8")))
      .filter((f) => !f.marked);
    const known = new Set(long.map((f) => `${f.file} ${f.name}`));
    const stale = [...NOT_YET_SPLIT]
      .filter((k) => !known.has(k))
      .map((k) => `${k} is short now: drop it from NOT_YET_SPLIT`);
    const offenders = long
      .filter((f) => !NOT_YET_SPLIT.has(`${f.file} ${f.name}`))
      .map(
        (f) =>
          `${f.file}:${f.line} ${f.name} is ${f.lines} lines: split it, or say why not with "// long-function: <reason>" right above it`,
      );
    expect([...offenders, ...stale]).toEqual([]);
  });
});
