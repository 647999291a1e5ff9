/**
 * Opening the replica: pragmas, integrity check, migrations, and recovery from an unusable file
 * (moved aside, never deleted; a fresh replica is refilled from peers). docs/sqlite-schema.md.
 */
import { chmodSync, existsSync, renameSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Logger, silentLogger } from "../observability/index.ts";
import { type Driver, openDriver } from "./driver.ts";
import { StoreError } from "./errors.ts";
import { HybridClock } from "./hlc.ts";
import { SqliteStore } from "./sqlite-store.ts";
import type { RecoveryInfo, Store } from "./store.ts";

export interface OpenStoreOptions {
  /** This node's name: the owner of local writes. */
  node: string;
  clock?: HybridClock;
  logger?: Logger;
  /** busy_timeout in ms (default 5000). */
  busyTimeoutMs?: number;
}

/**
 * drizzle migrations: KOSMOS_MIGRATIONS_DIR when set (a bundled or compiled agent, whose
 * import.meta.url is not in the source tree: the image sets it, the lab passes it), else the
 * repository's migrations/ next to this source file.
 */
const MIGRATIONS_FOLDER =
  process.env.KOSMOS_MIGRATIONS_DIR || fileURLToPath(new URL("../../migrations/", import.meta.url));

/**
 * Open (creating if needed) the replica at `path`, apply pending migrations, and recover from a
 * corrupt/unreadable file by moving it aside and starting fresh (see `store.recovered`).
 */
export async function openStore(path: string, opts: OpenStoreOptions): Promise<Store> {
  const logger = opts.logger ?? silentLogger();
  const busy = opts.busyTimeoutMs ?? 5000;
  let recovered: RecoveryInfo | null = null;
  let driver: Driver;
  try {
    driver = await prepareDriver(path, busy);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    if (path === ":memory:" || !existsSync(path)) {
      throw new StoreError(
        "STORE_OPEN_FAILED",
        `cannot open SQLite replica ${path}: ${reason}`,
        "check that the directory exists and is writable by the agent",
        { cause: err },
      );
    }
    if (err instanceof StoreError && err.code === "STORE_MIGRATION_FAILED" && !(await migrationsUsable())) {
      // the migrations themselves are missing or broken (packaging, KOSMOS_MIGRATIONS_DIR): the
      // replica is not at fault, and a fresh one could not be created either — leave it alone
      throw new StoreError(
        "STORE_MIGRATIONS_UNUSABLE",
        `cannot apply the schema migrations from ${MIGRATIONS_FOLDER}: ${reason}`,
        "the agent's migrations folder is missing or broken (check the image or KOSMOS_MIGRATIONS_DIR); the replica was left untouched",
        { cause: err },
      );
    }
    const movedTo = moveAside(path);
    logger.warn({ path, movedTo, reason }, "replica unusable: moved aside, starting with an empty replica");
    recovered = { movedTo, reason };
    try {
      driver = await prepareDriver(path, busy);
    } catch (err2) {
      throw new StoreError(
        "STORE_OPEN_FAILED",
        `cannot create a fresh SQLite replica at ${path}: ${err2 instanceof Error ? err2.message : String(err2)}`,
        "check disk space and permissions of the replica directory",
        { cause: err2 },
      );
    }
  }
  if (path !== ":memory:") {
    // applied.plan_json may hold derived IPsec keys (HostState.xfrm.states): owner-only file.
    try {
      chmodSync(path, 0o600);
    } catch (err) {
      logger.warn({ path, err }, "could not restrict replica file permissions to 0600");
    }
  }
  return new SqliteStore(path, driver, opts.node, opts.clock ?? new HybridClock(), logger, recovered);
}

/** Whether the migrations apply to an empty in-memory database (i.e. a failure is the file's fault). */
async function migrationsUsable(): Promise<boolean> {
  try {
    const d = await prepareDriver(":memory:", 0);
    d.close();
    return true;
  } catch {
    return false;
  }
}

async function prepareDriver(path: string, busyTimeoutMs: number): Promise<Driver> {
  const driver = await openDriver(path);
  try {
    driver.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    const check = driver.prepare("PRAGMA quick_check").all();
    const verdict = check.map((r) => String(Object.values(r)[0])).join("; ");
    if (verdict !== "ok") {
      throw new StoreError("STORE_CORRUPT", `PRAGMA quick_check failed: ${verdict}`, "the file is damaged");
    }
    driver.exec("PRAGMA journal_mode = WAL");
    driver.exec("PRAGMA synchronous = NORMAL");
    driver.exec("PRAGMA foreign_keys = ON");
    try {
      driver.migrate(MIGRATIONS_FOLDER);
    } catch (err) {
      throw new StoreError(
        "STORE_MIGRATION_FAILED",
        `migrations failed: ${err instanceof Error ? err.message : String(err)}`,
        `migrations are read from ${MIGRATIONS_FOLDER}`,
        { cause: err },
      );
    }
    return driver;
  } catch (err) {
    try {
      driver.close();
    } catch {
      // already unusable
    }
    throw err;
  }
}

/** Rename `path` (and its -wal/-shm companions) to `<path>.corrupt-<timestamp>`. Never deletes. */
function moveAside(path: string): string {
  const stamp = new Date().toISOString().replace(/[-:.]/g, "");
  let target = `${path}.corrupt-${stamp}`;
  for (let i = 1; existsSync(target); i++) target = `${path}.corrupt-${stamp}-${i}`;
  try {
    renameSync(path, target);
    for (const suffix of ["-wal", "-shm"]) {
      if (existsSync(path + suffix)) renameSync(path + suffix, target + suffix);
    }
  } catch (err) {
    throw new StoreError(
      "STORE_OPEN_FAILED",
      `replica ${path} is unusable and could not be moved aside: ${err instanceof Error ? err.message : String(err)}`,
      "move or remove the file by hand (keep a copy for analysis), then restart the agent",
      { cause: err },
    );
  }
  return target;
}

/**
 * Copy a replica, possibly in use by a running agent, to `target` without writing to it: `VACUUM
 * INTO` through a read-only connection gives a consistent snapshot (kosmosctl inspect reads the copy,
 * since openStore may migrate or repair the file it opens).
 */
export async function snapshotReplica(path: string, target: string): Promise<void> {
  const driver = await openDriver(path, { readonly: true });
  try {
    driver.exec(`VACUUM INTO '${target.replace(/'/g, "''")}'`);
  } finally {
    driver.close();
  }
}
