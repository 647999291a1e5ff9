/** AuditSink and WorkflowJournal on the agent's SQLite store (tables from internal/store/schema.ts). */
import { and, eq, inArray } from "drizzle-orm";
import { execSessions, type StoreDb, workflowSteps, workflows } from "../store/index.ts";
import type { AuditEnd, AuditSink, AuditStart } from "./audit.ts";
import {
  type StepStatus,
  type UnfinishedWorkflow,
  type WorkflowJournal,
  type WorkflowSpec,
  WorkflowSpecSchema,
  type WorkflowStatus,
} from "./workflow.ts";

export class SqliteAudit implements AuditSink {
  private readonly started = new Map<string, number>();
  constructor(private readonly db: StoreDb) {}
  start(rec: AuditStart): void {
    this.started.set(rec.id, rec.startedAt);
    this.db
      .insert(execSessions)
      .values({
        id: rec.id,
        startedAt: rec.startedAt,
        principal: rec.principal,
        remoteAddr: rec.remote,
        endpoint: rec.endpoint,
        command: rec.command[0] ?? "",
        args: JSON.stringify(rec.command.slice(1)),
      })
      .run();
  }
  finish(id: string, end: AuditEnd): void {
    const startedAt = this.started.get(id);
    this.started.delete(id);
    this.db
      .update(execSessions)
      .set({
        endedAt: end.endedAt,
        exitCode: end.exitCode,
        signal: end.signal,
        durationMs: startedAt === undefined ? null : end.endedAt - startedAt,
        bytesIn: end.bytesIn,
        bytesOut: end.bytesOut,
        error: end.error,
      })
      .where(eq(execSessions.id, id))
      .run();
  }
}

export class SqliteJournal implements WorkflowJournal {
  constructor(private readonly db: StoreDb) {}
  create(id: string, spec: WorkflowSpec, now: number): void {
    this.db.transaction((tx) => {
      tx.insert(workflows)
        .values({
          id,
          kind: spec.kind,
          status: "pending",
          specJson: JSON.stringify(spec),
          createdAt: now,
          updatedAt: now,
        })
        .run();
      spec.steps.forEach((s, idx) => {
        tx.insert(workflowSteps)
          .values({ workflowId: id, idx, name: s.name, kind: s.kind, status: "pending" })
          .run();
      });
    });
  }
  update(
    id: string,
    patch: { status?: WorkflowStatus; currentStep?: number; attempts?: number; error?: string | null },
    now: number,
  ): void {
    const set = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
    this.db
      .update(workflows)
      .set({ ...set, updatedAt: now })
      .where(eq(workflows.id, id))
      .run();
  }
  step(
    id: string,
    idx: number,
    patch: {
      status: StepStatus;
      attempts?: number;
      startedAt?: number;
      endedAt?: number;
      outputTail?: string;
      error?: string | null;
    },
  ): void {
    const set = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
    this.db
      .update(workflowSteps)
      .set(set)
      .where(and(eq(workflowSteps.workflowId, id), eq(workflowSteps.idx, idx)))
      .run();
  }
  unfinished(): UnfinishedWorkflow[] {
    return this.db
      .select()
      .from(workflows)
      .where(inArray(workflows.status, ["pending", "running"]))
      .all()
      .map((w) => ({
        id: w.id,
        spec: WorkflowSpecSchema.parse(JSON.parse(w.specJson)),
        currentStep: w.currentStep,
      }));
  }
}
