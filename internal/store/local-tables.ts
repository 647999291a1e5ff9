/**
 * The local-only tables of the replica (never gossiped): members (this node's SWIM view), applied
 * (the last host state applied) and meta (key/value facts about this file).
 */
import { eq } from "drizzle-orm";
import { zodMessage } from "./checks.ts";
import type { StoreDb } from "./driver.ts";
import { StoreError } from "./errors.ts";
import { type AppliedRecord, type Member, MemberSchema } from "./model.ts";
import { applied, members, meta } from "./schema.ts";

export interface LocalTables {
  upsertMember(member: Member): void;
  removeMember(name: string): void;
  listMembers(): Member[];
  saveApplied<TPlan>(record: AppliedRecord<TPlan>): void;
  loadApplied<TPlan = unknown>(): AppliedRecord<TPlan> | null;
  getMeta(key: string): string | undefined;
  setMeta(key: string, value: string): void;
}

/** LocalTables over drizzle; `assertOpen` throws once the store is closed (writes only). */
export class SqliteLocalTables implements LocalTables {
  constructor(
    private readonly db: StoreDb,
    private readonly assertOpen: () => void,
  ) {}

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
}
