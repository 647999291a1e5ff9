export { type AuditEnd, type AuditRecord, type AuditSink, type AuditStart, MemoryAudit } from "./audit.ts";
export {
  AgentClient,
  type AgentTarget,
  type ExecOptions,
  type ExecResult,
  runRemoteWorkflow,
  sha256File,
  type UploadOptions,
  type UploadProgress,
} from "./client.ts";
export {
  type ChecksumAlgorithm,
  type ChecksumSpec,
  GMAC,
  parseChecksumHeaders,
} from "./checksum.ts";
export type { ExecEnv } from "./env.ts";
export { ExecError, type ExecErrorCode } from "./errors.ts";
export * as k8s from "./k8s.ts";
export { CLOSE, portFree } from "./legacy.ts";
export { type ExitResult, type ProcessSpec, type RunningProcess, startProcess } from "./process.ts";
export { createExecRoutes, type ExecDeps } from "./routes.ts";
export { DEFAULT_LIMITS, type ExecLimits, SessionManager } from "./session.ts";
export { AtomicUpload, backupName, confinePath, type UploadResult } from "./upload.ts";
export { parseExecQuery } from "./v1.ts";
export { SqliteAudit, SqliteJournal } from "./journal-sqlite.ts";
export {
  executeStep,
  kubenestJoinSpec,
  kubenestLeaveSpec,
  MemoryJournal,
  recoverWorkflows,
  runWorkflow,
  type WorkflowDeps,
  type WorkflowEvent,
  type WorkflowJournal,
  type WorkflowSpec,
  type WorkflowSpecInput,
  WorkflowSpecSchema,
  type WorkflowStep,
} from "./workflow.ts";
