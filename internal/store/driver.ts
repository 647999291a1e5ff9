/**
 * SQLite driver adapter: `bun:sqlite` on Bun, `better-sqlite3` on Node, both wrapped by drizzle.
 * This is the ONLY store module that touches Bun-only APIs (loaded by dynamic import, so Node never
 * resolves bun:sqlite).
 *
 * Besides the drizzle db, it exposes a tiny raw prepared-statement interface (identical semantics
 * on both drivers) that the replica's hot path (merge of thousands of rows) uses.
 */
import type { BaseSQLiteDatabase } from "drizzle-orm/sqlite-core";
import type { StoreSchema } from "./schema.ts";
import { schema } from "./schema.ts";

export type SqlValue = string | number | null;
export type SqlRow = Record<string, SqlValue>;

export interface RawStatement {
  run(...params: SqlValue[]): void;
  get(...params: SqlValue[]): SqlRow | undefined;
  all(...params: SqlValue[]): SqlRow[];
}

/** The drizzle database type common to both drivers. */
export type StoreDb = BaseSQLiteDatabase<"sync", unknown, StoreSchema>;

export interface Driver {
  kind: "bun:sqlite" | "better-sqlite3";
  db: StoreDb;
  /** Execute one or more statements without results (pragmas, DDL). */
  exec(sqlText: string): void;
  prepare(sqlText: string): RawStatement;
  /** Run fn in an IMMEDIATE transaction (rolled back if it throws). */
  transaction<T>(fn: () => T): T;
  /** Apply drizzle migrations from `folder` (idempotent: applied ones are recorded). */
  migrate(folder: string): void;
  close(): void;
}

export function isBun(): boolean {
  return typeof Bun !== "undefined";
}

export interface OpenDriverOptions {
  /** Open an existing file read-only (never created, never written). */
  readonly?: boolean;
}

export async function openDriver(path: string, opts: OpenDriverOptions = {}): Promise<Driver> {
  return isBun() ? openBun(path, opts) : openBetter(path, opts);
}

async function openBun(path: string, opts: OpenDriverOptions): Promise<Driver> {
  const { Database } = await import("bun:sqlite");
  const { drizzle } = await import("drizzle-orm/bun-sqlite");
  const { migrate } = await import("drizzle-orm/bun-sqlite/migrator");
  const client = opts.readonly
    ? new Database(path, { readonly: true })
    : new Database(path, { create: true, readwrite: true });
  const db = drizzle(client, { schema });
  return {
    kind: "bun:sqlite",
    db,
    exec: (s) => {
      client.exec(s);
    },
    prepare: (s) => {
      const st = client.prepare<SqlRow, SqlValue[]>(s);
      return {
        run: (...p) => {
          st.run(...p);
        },
        get: (...p) => st.get(...p) ?? undefined,
        all: (...p) => st.all(...p),
      };
    },
    transaction: <T>(fn: () => T): T => client.transaction(fn).immediate(),
    migrate: (folder) => migrate(db, { migrationsFolder: folder }),
    close: () => client.close(),
  };
}

async function openBetter(path: string, opts: OpenDriverOptions): Promise<Driver> {
  const { default: Database } = await import("better-sqlite3");
  const { drizzle } = await import("drizzle-orm/better-sqlite3");
  const { migrate } = await import("drizzle-orm/better-sqlite3/migrator");
  const client = new Database(path, {
    readonly: opts.readonly === true,
    fileMustExist: opts.readonly === true,
  });
  const db = drizzle(client, { schema });
  return {
    kind: "better-sqlite3",
    db,
    exec: (s) => {
      client.exec(s);
    },
    prepare: (s) => {
      const st = client.prepare<SqlValue[], SqlRow>(s);
      return {
        run: (...p) => {
          st.run(...p);
        },
        get: (...p) => st.get(...p),
        all: (...p) => st.all(...p),
      };
    },
    transaction: <T>(fn: () => T): T => client.transaction(fn).immediate(),
    migrate: (folder) => migrate(db, { migrationsFolder: folder }),
    close: () => client.close(),
  };
}
