/**
 * SqliteStore: the Store over one SQLite connection. Replicated rows are checked (checks.ts),
 * merged last-writer-wins and counted into per-owner digests (owner-digests.ts) in one transaction;
 * range digests come from a per-owner version index (ranges.ts) built when anti-entropy first asks
 * for one after the owner's rows changed.
 */
import { and, eq, isNotNull } from "drizzle-orm";
import type { Logger } from "../observability/index.ts";
import {
  type Cluster,
  type Node,
  type ServiceEndpointsRecord,
  type ServiceImportRecord,
  type Topology,
  TopologySchema,
} from "../topology/index.ts";
import { checkRow, colsRecord, NULL_COLUMNS, type RejectReason, sameColumns, zodMessage } from "./checks.ts";
import {
  rowHash,
  type RangeDigest,
  rangeDigests,
  type VersionIndex,
  versionIndex,
  CONTROLLER_OWNER,
  type OwnerDigest,
  type ReplicatedRow,
  wins,
} from "../gossip/index.ts";
import type { Driver, RawStatement, SqlRow, SqlValue, StoreDb } from "./driver.ts";
import { StoreError } from "./errors.ts";
import type { HybridClock } from "./hlc.ts";
import { type LocalTables, SqliteLocalTables } from "./local-tables.ts";
import type { AppliedRecord, GatewayClaim, Member } from "./model.ts";
import { OwnerDigests } from "./owner-digests.ts";
import { nodeStatus } from "./schema.ts";
import type { ChangeListener, RecoveryInfo, Store, StoreStats } from "./store.ts";

/** The tables `seed` writes (controller-owned rows, replaced as a set). */
type SeedTable = "clusters" | "nodes" | "service_imports" | "service_endpoints";
import {
  REPLICATED_TABLES,
  type ReplicatedTableName,
  type ReplicatedTableSpec,
  TABLE_SPECS,
  tableSpec,
} from "./tables.ts";

interface TableStatements {
  spec: ReplicatedTableSpec;
  get: RawStatement;
  upsert: RawStatement;
  /** Rows of an owner with lo < version <= hi. */
  inRange: RawStatement;
  /** (version, name, deleted) of an owner's rows: the input of its version index. */
  versions: RawStatement;
  live: RawStatement;
  liveOfOwner: RawStatement;
  all: RawStatement;
}

function prepareTable(raw: Driver, name: ReplicatedTableName): TableStatements {
  const spec = TABLE_SPECS[name];
  const cols = ["name", "owner", "version", "deleted", ...spec.columns];
  const set = cols
    .slice(1)
    .map((c) => `${c} = excluded.${c}`)
    .join(", ");
  return {
    spec,
    get: raw.prepare(`SELECT * FROM ${name} WHERE name = ?`),
    upsert: raw.prepare(
      `INSERT INTO ${name} (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")}) ON CONFLICT(name) DO UPDATE SET ${set}`,
    ),
    inRange: raw.prepare(
      `SELECT * FROM ${name} WHERE owner = ? AND version > ? AND version <= ? ORDER BY version, name`,
    ),
    versions: raw.prepare(`SELECT version, name, deleted FROM ${name} WHERE owner = ?`),
    live: raw.prepare(`SELECT * FROM ${name} WHERE deleted = 0 ORDER BY name`),
    liveOfOwner: raw.prepare(`SELECT name FROM ${name} WHERE owner = ? AND deleted = 0`),
    all: raw.prepare(`SELECT * FROM ${name} ORDER BY name`),
  };
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export class SqliteStore implements Store {
  readonly driver: "bun:sqlite" | "better-sqlite3";
  readonly db: StoreDb;
  readonly stats: StoreStats = {
    merged: 0,
    rejected: { unknown_table: 0, not_owner: 0, invalid: 0, future: 0 },
  };
  private readonly t: Record<ReplicatedTableName, TableStatements>;
  private readonly digests: OwnerDigests;
  private readonly local: LocalTables;
  /**
   * Per-owner version indexes for range digests; dropped when the owner's rows change (only ever
   * dropped inside a transaction, so a rolled back one leaves none stale).
   */
  private readonly indexes = new Map<string, VersionIndex>();
  private readonly listeners = new Set<ChangeListener>();
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
    this.t = Object.fromEntries(REPLICATED_TABLES.map((name) => [name, prepareTable(raw, name)])) as Record<
      ReplicatedTableName,
      TableStatements
    >;
    this.local = new SqliteLocalTables(raw.db, () => this.assertOpen());
    this.digests = new OwnerDigests(raw);
    if (!this.digests.verify(this.rows())) {
      logger.warn({ path }, "owner_digests did not match the rows; rebuilt");
    }
    const maxVersion = this.digests.maxVersion();
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
    return this.digests.list();
  }

  rowsOf(owner: string, sinceVersion = -1): ReplicatedRow[] {
    return this.rowsInRange(owner, sinceVersion, Number.MAX_SAFE_INTEGER);
  }

  rowsInRange(owner: string, lo: number, hi: number): ReplicatedRow[] {
    const out: ReplicatedRow[] = [];
    for (const name of REPLICATED_TABLES) {
      const st = this.t[name];
      for (const r of st.inRange.all(owner, lo, hi)) out.push(this.fromStored(st.spec, r));
    }
    return out.sort((a, b) => a.version - b.version || cmp(a.table, b.table) || cmp(a.key, b.key));
  }

  rangeDigest(owner: string, lo: number, hi: number, parts: number): RangeDigest[] {
    return rangeDigests(this.versionIndex(owner), lo, hi, parts);
  }

  merge(rows: ReplicatedRow[]): ReplicatedRow[] {
    this.assertOpen();
    const changed = new Map<string, ReplicatedRow>();
    const rejected: Record<RejectReason, number> = { unknown_table: 0, not_owner: 0, invalid: 0, future: 0 };
    let firstReject: string | undefined;
    const observe = (version: number) => this.clock.observe(version);
    this.tx(() => {
      for (const input of rows) {
        const c = checkRow(input, observe);
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
        this.apply(result, NULL_COLUMNS[table]);
        return;
      }
      const c = checkRow({
        table,
        key,
        owner: this.node,
        version: 0,
        deleted: false,
        data: { name: key, ...data },
      });
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
    const wanted: Array<{ table: SeedTable; items: Array<{ name: string }> }> = [
      { table: "clusters", items: parsed.data.clusters },
      { table: "nodes", items: parsed.data.nodes },
      // A topology without the MCS lists (an older controller) leaves the service rows alone.
      ...(parsed.data.serviceImports
        ? [{ table: "service_imports" as const, items: parsed.data.serviceImports }]
        : []),
      ...(parsed.data.serviceEndpoints
        ? [{ table: "service_endpoints" as const, items: parsed.data.serviceEndpoints }]
        : []),
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
      for (const { table, items } of wanted) changed.push(...this.seedTable(table, items, owner));
    });
    this.emit(changed);
    return changed;
  }

  /** Inside seed's transaction: upsert changed items of one table, tombstone the owner's others. */
  private seedTable(table: SeedTable, items: Array<{ name: string }>, owner: string): ReplicatedRow[] {
    const st = this.t[table];
    const changed: ReplicatedRow[] = [];
    const present = new Set<string>();
    for (const item of items) {
      present.add(item.name);
      const cols = st.spec.toColumns(item as unknown as Record<string, unknown>);
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
      const row: ReplicatedRow = { table, key, owner, version: this.clock.tick(), deleted: true, data: null };
      this.apply(row, NULL_COLUMNS[table]);
      changed.push(row);
    }
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
    const serviceImports = this.t.service_imports.live
      .all()
      .map((r) => this.t.service_imports.spec.fromColumns(r) as unknown as ServiceImportRecord);
    const serviceEndpoints = this.t.service_endpoints.live
      .all()
      .map((r) => this.t.service_endpoints.spec.fromColumns(r) as unknown as ServiceEndpointsRecord);
    if (serviceImports.length === 0 && serviceEndpoints.length === 0) return { clusters, nodes };
    return { clusters, nodes, serviceImports, serviceEndpoints };
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

  gatewayClaims(): GatewayClaim[] {
    // An indexed read of the few claiming rows, not a scan of the whole replica on every pass.
    const rows = this.db
      .select({ node: nodeStatus.name, cluster: nodeStatus.gatewayFor, since: nodeStatus.gatewaySince })
      .from(nodeStatus)
      .where(
        and(eq(nodeStatus.deleted, 0), isNotNull(nodeStatus.gatewayFor), isNotNull(nodeStatus.gatewaySince)),
      )
      .all();
    return rows.map((r) => ({ node: r.node, cluster: r.cluster as string, since: r.since as number }));
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  // ------------------------------------------------------------------------------------------
  // Local-only tables (local-tables.ts)
  // ------------------------------------------------------------------------------------------

  upsertMember(member: Member): void {
    this.local.upsertMember(member);
  }
  removeMember(name: string): void {
    this.local.removeMember(name);
  }
  listMembers(): Member[] {
    return this.local.listMembers();
  }
  saveApplied<TPlan>(record: AppliedRecord<TPlan>): void {
    this.local.saveApplied(record);
  }
  loadApplied<TPlan = unknown>(): AppliedRecord<TPlan> | null {
    return this.local.loadApplied<TPlan>();
  }
  getMeta(key: string): string | undefined {
    return this.local.getMeta(key);
  }
  setMeta(key: string, value: string): void {
    this.local.setMeta(key, value);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    this.indexes.clear();
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

  /** LWW apply of a checked row inside a transaction. True when it changed local state. */
  private apply(row: ReplicatedRow, cols: SqlValue[]): boolean {
    const st = this.t[row.table as ReplicatedTableName];
    const cur = st.get.get(row.key);
    const curOwner = cur ? String(cur.owner) : "";
    const curVersion = cur ? Number(cur.version) : 0;
    if (cur && !wins(row, { owner: curOwner, version: curVersion })) return false;
    st.upsert.run(row.key, row.owner, row.version, row.deleted ? 1 : 0, ...cols);
    const previous = cur
      ? {
          owner: curOwner,
          version: curVersion,
          hash: rowHash({ table: row.table, key: row.key, version: curVersion, deleted: cur.deleted === 1 }),
        }
      : undefined;
    this.digests.replaced({ owner: row.owner, version: row.version, hash: rowHash(row) }, previous);
    this.indexes.delete(row.owner);
    if (previous) this.indexes.delete(previous.owner);
    return true;
  }

  /** The owner's (version, row hash) index: one read of its rows' versions, kept until they change. */
  private versionIndex(owner: string): VersionIndex {
    let index = this.indexes.get(owner);
    if (!index) {
      const entries: Array<{ version: number; hash: string }> = [];
      for (const table of REPLICATED_TABLES) {
        for (const r of this.t[table].versions.all(owner)) {
          const version = Number(r.version);
          const key = String(r.name);
          entries.push({ version, hash: rowHash({ table, key, version, deleted: r.deleted === 1 }) });
        }
      }
      index = versionIndex(entries);
      this.indexes.set(owner, index);
    }
    return index;
  }

  private tx(fn: () => void): void {
    try {
      this.raw.transaction(() => {
        fn();
        this.digests.flush();
      });
    } catch (err) {
      this.digests.load();
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
