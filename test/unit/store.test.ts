import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { desc, eq, sql } from "drizzle-orm";
import { execSessions, openStore, StoreError, workflowSteps, workflows } from "../../internal/store/index.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "kosmos-store-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("openStore", () => {
  test("creates the schema; opening twice is idempotent and keeps data", async () => {
    const path = join(dir, "replica.db");
    const a = await openStore(path, { node: "n1" });
    expect(a.driver).toBe("bun:sqlite");
    expect(a.recovered).toBeNull();
    a.setMeta("cluster", "c1");
    a.close();
    const b = await openStore(path, { node: "n1" });
    expect(b.recovered).toBeNull();
    expect(b.getMeta("cluster")).toBe("c1");
    expect(b.getMeta("node")).toBe("n1");
    // drizzle's migrator journal: one row per migration file, not re-applied on the second open
    const migrations = b.db.all<{ n: number }>(sql`SELECT count(*) AS n FROM __drizzle_migrations`);
    expect(migrations[0]?.n).toBe(
      readdirSync(new URL("../../migrations/", import.meta.url)).filter((f) => f.endsWith(".sql")).length,
    );
    const tables = b.db
      .all<{ name: string }>(sql`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
      .map((r) => r.name);
    for (const t of [
      "applied",
      "clusters",
      "exec_sessions",
      "members",
      "meta",
      "node_status",
      "nodes",
      "owner_digests",
      "workflow_steps",
      "workflows",
    ]) {
      expect(tables).toContain(t);
    }
    const mode = b.db.all<{ journal_mode: string }>(sql`PRAGMA journal_mode`);
    expect(mode[0]?.journal_mode).toBe("wal");
    b.close();
  });

  test("a corrupt file is moved aside intact and a fresh replica is created", async () => {
    const path = join(dir, "replica.db");
    const garbage = "this is not a sqlite database\n".repeat(200);
    writeFileSync(path, garbage);
    const s = await openStore(path, { node: "n1" });
    expect(s.recovered).not.toBeNull();
    const moved = readdirSync(dir).filter((f) => f.startsWith("replica.db.corrupt-"));
    expect(moved).toHaveLength(1);
    expect(s.recovered?.movedTo).toBe(join(dir, moved[0]!));
    expect(readFileSync(join(dir, moved[0]!), "utf8")).toBe(garbage);
    // the fresh store works
    s.writeLocal("node_status", "n1", { endpoint: "https://10.0.0.1:10250" });
    expect(s.get("node_status", "n1")?.data?.endpoint).toBe("https://10.0.0.1:10250");
    s.close();
    const again = await openStore(path, { node: "n1" });
    expect(again.recovered).toBeNull();
    expect(again.get("node_status", "n1")?.deleted).toBe(false);
    again.close();
  });

  test("missing migrations (packaging error) are a typed error; a good replica is left untouched", async () => {
    const path = join(dir, "replica.db");
    const s = await openStore(path, { node: "n1" });
    s.writeLocal("node_status", "n1", { endpoint: "https://10.0.0.1:10250" });
    s.close();
    // the migrations folder is read at import: a child process with KOSMOS_MIGRATIONS_DIR pointing nowhere
    const storeModule = join(import.meta.dir, "../../internal/store/index.ts");
    const child = Bun.spawnSync(
      [
        process.execPath,
        "-e",
        `const { openStore } = await import(${JSON.stringify(storeModule)});
         try { await openStore(${JSON.stringify(path)}, { node: "n1" }); console.log("opened"); }
         catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, hint: e.hint })); }`,
      ],
      { env: { ...process.env, KOSMOS_MIGRATIONS_DIR: join(dir, "no-such-migrations") } },
    );
    const out = JSON.parse(child.stdout.toString().trim()) as { code: string; message: string; hint: string };
    expect(out.code).toBe("STORE_MIGRATIONS_UNUSABLE");
    expect(out.message).toContain("no-such-migrations");
    expect(out.hint).toContain("left untouched");
    expect(readdirSync(dir).filter((f) => f.includes("corrupt"))).toEqual([]);
    expect(existsSync(path)).toBe(true);
    const again = await openStore(path, { node: "n1" });
    expect(again.recovered).toBeNull();
    expect(again.get("node_status", "n1")?.data?.endpoint).toBe("https://10.0.0.1:10250");
    again.close();
  });

  test("a missing directory is a typed error with a hint, nothing is created", async () => {
    const path = join(dir, "missing", "replica.db");
    const err = await openStore(path, { node: "n1" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe("STORE_OPEN_FAILED");
    expect((err as StoreError).hint).toContain("directory");
    expect(existsSync(join(dir, "missing"))).toBe(false);
  });

  test("owner_digests out of step with the rows (hand edit) are rebuilt at open", async () => {
    const path = join(dir, "replica.db");
    const a = await openStore(path, { node: "n1" });
    a.writeLocal("node_status", "n1", { agentVersion: "1" });
    const good = a.digest();
    a.db.run(sql`UPDATE owner_digests SET hash = '0000000000000001', count = 7`);
    a.close();
    const b = await openStore(path, { node: "n1" });
    expect(b.digest()).toEqual(good);
    expect(b.db.all(sql`SELECT owner, count, hash FROM owner_digests`)).toEqual([
      { owner: "n1", count: 1, hash: good[0]!.hash },
    ]);
    b.close();
  });

  test(":memory: works", async () => {
    const s = await openStore(":memory:", { node: "n1" });
    expect(s.digest()).toEqual([]);
    s.close();
    expect(() => s.setMeta("a", "b")).toThrow(StoreError);
  });
});

describe("local-only tables", () => {
  test("members upsert/list/remove", async () => {
    const s = await openStore(join(dir, "r.db"), { node: "n1" });
    s.upsertMember({ name: "n2", state: "alive", incarnation: 1, address: "10.0.0.2:7946", updatedAt: 1 });
    s.upsertMember({ name: "n3", state: "suspect", incarnation: 0, updatedAt: 2 });
    s.upsertMember({ name: "n2", state: "dead", incarnation: 2, address: "10.0.0.2:7946", updatedAt: 3 });
    expect(s.listMembers()).toEqual([
      { name: "n2", state: "dead", incarnation: 2, address: "10.0.0.2:7946", updatedAt: 3 },
      { name: "n3", state: "suspect", incarnation: 0, updatedAt: 2 },
    ]);
    s.removeMember("n3");
    expect(s.listMembers().map((m) => m.name)).toEqual(["n2"]);
    const err = (() => {
      try {
        s.upsertMember({ name: "n4", state: "zombie" as "alive", incarnation: 0, updatedAt: 0 });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).message).toContain("member.state");
    s.close();
  });

  test("applied: save/load survives reopen", async () => {
    const path = join(dir, "r.db");
    const s = await openStore(path, { node: "n1" });
    expect(s.loadApplied()).toBeNull();
    const plan = { routes: [{ dst: "10.1.0.0/16", via: "220.0.0.2" }] };
    s.saveApplied({ plan, planHash: "h1", appliedAt: 10, capabilities: { vxlan: true } });
    s.saveApplied({ plan, planHash: "h2", appliedAt: 20, report: { ok: true } });
    s.close();
    const r = await openStore(path, { node: "n1" });
    expect(r.loadApplied()).toEqual({ plan, planHash: "h2", appliedAt: 20, report: { ok: true } });
    r.close();
  });

  test("exec_sessions and workflows are queryable through store.db", async () => {
    const s = await openStore(join(dir, "r.db"), { node: "n1" });
    s.db
      .insert(execSessions)
      .values({ id: "s1", startedAt: 1, principal: "admin", command: "ls", args: JSON.stringify(["-l"]) })
      .run();
    const last = s.db.select().from(execSessions).orderBy(desc(execSessions.startedAt)).limit(1).all();
    expect(last[0]?.command).toBe("ls");
    expect(last[0]?.tty).toBe(0);
    s.db
      .insert(workflows)
      .values({ id: "w1", kind: "join", status: "running", specJson: "{}", createdAt: 1, updatedAt: 1 })
      .run();
    s.db
      .insert(workflowSteps)
      .values({ workflowId: "w1", idx: 0, name: "upload", kind: "upload", status: "pending" })
      .run();
    // foreign keys are on: steps of an unknown workflow are refused, deletes cascade
    expect(() =>
      s.db
        .insert(workflowSteps)
        .values({ workflowId: "nope", idx: 0, name: "x", kind: "run", status: "pending" })
        .run(),
    ).toThrow();
    // CHECK constraint on status
    expect(() =>
      s.db
        .insert(workflows)
        .values({ id: "w2", kind: "join", status: "weird", specJson: "{}", createdAt: 1, updatedAt: 1 })
        .run(),
    ).toThrow();
    s.db.delete(workflows).where(eq(workflows.id, "w1")).run();
    expect(s.db.select().from(workflowSteps).all()).toEqual([]);
    s.close();
  });
});
