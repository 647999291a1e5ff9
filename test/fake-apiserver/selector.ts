/** Label and field selectors, with the apiserver's syntax: =, ==, !=, in, notin, exists, !exists. */
import { badRequest } from "./errors.ts";

export type Requirement =
  | { op: "eq" | "neq"; key: string; value: string }
  | { op: "in" | "notin"; key: string; values: string[] }
  | { op: "exists" | "notexists"; key: string };

/** Split on commas that are not inside parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out.map((p) => p.trim()).filter((p) => p.length > 0);
}

const KEY = /^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$/;

export function parseSelector(selector: string | null | undefined): Requirement[] {
  if (!selector) return [];
  return splitTop(selector).map((part): Requirement => {
    let m = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(part);
    if (m) {
      const values = m[3]!
        .split(",")
        .map((v) => v.trim())
        .filter((v) => v.length > 0);
      return { op: m[2] as "in" | "notin", key: checkKey(m[1]!, selector), values };
    }
    m = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (m) {
      return { op: m[2] === "!=" ? "neq" : "eq", key: checkKey(m[1]!, selector), value: m[3]!.trim() };
    }
    if (part.startsWith("!")) return { op: "notexists", key: checkKey(part.slice(1).trim(), selector) };
    return { op: "exists", key: checkKey(part, selector) };
  });
}

function checkKey(key: string, selector: string): string {
  if (!KEY.test(key))
    throw badRequest(`unable to parse requirement: invalid label key "${key}" in "${selector}"`);
  return key;
}

export function matches(reqs: Requirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.hasOwn(l, r.key);
    switch (r.op) {
      case "eq":
        return has && l[r.key] === r.value;
      case "neq":
        return !has || l[r.key] !== r.value;
      case "in":
        return has && r.values.includes(l[r.key]!);
      case "notin":
        return !has || !r.values.includes(l[r.key]!);
      case "exists":
        return has;
      case "notexists":
        return !has;
    }
    return false;
  });
}

/** Field selectors: the apiserver supports metadata.name and metadata.namespace for every kind. */
export function fieldsOf(obj: { metadata?: { name?: string; namespace?: string } }): Record<string, string> {
  const f: Record<string, string> = { "metadata.name": obj.metadata?.name ?? "" };
  if (obj.metadata?.namespace !== undefined) f["metadata.namespace"] = obj.metadata.namespace;
  return f;
}
