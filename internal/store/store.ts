/**
 * The node-local SQLite replica: openStore() (migrations, corruption recovery) and the Store
 * (ReplicaPort for gossip + local writes, seed, snapshot, change feed, local-only tables).
 */
import { chmodSync, existsSync, renameSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { eq } from "drizzle-orm";
import type { z } from "zod";
import { type Logger, silentLogger } from "../observability/index.ts";
import { type Cluster, type Node, type Topology, TopologySchema } from "../topology/index.ts";
import { ZERO_HASH, rowHash, xorHash } from "./digest.ts";
import {
  type Driver,
  type RawStatement,
  type SqlRow,
  type SqlValue,
  type StoreDb,
  openDriver,
} from "./driver.ts";
import { StoreError } from "./errors.ts";
import { type AppliedRecord, type Member, MemberSchema } from "./model.ts";
import { HybridClock } from "./hlc.ts";
import {
  CONTROLLER_OWNER,
  type OwnerDigest,
  type ReplicaPort,
  type ReplicatedRow,
  wins,
} from "./replicated.ts";
import { applied, members, meta } from "./schema.ts";
import {
  REPLICATED_TABLES,
  type ReplicatedTableName,
  type ReplicatedTableSpec,
  TABLE_SPECS,
  tableSpec,
} from "./tables.ts";

export interface OpenStoreOptions {
  /** This node's name: the owner of local writes. */
  node: string;
  clock?: HybridClock;
  logger?: Logger;
  /** busy_timeout in ms (default 5000). */
  busyTimeoutMs?: number;
}

/** Set when the file could not be used and was moved aside: the replica starts empty. */
export interface RecoveryInfo {
  /** Where the unusable file now is (`<path>.corrupt-<timestamp>`). */
  movedTo: string;
  reason: string;
}

export type RejectReason = "unknown_table" | "not_owner" | "invalid" | "future";

export interface StoreStats {
  /** Rows that changed local state via merge(). */
  merged: number;
  /** Remote rows rejected by merge(), per reason. */
  rejected: Record<RejectReason, number>;
}

export type ChangeListener = (rows: ReplicatedRow[]) => void;

export interface Store extends ReplicaPort {
  readonly node: string;
  readonly path: string;
  readonly driver: "bun:sqlite" | "better-sqlite3";
  /** Drizzle database over the same connection (query exec_sessions, workflows, ...). */
  readonly db: StoreDb;
  readonly clock: HybridClock;
  /** Non-null when the previous file was corrupt and moved aside (rebuild from peers). */
  readonly recovered: RecoveryInfo | null;
  readonly stats: StoreStats;

  /** Local write by this node as owner (ticks the clock). null data = delete. Null when nothing changed. */
  writeLocal(
    table: ReplicatedTableName,
    key: string,
    data: Record<string, unknown> | null,
  ): ReplicatedRow | null;
  /** Upsert changed clusters/nodes as `owner`, tombstone that owner's rows no longer present. */
  seed(topology: Topology, owner?: string): ReplicatedRow[];
  /** Current live clusters and nodes, sorted by name. */
  snapshot(): Topology;
  /** One replicated row, tombstones included. */
  get(table: ReplicatedTableName, key: string): ReplicatedRow | undefined;
  /** Every replicated row (tombstones included), sorted by table then key. */
  rows(): ReplicatedRow[];
  onChange(listener: ChangeListener): () => void;

  upsertMember(member: Member): void;
  removeMember(name: string): void;
  listMembers(): Member[];
  saveApplied<TPlan>(record: AppliedRecord<TPlan>): void;
  loadApplied<TPlan = unknown>(): AppliedRecord<TPlan> | null;
  getMeta(key: string): string | undefined;
  setMeta(key: string, value: string): void;
  close(): void;
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

function zodMessage(prefix: string, err: z.ZodError): string {
  const issue = err.issues[0];
  if (!issue) return `${prefix}: invalid`;
  const path = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
  return `${prefix}${path}: ${issue.message}`;
}

interface TableStatements {
  spec: ReplicatedTableSpec;
  get: RawStatement;
  upsert: RawStatement;
  byOwner: RawStatement;
  live: RawStatement;
  liveOfOwner: RawStatement;
  all: RawStatement;
  nulls: null[];
}

type Checked =
  | { ok: true; row: ReplicatedRow; cols: SqlValue[] }
  | { ok: false; reason: RejectReason; message: string };

class SqliteStore implements Store {
  readonly driver: "bun:sqlite" | "better-sqlite3";
  readonly db: StoreDb;
  readonly stats: StoreStats = {
    merged: 0,
    rejected: { unknown_table: 0, not_owner: 0, invalid: 0, future: 0 },
  };
  private readonly t: Record<ReplicatedTableName, TableStatements>;
  private readonly digests = new Map<string, OwnerDigest>();
  private readonly dirty = new Set<string>();
  private readonly listeners = new Set<ChangeListener>();
  private readonly maxOfOwner: RawStatement;
  private readonly putDigest: RawStatement;
  private readonly delDigest: RawStatement;
  private closed = false;

  constructor(
    readonly path: string,
    private readonly raw: Driver,
    readonly node: string,
    readonly clock: HybridClock,
    private readonly logger: Logger,
    readonly recovered: RecoveryInfo | null,
  ) {
    this.driver = raw.kind;
    this.db = raw.db;
    const t = {} as Record<ReplicatedTableName, TableStatements>;
    for (const name of REPLICATED_TABLES) {
      const spec = TABLE_SPECS[name];
      const cols = ["name", "owner", "version", "deleted", ...spec.columns];
      const set = cols
        .slice(1)
        .map((c) => `${c} = excluded.${c}`)
        .join(", ");
      t[name] = {
        spec,
        get: raw.prepare(`SELECT * FROM ${name} WHERE name = ?`),
        upsert: raw.prepare(
          `INSERT INTO ${name} (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")}) ON CONFLICT(name) DO UPDATE SET ${set}`,
        ),
        byOwner: raw.prepare(`SELECT * FROM ${name} WHERE owner = ? AND version > ? ORDER BY version, name`),
        live: raw.prepare(`SELECT * FROM ${name} WHERE deleted = 0 ORDER BY name`),
        liveOfOwner: raw.prepare(`SELECT name FROM ${name} WHERE owner = ? AND deleted = 0`),
        all: raw.prepare(`SELECT * FROM ${name} ORDER BY name`),
        nulls: spec.columns.map(() => null),
      };
    }
    this.t = t;
    this.maxOfOwner = raw.prepare(
      `SELECT max(v) AS v FROM (${REPLICATED_TABLES.map((n) => `SELECT max(version) AS v FROM ${n} WHERE owner = ?`).join(" UNION ALL ")})`,
    );
    this.putDigest = raw.prepare(
      "INSERT INTO owner_digests (owner, max_version, count, hash) VALUES (?, ?, ?, ?) ON CONFLICT(owner) DO UPDATE SET max_version = excluded.max_version, count = excluded.count, hash = excluded.hash",
    );
    this.delDigest = raw.prepare("DELETE FROM owner_digests WHERE owner = ?");
    this.verifyDigests();
    let maxVersion = 0;
    for (const d of this.digests.values()) maxVersion = Math.max(maxVersion, d.maxVersion);
    if (maxVersion > 0 && !clock.observe(maxVersion)) {
      logger.warn({ maxVersion }, "replica holds versions far ahead of the wall clock (clock moved back?)");
    }
    if (this.getMeta("node") !== node) {
      const previous = this.getMeta("node");
      if (previous !== undefined)
        logger.warn({ previous, node }, "replica file was used by another node name");
      this.setMeta("node", node);
    }
  }

  // ------------------------------------------------------------------------------------------
  // ReplicaPort
  // ------------------------------------------------------------------------------------------

  digest(): OwnerDigest[] {
    return [...this.digests.values()]
      .map((d) => ({ ...d }))
      .sort((a, b) => (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0));
  }

  rowsOf(owner: string, sinceVersion = -1): ReplicatedRow[] {
    const out: ReplicatedRow[] = [];
    for (const name of REPLICATED_TABLES) {
      const st = this.t[name];
      for (const r of st.byOwner.all(owner, sinceVersion)) out.push(this.fromStored(st.spec, r));
    }
    return out.sort((a, b) => a.version - b.version || cmp(a.table, b.table) || cmp(a.key, b.key));
  }

  merge(rows: ReplicatedRow[]): ReplicatedRow[] {
    this.assertOpen();
    const changed = new Map<string, ReplicatedRow>();
    const rejected: Record<RejectReason, number> = { unknown_table: 0, not_owner: 0, invalid: 0, future: 0 };
    let firstReject: string | undefined;
    this.tx(() => {
      for (const input of rows) {
        const c = this.check(input, true);
        if (!c.ok) {
          rejected[c.reason]++;
          firstReject ??= c.message;
          continue;
        }
        if (this.apply(c.row, c.cols)) changed.set(`${c.row.table}\0${c.row.key}`, c.row);
      }
    });
    let total = 0;
    for (const k of Object.keys(rejected) as RejectReason[]) {
      this.stats.rejected[k] += rejected[k];
      total += rejected[k];
    }
    if (total > 0) this.logger.warn({ rejected, example: firstReject }, "merge rejected rows");
    const out = [...changed.values()];
    this.stats.merged += out.length;
    this.emit(out);
    return out;
  }

  // ------------------------------------------------------------------------------------------
  // Local writes
  // ------------------------------------------------------------------------------------------

  writeLocal(
    table: ReplicatedTableName,
    key: string,
    data: Record<string, unknown> | null,
  ): ReplicatedRow | null {
    this.assertOpen();
    const spec = this.specOrThrow(table);
    if (!spec.mayWrite(this.node, key)) {
      throw new StoreError(
        "STORE_NOT_OWNER",
        `node ${this.node} may not write ${table}/${key}`,
        table === "clusters"
          ? "cluster rows are written by the controller only (seed)"
          : "a node writes only its own rows (key = its node name)",
      );
    }
    let result: ReplicatedRow | null = null;
    this.tx(() => {
      const cur = this.t[table].get.get(key);
      if (data === null) {
        if (!cur || cur.deleted === 1) return;
        result = { table, key, owner: this.node, version: this.clock.tick(), deleted: true, data: null };
        this.apply(result, this.t[table].nulls);
        return;
      }
      const c = this.check(
        { table, key, owner: this.node, version: 0, deleted: false, data: { name: key, ...data } },
        false,
      );
      if (!c.ok) throw new StoreError("STORE_INVALID_ROW", c.message, "fix the field named in the message");
      if (cur && cur.deleted === 0 && sameColumns(spec, cur, c.cols)) return;
      result = { ...c.row, version: this.clock.tick() };
      this.apply(result, c.cols);
    });
    if (result) this.emit([result]);
    return result;
  }

  seed(topology: Topology, owner: string = CONTROLLER_OWNER): ReplicatedRow[] {
    this.assertOpen();
    const parsed = TopologySchema.safeParse(topology);
    if (!parsed.success) {
      throw new StoreError(
        "STORE_INVALID_ROW",
        zodMessage("topology", parsed.error),
        "fix the seed topology",
      );
    }
    const wanted: Array<{ table: "clusters" | "nodes"; items: Array<Cluster | Node> }> = [
      { table: "clusters", items: parsed.data.clusters },
      { table: "nodes", items: parsed.data.nodes },
    ];
    for (const { table, items } of wanted) {
      for (const item of items) {
        if (!TABLE_SPECS[table].mayWrite(owner, item.name)) {
          throw new StoreError(
            "STORE_NOT_OWNER",
            `owner ${owner} may not write ${table}/${item.name}`,
            `seed clusters as "${CONTROLLER_OWNER}"`,
          );
        }
      }
    }
    const changed: ReplicatedRow[] = [];
    this.tx(() => {
      for (const { table, items } of wanted) {
        const st = this.t[table];
        const present = new Set<string>();
        for (const item of items) {
          present.add(item.name);
          const data = item as unknown as Record<string, unknown>;
          const cols = st.spec.toColumns(data);
          const cur = st.get.get(item.name);
          if (cur && cur.deleted === 0 && sameColumns(st.spec, cur, cols)) continue;
          const row: ReplicatedRow = {
            table,
            key: item.name,
            owner,
            version: this.clock.tick(),
            deleted: false,
            data: st.spec.fromColumns({ name: item.name, ...colsRecord(st.spec, cols) }),
          };
          this.apply(row, cols);
          changed.push(row);
        }
        for (const r of st.liveOfOwner.all(owner)) {
          const key = String(r.name);
          if (present.has(key)) continue;
          const row: ReplicatedRow = {
            table,
            key,
            owner,
            version: this.clock.tick(),
            deleted: true,
            data: null,
          };
          this.apply(row, st.nulls);
          changed.push(row);
        }
      }
    });
    this.emit(changed);
    return changed;
  }

  // ------------------------------------------------------------------------------------------
  // Reads
  // ------------------------------------------------------------------------------------------

  snapshot(): Topology {
    const clusters = this.t.clusters.live
      .all()
      .map((r) => this.t.clusters.spec.fromColumns(r) as unknown as Cluster);
    const nodes = this.t.nodes.live.all().map((r) => this.t.nodes.spec.fromColumns(r) as unknown as Node);
    return { clusters, nodes };
  }

  get(table: ReplicatedTableName, key: string): ReplicatedRow | undefined {
    const st = this.t[this.specOrThrow(table).name];
    const r = st.get.get(key);
    return r ? this.fromStored(st.spec, r) : undefined;
  }

  rows(): ReplicatedRow[] {
    const out: ReplicatedRow[] = [];
    for (const name of REPLICATED_TABLES) {
      const st = this.t[name];
      for (const r of st.all.all()) out.push(this.fromStored(st.spec, r));
    }
    return out;
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  // ------------------------------------------------------------------------------------------
  // Local-only tables
  // ------------------------------------------------------------------------------------------

  upsertMember(member: Member): void {
    this.assertOpen();
    const parsed = MemberSchema.safeParse(member);
    if (!parsed.success) {
      throw new StoreError("STORE_INVALID_ROW", zodMessage("member", parsed.error), "fix the member record");
    }
    const m = parsed.data;
    const values = {
      name: m.name,
      state: m.state,
      incarnation: m.incarnation,
      address: m.address ?? null,
      updatedAt: m.updatedAt,
    };
    this.db.insert(members).values(values).onConflictDoUpdate({ target: members.name, set: values }).run();
  }

  removeMember(name: string): void {
    this.assertOpen();
    this.db.delete(members).where(eq(members.name, name)).run();
  }

  listMembers(): Member[] {
    return this.db
      .select()
      .from(members)
      .orderBy(members.name)
      .all()
      .map((r) => {
        const m: Member = {
          name: r.name,
          state: r.state as Member["state"],
          incarnation: r.incarnation,
          updatedAt: r.updatedAt,
        };
        if (r.address !== null) m.address = r.address;
        return m;
      });
  }

  saveApplied<TPlan>(record: AppliedRecord<TPlan>): void {
    this.assertOpen();
    const values = {
      id: 1,
      planJson: JSON.stringify(record.plan),
      planHash: record.planHash,
      appliedAt: record.appliedAt,
      reportJson: record.report === undefined ? null : JSON.stringify(record.report),
      capabilitiesJson: record.capabilities === undefined ? null : JSON.stringify(record.capabilities),
    };
    this.db.insert(applied).values(values).onConflictDoUpdate({ target: applied.id, set: values }).run();
  }

  loadApplied<TPlan = unknown>(): AppliedRecord<TPlan> | null {
    const r = this.db.select().from(applied).where(eq(applied.id, 1)).get();
    if (!r) return null;
    const out: AppliedRecord<TPlan> = {
      plan: JSON.parse(r.planJson) as TPlan,
      planHash: r.planHash,
      appliedAt: r.appliedAt,
    };
    if (r.reportJson !== null) out.report = JSON.parse(r.reportJson);
    if (r.capabilitiesJson !== null) out.capabilities = JSON.parse(r.capabilitiesJson);
    return out;
  }

  getMeta(key: string): string | undefined {
    return this.db.select().from(meta).where(eq(meta.key, key)).get()?.value;
  }

  setMeta(key: string, value: string): void {
    this.assertOpen();
    this.db
      .insert(meta)
      .values({ key, value })
      .onConflictDoUpdate({ target: meta.key, set: { value } })
      .run();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    this.raw.close();
  }

  // ------------------------------------------------------------------------------------------
  // Internals
  // ------------------------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new StoreError("STORE_CLOSED", `replica ${this.path} is closed`, "open it again");
  }

  private specOrThrow(table: string): ReplicatedTableSpec {
    const spec = tableSpec(table);
    if (!spec) {
      throw new StoreError(
        "STORE_UNKNOWN_TABLE",
        `unknown replicated table "${table}"`,
        `replicated tables are ${REPLICATED_TABLES.join(", ")}`,
      );
    }
    return spec;
  }

  /** Validate a row (shape, ownership, data; remote rows also against the clock). */
  private check(input: ReplicatedRow, remote: boolean): Checked {
    const spec = tableSpec(input?.table);
    if (!spec)
      return { ok: false, reason: "unknown_table", message: `unknown table "${String(input?.table)}"` };
    const where = `${spec.name}/${String(input.key)}`;
    if (typeof input.key !== "string" || input.key.length === 0) {
      return { ok: false, reason: "invalid", message: `${spec.name}: key must be a non-empty string` };
    }
    if (typeof input.owner !== "string" || input.owner.length === 0) {
      return { ok: false, reason: "invalid", message: `${where}: owner must be a non-empty string` };
    }
    if (!Number.isSafeInteger(input.version) || input.version < 0) {
      return {
        ok: false,
        reason: "invalid",
        message: `${where}: version must be a non-negative safe integer`,
      };
    }
    if (typeof input.deleted !== "boolean") {
      return { ok: false, reason: "invalid", message: `${where}: deleted must be a boolean` };
    }
    if (!spec.mayWrite(input.owner, input.key)) {
      return { ok: false, reason: "not_owner", message: `${where}: owner "${input.owner}" may not write it` };
    }
    if (remote && !this.clock.observe(input.version)) {
      return {
        ok: false,
        reason: "future",
        message: `${where}: version ${input.version} is too far in the future`,
      };
    }
    if (input.deleted) {
      if (input.data !== null && input.data !== undefined) {
        return { ok: false, reason: "invalid", message: `${where}: data must be null on a tombstone` };
      }
      return {
        ok: true,
        row: {
          table: spec.name,
          key: input.key,
          owner: input.owner,
          version: input.version,
          deleted: true,
          data: null,
        },
        cols: this.t[spec.name].nulls,
      };
    }
    const parsed = spec.schema.safeParse(input.data);
    if (!parsed.success)
      return { ok: false, reason: "invalid", message: zodMessage(`${where}: data`, parsed.error) };
    if (parsed.data.name !== input.key) {
      return { ok: false, reason: "invalid", message: `${where}: data.name must equal the key` };
    }
    const cols = spec.toColumns(parsed.data);
    return {
      ok: true,
      row: {
        table: spec.name,
        key: input.key,
        owner: input.owner,
        version: input.version,
        deleted: false,
        data: spec.fromColumns({ name: input.key, ...colsRecord(spec, cols) }),
      },
      cols,
    };
  }

  /** LWW apply of a checked row inside a transaction. True when it changed local state. */
  private apply(row: ReplicatedRow, cols: SqlValue[]): boolean {
    const st = this.t[row.table as ReplicatedTableName];
    const cur = st.get.get(row.key);
    const curOwner = cur ? String(cur.owner) : "";
    const curVersion = cur ? Number(cur.version) : 0;
    if (cur && !wins(row, { owner: curOwner, version: curVersion })) return false;
    st.upsert.run(row.key, row.owner, row.version, row.deleted ? 1 : 0, ...cols);
    const h = rowHash(row);
    if (cur) {
      const old = rowHash({
        table: row.table,
        key: row.key,
        version: curVersion,
        deleted: cur.deleted === 1,
      });
      if (curOwner === row.owner) {
        const d = this.digests.get(row.owner)!;
        d.hash = xorHash(xorHash(d.hash, old), h);
        if (row.version > d.maxVersion) d.maxVersion = row.version;
        this.dirty.add(row.owner);
        return true;
      }
      this.digestRemove(curOwner, old, curVersion);
    }
    this.digestAdd(row.owner, h, row.version);
    return true;
  }

  private digestAdd(owner: string, h: string, version: number): void {
    const d = this.digests.get(owner);
    if (d) {
      d.count += 1;
      d.hash = xorHash(d.hash, h);
      if (version > d.maxVersion) d.maxVersion = version;
    } else {
      this.digests.set(owner, { owner, maxVersion: version, count: 1, hash: h });
    }
    this.dirty.add(owner);
  }

  private digestRemove(owner: string, h: string, version: number): void {
    const d = this.digests.get(owner);
    if (!d) return;
    d.count -= 1;
    d.hash = xorHash(d.hash, h);
    if (d.count <= 0) {
      this.digests.delete(owner);
    } else if (version >= d.maxVersion) {
      const args = REPLICATED_TABLES.map(() => owner);
      d.maxVersion = Number(this.maxOfOwner.get(...args)?.v ?? 0);
    }
    this.dirty.add(owner);
  }

  private flushDigests(): void {
    for (const owner of this.dirty) {
      const d = this.digests.get(owner);
      if (d) this.putDigest.run(owner, d.maxVersion, d.count, d.hash);
      else this.delDigest.run(owner);
    }
    this.dirty.clear();
  }

  private loadDigests(): void {
    this.digests.clear();
    this.dirty.clear();
    for (const r of this.raw.prepare("SELECT owner, max_version, count, hash FROM owner_digests").all()) {
      const owner = String(r.owner);
      this.digests.set(owner, {
        owner,
        maxVersion: Number(r.max_version),
        count: Number(r.count),
        hash: String(r.hash),
      });
    }
  }

  /** Load owner_digests and check them against the rows; rebuild if they drifted (hand edits). */
  private verifyDigests(): void {
    this.loadDigests();
    const fresh = new Map<string, OwnerDigest>();
    for (const row of this.rows()) {
      const d = fresh.get(row.owner) ?? { owner: row.owner, maxVersion: 0, count: 0, hash: ZERO_HASH };
      d.count += 1;
      d.hash = xorHash(d.hash, rowHash(row));
      if (row.version > d.maxVersion) d.maxVersion = row.version;
      fresh.set(row.owner, d);
    }
    const same =
      fresh.size === this.digests.size &&
      [...fresh.values()].every((f) => {
        const d = this.digests.get(f.owner);
        return d && d.count === f.count && d.hash === f.hash && d.maxVersion === f.maxVersion;
      });
    if (same) return;
    this.logger.warn({ path: this.path }, "owner_digests did not match the rows; rebuilt");
    this.raw.transaction(() => {
      this.raw.exec("DELETE FROM owner_digests");
      for (const d of fresh.values()) this.putDigest.run(d.owner, d.maxVersion, d.count, d.hash);
    });
    this.loadDigests();
  }

  private tx(fn: () => void): void {
    try {
      this.raw.transaction(() => {
        fn();
        this.flushDigests();
      });
    } catch (err) {
      this.loadDigests();
      throw err;
    }
  }

  private fromStored(spec: ReplicatedTableSpec, r: SqlRow): ReplicatedRow {
    const deleted = r.deleted === 1;
    return {
      table: spec.name,
      key: String(r.name),
      owner: String(r.owner),
      version: Number(r.version),
      deleted,
      data: deleted ? null : spec.fromColumns(r),
    };
  }

  private emit(rows: ReplicatedRow[]): void {
    if (rows.length === 0) return;
    for (const l of this.listeners) {
      try {
        l(rows);
      } catch (err) {
        this.logger.error({ err }, "store change listener failed");
      }
    }
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function colsRecord(spec: ReplicatedTableSpec, cols: SqlValue[]): SqlRow {
  const r: SqlRow = {};
  spec.columns.forEach((c, i) => {
    r[c] = cols[i] ?? null;
  });
  return r;
}

function sameColumns(spec: ReplicatedTableSpec, cur: SqlRow, cols: SqlValue[]): boolean {
  return spec.columns.every((c, i) => (cur[c] ?? null) === (cols[i] ?? null));
}
