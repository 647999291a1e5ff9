/** Patch formats accepted by kube-apiserver: JSON merge patch, JSON patch, strategic merge patch. */
import { ApiError, badRequest } from "./errors.ts";

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export const isObject = (v: unknown): v is JsonObject =>
  typeof v === "object" && v !== null && !Array.isArray(v);

export const clone = <T>(v: T): T => structuredClone(v);

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k] ?? null, v);
  }
  return out;
}

/** Merge keys of the strategic-merge lists we need (core/apps kinds). */
const MERGE_KEYS: Record<string, string> = {
  containers: "name",
  initContainers: "name",
  env: "name",
  volumes: "name",
  volumeMounts: "mountPath",
  ports: "containerPort",
  tolerations: "key",
  conditions: "type",
  imagePullSecrets: "name",
};

/** Strategic merge patch: lists with a known merge key are merged element-wise; `$patch: delete` removes. */
export function strategicMergePatch(target: Json, patch: Json, field = ""): Json {
  if (!isObject(patch)) {
    const key = MERGE_KEYS[field];
    if (key && Array.isArray(patch) && Array.isArray(target)) {
      const out = clone(target);
      for (const p of patch) {
        if (!isObject(p)) continue;
        const idx = out.findIndex((t) => isObject(t) && t[key] === p[key]);
        if (p.$patch === "delete") {
          if (idx >= 0) out.splice(idx, 1);
        } else if (idx >= 0) out[idx] = strategicMergePatch(out[idx]!, p);
        else out.push(clone(p));
      }
      return out;
    }
    return clone(patch);
  }
  if (patch.$patch === "replace") {
    const { $patch: _, ...rest } = patch;
    return clone(rest);
  }
  const out: JsonObject = isObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === "$patch") continue;
    if (v === null) delete out[k];
    else out[k] = strategicMergePatch(out[k] ?? null, v, k);
  }
  return out;
}

type Op =
  | { op: "add" | "replace" | "test"; path: string; value: Json }
  | { op: "remove"; path: string }
  | { op: "move" | "copy"; from: string; path: string };

function pointer(path: string): string[] {
  if (path === "") return [];
  if (!path.startsWith("/")) throw badRequest(`invalid JSON pointer "${path}"`);
  return path
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function parentOf(doc: Json, tokens: string[], path: string): { parent: JsonObject | Json[]; last: string } {
  let cur: Json = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(t)] ?? null;
    else if (isObject(cur)) cur = cur[t] ?? null;
    else cur = null;
    if (cur === null) throw unprocessable(`doc is missing path: "${path}"`);
  }
  if (!Array.isArray(cur) && !isObject(cur)) throw unprocessable(`doc is missing path: "${path}"`);
  return { parent: cur, last: tokens[tokens.length - 1]! };
}

const unprocessable = (m: string): ApiError => new ApiError(422, "Invalid", m);

function getAt(doc: Json, path: string): Json {
  const tokens = pointer(path);
  if (tokens.length === 0) return doc;
  const { parent, last } = parentOf(doc, tokens, path);
  const v = Array.isArray(parent) ? parent[Number(last)] : parent[last];
  if (v === undefined) throw unprocessable(`doc is missing path: "${path}"`);
  return v;
}

function removeAt(doc: Json, path: string): Json {
  const tokens = pointer(path);
  const { parent, last } = parentOf(doc, tokens, path);
  if (Array.isArray(parent)) {
    const i = Number(last);
    if (!(i >= 0 && i < parent.length)) throw unprocessable(`doc is missing path: "${path}"`);
    return parent.splice(i, 1)[0]!;
  }
  if (!Object.hasOwn(parent, last)) throw unprocessable(`doc is missing path: "${path}"`);
  const v = parent[last]!;
  delete parent[last];
  return v;
}

function addAt(doc: Json, path: string, value: Json, replace: boolean): Json {
  const tokens = pointer(path);
  if (tokens.length === 0) return value;
  const { parent, last } = parentOf(doc, tokens, path);
  if (Array.isArray(parent)) {
    const i = last === "-" ? parent.length : Number(last);
    if (!(i >= 0 && i <= parent.length)) throw unprocessable(`index out of range: "${path}"`);
    if (replace) parent[i] = value;
    else parent.splice(i, 0, value);
  } else {
    if (replace && !Object.hasOwn(parent, last)) throw unprocessable(`doc is missing key: "${path}"`);
    parent[last] = value;
  }
  return doc;
}

/** RFC 6902 JSON patch. */
export function jsonPatch(target: Json, ops: unknown): Json {
  if (!Array.isArray(ops)) throw badRequest("json patch must be an array of operations");
  let doc = clone(target);
  for (const raw of ops as Op[]) {
    switch (raw.op) {
      case "add":
        doc = addAt(doc, raw.path, clone(raw.value), false);
        break;
      case "replace":
        doc = addAt(doc, raw.path, clone(raw.value), true);
        break;
      case "remove":
        removeAt(doc, raw.path);
        break;
      case "move": {
        const v = removeAt(doc, raw.from);
        doc = addAt(doc, raw.path, v, false);
        break;
      }
      case "copy":
        doc = addAt(doc, raw.path, clone(getAt(doc, raw.from)), false);
        break;
      case "test":
        if (JSON.stringify(getAt(doc, raw.path)) !== JSON.stringify(raw.value))
          throw unprocessable(`testing value ${raw.path} failed`);
        break;
      default:
        throw badRequest(`unexpected json patch operation ${JSON.stringify((raw as { op?: unknown }).op)}`);
    }
  }
  return doc;
}
