/** Where sessions are recorded (SQLite in the agent; memory in tests). */
export interface AuditStart {
  id: string;
  principal: string;
  /** "/cmd", "/v1/exec", "/upload", ... */
  endpoint: string;
  command: string[];
  remote: string;
  startedAt: number;
}

export interface AuditEnd {
  endedAt: number;
  exitCode: number | null;
  signal: string | null;
  bytesIn: number;
  bytesOut: number;
  error: string | null;
}

export interface AuditSink {
  start(rec: AuditStart): void;
  finish(id: string, end: AuditEnd): void;
}

export type AuditRecord = AuditStart & Partial<AuditEnd>;

export class MemoryAudit implements AuditSink {
  readonly records = new Map<string, AuditRecord>();
  start(rec: AuditStart): void {
    this.records.set(rec.id, { ...rec });
  }
  finish(id: string, end: AuditEnd): void {
    const r = this.records.get(id);
    if (r) Object.assign(r, end);
  }
  list(): AuditRecord[] {
    return [...this.records.values()];
  }
}
