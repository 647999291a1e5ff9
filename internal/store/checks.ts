/**
 * Row checks, pure: whether a replicated row may enter the replica (shape, ownership, data) and its
 * SQL column values. The clock check of remote rows (not too far in the future) is injected, so
 * the order of the checks, and which reason a row is refused for, are the same for local and
 * remote rows.
 */
import type { z } from "zod";
import type { SqlRow, SqlValue } from "./driver.ts";
import type { ReplicatedRow } from "../gossip/index.ts";
import {
  REPLICATED_TABLES,
  type ReplicatedTableName,
  type ReplicatedTableSpec,
  TABLE_SPECS,
  tableSpec,
} from "./tables.ts";

export type RejectReason = "unknown_table" | "not_owner" | "invalid" | "future";

export type Checked =
  | { ok: true; row: ReplicatedRow; cols: SqlValue[] }
  | { ok: false; reason: RejectReason; message: string };

/** The data columns of a tombstone: all NULL, per table. */
export const NULL_COLUMNS: Readonly<Record<ReplicatedTableName, null[]>> = Object.fromEntries(
  REPLICATED_TABLES.map((name) => [name, TABLE_SPECS[name].columns.map(() => null)]),
) as Record<ReplicatedTableName, null[]>;

/** `prefix.path: message` of a zod error's first issue. */
export function zodMessage(prefix: string, err: z.ZodError): string {
  const issue = err.issues[0];
  if (!issue) return `${prefix}: invalid`;
  const path = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
  return `${prefix}${path}: ${issue.message}`;
}

/** Column values (in spec order) as a row keyed by column name. */
export function colsRecord(spec: ReplicatedTableSpec, cols: SqlValue[]): SqlRow {
  const r: SqlRow = {};
  spec.columns.forEach((c, i) => {
    r[c] = cols[i] ?? null;
  });
  return r;
}

/** Whether a stored row already holds these column values. */
export function sameColumns(spec: ReplicatedTableSpec, cur: SqlRow, cols: SqlValue[]): boolean {
  return spec.columns.every((c, i) => (cur[c] ?? null) === (cols[i] ?? null));
}

const refuse = (reason: RejectReason, message: string): Checked => ({ ok: false, reason, message });

/**
 * Validate a row: table, key, owner, version, tombstone flag, ownership, then (remote rows, when
 * `observe` is given) the clock, then the data against the table's schema (data.name = key).
 * Returns the normalised row and its column values, or why it is refused.
 */
export function checkRow(input: ReplicatedRow, observe?: (version: number) => boolean): Checked {
  const spec = tableSpec(input?.table);
  if (!spec) return refuse("unknown_table", `unknown table "${String(input?.table)}"`);
  const where = `${spec.name}/${String(input.key)}`;
  if (typeof input.key !== "string" || input.key.length === 0) {
    return refuse("invalid", `${spec.name}: key must be a non-empty string`);
  }
  if (typeof input.owner !== "string" || input.owner.length === 0) {
    return refuse("invalid", `${where}: owner must be a non-empty string`);
  }
  if (!Number.isSafeInteger(input.version) || input.version < 0) {
    return refuse("invalid", `${where}: version must be a non-negative safe integer`);
  }
  if (typeof input.deleted !== "boolean") return refuse("invalid", `${where}: deleted must be a boolean`);
  if (!spec.mayWrite(input.owner, input.key)) {
    return refuse("not_owner", `${where}: owner "${input.owner}" may not write it`);
  }
  if (observe && !observe(input.version)) {
    return refuse("future", `${where}: version ${input.version} is too far in the future`);
  }
  const { key, owner, version } = input;
  if (input.deleted) {
    if (input.data !== null && input.data !== undefined) {
      return refuse("invalid", `${where}: data must be null on a tombstone`);
    }
    const row = { table: spec.name, key, owner, version, deleted: true, data: null };
    return { ok: true, row, cols: NULL_COLUMNS[spec.name] };
  }
  const parsed = spec.schema.safeParse(input.data);
  if (!parsed.success) return refuse("invalid", zodMessage(`${where}: data`, parsed.error));
  if (parsed.data.name !== input.key) return refuse("invalid", `${where}: data.name must equal the key`);
  const cols = spec.toColumns(parsed.data);
  const data = spec.fromColumns({ name: key, ...colsRecord(spec, cols) });
  return { ok: true, row: { table: spec.name, key, owner, version, deleted: false, data }, cols };
}
