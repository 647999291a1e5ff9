/**
 * Pure diff of one cluster's MCS objects: desired (desired.ts) against what its informers hold.
 * Only objects labelled as Kosmos-managed are ever updated or deleted; an object of the same name
 * that someone else made is left alone and reported (`foreign`), never overwritten.
 */
import type { DesiredObjects } from "./desired.ts";
import type { ExportStatus } from "./plan.ts";
import {
  type Condition,
  type EndpointSliceObject,
  LABEL_MANAGED,
  type ServiceExportObject,
  type ServiceImportObject,
} from "./types.ts";

export type Op =
  | {
      kind: "create";
      resource: "serviceimports" | "endpointslices";
      object: ServiceImportObject | EndpointSliceObject;
    }
  | {
      kind: "update";
      resource: "serviceimports" | "endpointslices";
      object: ServiceImportObject | EndpointSliceObject;
    }
  | { kind: "importStatus"; object: ServiceImportObject }
  | { kind: "delete"; resource: "serviceimports" | "endpointslices"; namespace: string; name: string }
  | { kind: "exportStatus"; namespace: string; name: string; conditions: Condition[] };

export interface Current {
  imports: ServiceImportObject[];
  slices: EndpointSliceObject[];
  exports: ServiceExportObject[];
}

const k = (o: { metadata: { namespace?: string; name: string } }): string =>
  `${o.metadata.namespace ?? ""}/${o.metadata.name}`;
/** Whether the MCS controller made (and may change or delete) this object: its managed label. */
export const managed = (o: { metadata: { labels?: Record<string, string> } }): boolean =>
  o.metadata.labels?.[LABEL_MANAGED] === "true";

function sameLabels(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const x = a ?? {};
  const y = b ?? {};
  return Object.entries(y).every(([kk, v]) => x[kk] === v);
}

/** JSON with object keys sorted: the API server does not keep our key order. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v ?? null, (_k, x: unknown) =>
    x && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(
          Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : x,
  );
}
const json = canonicalJson;

/** Conditions with the transition time kept where the status did not change. */
export function mergeConditions(old: Condition[] | undefined, next: Condition[], now: string): Condition[] {
  return next.map((c) => {
    const prev = old?.find((o) => o.type === c.type);
    return {
      ...c,
      lastTransitionTime: prev && prev.status === c.status ? (prev.lastTransitionTime ?? now) : now,
    };
  });
}

function condsEqual(a: Condition[] | undefined, b: Condition[]): boolean {
  const strip = (l: Condition[]): string =>
    json(
      [...l]
        .map(({ type, status, reason, message }) => ({ type, status, reason, message }))
        .sort((x, y) => x.type.localeCompare(y.type)),
    );
  return strip(a ?? []) === strip(b);
}

/** The operations that bring one cluster from `cur` to `want` (plus its exports' conditions). */
export function diffCluster(
  want: DesiredObjects,
  cur: Current,
  exportStatus: ExportStatus[],
): { ops: Op[]; foreign: string[] } {
  const ops: Op[] = [];
  const foreign: string[] = [];
  const curImports = new Map(cur.imports.map((o) => [k(o), o]));
  const wantImports = new Set(want.imports.map(k));
  for (const w of want.imports) {
    const c = curImports.get(k(w));
    if (!c) {
      ops.push({ kind: "create", resource: "serviceimports", object: w });
      ops.push({ kind: "importStatus", object: w });
      continue;
    }
    if (!managed(c)) {
      foreign.push(`ServiceImport ${k(w)}`);
      continue;
    }
    if (json(c.spec) !== json(w.spec) || !sameLabels(c.metadata.labels, w.metadata.labels)) {
      ops.push({
        kind: "update",
        resource: "serviceimports",
        object: { ...w, metadata: { ...w.metadata, resourceVersion: c.metadata.resourceVersion } },
      });
    }
    if (json(c.status?.clusters ?? []) !== json(w.status?.clusters ?? []))
      ops.push({ kind: "importStatus", object: w });
  }
  for (const c of cur.imports) {
    if (managed(c) && !wantImports.has(k(c))) {
      ops.push({
        kind: "delete",
        resource: "serviceimports",
        namespace: c.metadata.namespace ?? "",
        name: c.metadata.name,
      });
    }
  }
  const curSlices = new Map(cur.slices.map((o) => [k(o), o]));
  const wantSlices = new Set(want.slices.map(k));
  for (const w of want.slices) {
    const c = curSlices.get(k(w));
    if (!c) ops.push({ kind: "create", resource: "endpointslices", object: w });
    else if (!managed(c)) foreign.push(`EndpointSlice ${k(w)}`);
    else if (
      json(c.endpoints ?? []) !== json(w.endpoints ?? []) ||
      json(c.ports ?? []) !== json(w.ports ?? []) ||
      c.addressType !== w.addressType ||
      !sameLabels(c.metadata.labels, w.metadata.labels)
    ) {
      ops.push({
        kind: "update",
        resource: "endpointslices",
        object: { ...w, metadata: { ...w.metadata, resourceVersion: c.metadata.resourceVersion } },
      });
    }
  }
  for (const c of cur.slices) {
    if (managed(c) && !wantSlices.has(k(c))) {
      ops.push({
        kind: "delete",
        resource: "endpointslices",
        namespace: c.metadata.namespace ?? "",
        name: c.metadata.name,
      });
    }
  }
  const curExports = new Map(cur.exports.map((o) => [k(o), o]));
  for (const s of exportStatus) {
    const c = curExports.get(`${s.namespace}/${s.name}`);
    if (c && !condsEqual(c.status?.conditions, s.conditions)) {
      ops.push({ kind: "exportStatus", namespace: s.namespace, name: s.name, conditions: s.conditions });
    }
  }
  return { ops, foreign };
}
