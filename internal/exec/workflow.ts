/**
 * Join/leave workflows: an ordered list of named steps (upload, run, wait), each retried with
 * exponential backoff, progress streamed as events, state journaled so a restarted agent resumes
 * (re-running the interrupted step; steps must be idempotent) or rolls back.
 */
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { ExecError } from "./errors.ts";
import { startProcess } from "./process.ts";
import { AtomicUpload, confinePath } from "./upload.ts";

const Base = { name: z.string().min(1).max(128), retries: z.number().int().min(1).max(20).optional() };
export const StepSchema = z.discriminatedUnion("kind", [
  z.object({
    ...Base,
    kind: z.literal("upload"),
    path: z.string().min(1),
    /** file content, base64 */
    content: z.string(),
    mode: z.number().int().optional(),
  }),
  z.object({
    ...Base,
    kind: z.literal("run"),
    argv: z.array(z.string()).min(1),
    env: z.record(z.string(), z.string()).optional(),
    cwd: z.string().optional(),
    timeoutSec: z.number().positive().optional(),
  }),
  z.object({
    ...Base,
    kind: z.literal("wait"),
    /** probe command; the step succeeds once it exits 0 */
    argv: z.array(z.string()).min(1),
    timeoutSec: z.number().positive().default(60),
    intervalMs: z.number().int().positive().default(500),
  }),
]);
export type WorkflowStep = z.infer<typeof StepSchema>;

export const WorkflowSpecSchema = z.object({
  kind: z.enum(["join", "leave"]),
  steps: z.array(StepSchema).min(1),
  /** run (best effort, in order) when a step fails for good, or on restart with onRestart=rollback */
  rollback: z.array(StepSchema).default([]),
  /** after an agent restart: continue from the interrupted step, or roll back */
  onRestart: z.enum(["resume", "rollback"]).default("resume"),
  backoffMs: z.number().int().min(0).default(500),
  maxBackoffMs: z.number().int().min(0).default(10_000),
});
export type WorkflowSpec = z.infer<typeof WorkflowSpecSchema>;
export type WorkflowSpecInput = z.input<typeof WorkflowSpecSchema>;

export type WorkflowStatus = "pending" | "running" | "succeeded" | "failed" | "rolled_back";
export type StepStatus = "pending" | "running" | "succeeded" | "failed" | "rolled_back" | "skipped";

export type WorkflowEvent =
  | { type: "workflow"; id: string; status: WorkflowStatus; error?: string }
  | {
      type: "step";
      id: string;
      idx: number;
      name: string;
      status: StepStatus;
      attempt: number;
      error?: string;
      output?: string;
    }
  | { type: "retry"; id: string; idx: number; name: string; attempt: number; delayMs: number; error: string }
  | { type: "rollback"; id: string; name: string; status: "succeeded" | "failed"; error?: string };

export interface UnfinishedWorkflow {
  id: string;
  spec: WorkflowSpec;
  currentStep: number;
}

/** Persistence of workflow progress (SQLite in the agent: journal-sqlite.ts). */
export interface WorkflowJournal {
  create(id: string, spec: WorkflowSpec, now: number): void;
  update(
    id: string,
    patch: { status?: WorkflowStatus; currentStep?: number; attempts?: number; error?: string | null },
    now: number,
  ): void;
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
  ): void;
  unfinished(): UnfinishedWorkflow[];
}

export class MemoryJournal implements WorkflowJournal {
  readonly workflows = new Map<
    string,
    { spec: WorkflowSpec; status: WorkflowStatus; currentStep: number; error: string | null }
  >();
  readonly steps = new Map<string, { status: StepStatus; attempts: number }>();
  create(id: string, spec: WorkflowSpec): void {
    this.workflows.set(id, { spec, status: "pending", currentStep: 0, error: null });
    for (let i = 0; i < spec.steps.length; i++)
      this.steps.set(`${id}/${i}`, { status: "pending", attempts: 0 });
  }
  update(id: string, patch: { status?: WorkflowStatus; currentStep?: number; error?: string | null }): void {
    const w = this.workflows.get(id);
    if (w) Object.assign(w, Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)));
  }
  step(id: string, idx: number, patch: { status: StepStatus; attempts?: number }): void {
    const s = this.steps.get(`${id}/${idx}`) ?? { status: "pending", attempts: 0 };
    s.status = patch.status;
    if (patch.attempts !== undefined) s.attempts = patch.attempts;
    this.steps.set(`${id}/${idx}`, s);
  }
  unfinished(): UnfinishedWorkflow[] {
    return [...this.workflows.entries()]
      .filter(([, w]) => w.status === "running" || w.status === "pending")
      .map(([id, w]) => ({ id, spec: w.spec, currentStep: w.currentStep }));
  }
}

export interface WorkflowDeps {
  journal: WorkflowJournal;
  roots: string[];
  onEvent: (e: WorkflowEvent) => void;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  signal?: AbortSignal;
}

const TAIL = 4096;

async function runArgv(
  argv: string[],
  opts: { env?: Record<string, string>; cwd?: string; timeoutSec?: number },
): Promise<{ exitCode: number; output: string }> {
  let output = "";
  const dec = new TextDecoder();
  const add = (c: Uint8Array) => {
    output = (output + dec.decode(c, { stream: true })).slice(-TAIL);
  };
  const p = startProcess({ argv, env: opts.env, cwd: opts.cwd }, { stdout: add, stderr: add });
  const timer = opts.timeoutSec
    ? setTimeout(() => {
        p.killSession("SIGTERM");
        setTimeout(() => p.killSession("SIGKILL"), 2000).unref?.();
      }, opts.timeoutSec * 1000)
    : undefined;
  const r = await p.result;
  clearTimeout(timer);
  p.killSession("SIGKILL");
  return { exitCode: r.exitCode, output };
}

/** Execute one step once; throws with the reason on failure, returns the output tail. */
export async function executeStep(
  step: WorkflowStep,
  deps: Pick<WorkflowDeps, "roots" | "sleep" | "now">,
): Promise<string> {
  const sleep = deps.sleep ?? Bun.sleep;
  const now = deps.now ?? Date.now;
  switch (step.kind) {
    case "upload": {
      const target = await confinePath(deps.roots, step.path);
      const u = await AtomicUpload.open(target, { mode: step.mode, checksum: { algorithm: "none" } });
      await u.write(Buffer.from(step.content, "base64"));
      const r = await u.commit();
      return `uploaded ${r.bytes} bytes to ${r.path}`;
    }
    case "run": {
      const r = await runArgv(step.argv, step);
      if (r.exitCode !== 0)
        throw new ExecError(
          "WORKFLOW_FAILED",
          `exit code ${r.exitCode}: ${r.output.slice(-300)}`,
          "see the step output",
        );
      return r.output;
    }
    case "wait": {
      const deadline = now() + step.timeoutSec * 1000;
      let last = { exitCode: -1, output: "" };
      for (;;) {
        last = await runArgv(step.argv, { timeoutSec: step.timeoutSec });
        if (last.exitCode === 0) return last.output;
        if (now() >= deadline) break;
        await sleep(step.intervalMs);
      }
      throw new ExecError(
        "TIMEOUT",
        `condition not met after ${step.timeoutSec}s (last exit ${last.exitCode})`,
        last.output.slice(-300),
      );
    }
  }
}

async function rollback(id: string, spec: WorkflowSpec, deps: WorkflowDeps): Promise<boolean> {
  let ok = true;
  for (const step of spec.rollback) {
    try {
      await executeStep(step, deps);
      deps.onEvent({ type: "rollback", id, name: step.name, status: "succeeded" });
    } catch (err) {
      ok = false;
      deps.onEvent({
        type: "rollback",
        id,
        name: step.name,
        status: "failed",
        error: (err as Error).message,
      });
    }
  }
  return ok;
}

/** Run (or resume from `from`) a workflow to completion; returns its final status. */
export async function runWorkflow(
  input: WorkflowSpecInput | WorkflowSpec,
  deps: WorkflowDeps,
  resume?: { id: string; from: number },
): Promise<{ id: string; status: WorkflowStatus; error?: string }> {
  const spec = WorkflowSpecSchema.parse(input);
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? Bun.sleep;
  const id = resume?.id ?? randomUUID();
  if (!resume) deps.journal.create(id, spec, now());
  deps.journal.update(id, { status: "running" }, now());
  deps.onEvent({ type: "workflow", id, status: "running" });
  for (let idx = resume?.from ?? 0; idx < spec.steps.length; idx++) {
    const step = spec.steps[idx] as WorkflowStep;
    const retries = step.retries ?? 5;
    deps.journal.update(id, { currentStep: idx }, now());
    let lastErr = "";
    let done = false;
    for (let attempt = 1; attempt <= retries && !done; attempt++) {
      if (deps.signal?.aborted) return { id, status: "running", error: "aborted" };
      deps.journal.step(id, idx, { status: "running", attempts: attempt, startedAt: now() });
      deps.onEvent({ type: "step", id, idx, name: step.name, status: "running", attempt });
      try {
        const output = await executeStep(step, deps);
        deps.journal.step(id, idx, {
          status: "succeeded",
          attempts: attempt,
          endedAt: now(),
          outputTail: output,
          error: null,
        });
        deps.onEvent({
          type: "step",
          id,
          idx,
          name: step.name,
          status: "succeeded",
          attempt,
          output: output.slice(-1024),
        });
        done = true;
      } catch (err) {
        lastErr = (err as Error).message;
        deps.journal.step(id, idx, { status: "failed", attempts: attempt, endedAt: now(), error: lastErr });
        deps.onEvent({ type: "step", id, idx, name: step.name, status: "failed", attempt, error: lastErr });
        if (attempt < retries) {
          const delayMs = Math.min(spec.maxBackoffMs, spec.backoffMs * 2 ** (attempt - 1));
          deps.onEvent({ type: "retry", id, idx, name: step.name, attempt, delayMs, error: lastErr });
          await sleep(delayMs);
        }
      }
    }
    if (!done) {
      const error = `step ${step.name} failed after ${retries} attempts: ${lastErr}`;
      const rolledBack = spec.rollback.length > 0 && (await rollback(id, spec, deps));
      const status: WorkflowStatus = rolledBack ? "rolled_back" : "failed";
      deps.journal.update(id, { status, error }, now());
      deps.onEvent({ type: "workflow", id, status, error });
      return { id, status, error };
    }
  }
  deps.journal.update(id, { status: "succeeded", currentStep: spec.steps.length, error: null }, now());
  deps.onEvent({ type: "workflow", id, status: "succeeded" });
  return { id, status: "succeeded" };
}

/** At agent start: finish what a previous run left behind (resume or roll back per spec). */
export async function recoverWorkflows(
  deps: WorkflowDeps,
): Promise<{ id: string; status: WorkflowStatus }[]> {
  const out: { id: string; status: WorkflowStatus }[] = [];
  const now = deps.now ?? Date.now;
  for (const w of deps.journal.unfinished()) {
    if (w.spec.onRestart === "rollback") {
      const ok = await rollback(w.id, w.spec, deps);
      const status: WorkflowStatus = ok ? "rolled_back" : "failed";
      deps.journal.update(w.id, { status, error: "agent restarted mid-workflow" }, now());
      deps.onEvent({ type: "workflow", id: w.id, status });
      out.push({ id: w.id, status });
    } else {
      const r = await runWorkflow(w.spec, deps, { id: w.id, from: w.currentStep });
      out.push({ id: r.id, status: r.status });
    }
  }
  return out;
}

/**
 * The upstream kubenest join flow (kubelet_node_helper.sh) as a workflow: upload the CA, kubelet
 * config and kubeadm config, then `check` and `join` (rollback: `revert`). Leave runs `unjoin`.
 */
export function kubenestJoinSpec(
  files: { caCrt: string; kubeletConf: string; configYaml: string },
  dir = "/apps/conf/kosmos",
): WorkflowSpecInput {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  return {
    kind: "join",
    steps: [
      { name: "upload-ca", kind: "upload", path: `${dir}/cert/ca.crt`, content: b64(files.caCrt) },
      {
        name: "upload-kubelet-conf",
        kind: "upload",
        path: `${dir}/kubelet.conf`,
        content: b64(files.kubeletConf),
      },
      { name: "upload-config", kind: "upload", path: `${dir}/config.yaml`, content: b64(files.configYaml) },
      { name: "check", kind: "run", argv: ["bash", `${dir}/kubelet_node_helper.sh`, "check"] },
      { name: "join", kind: "run", argv: ["bash", `${dir}/kubelet_node_helper.sh`, "join"] },
    ],
    rollback: [
      { name: "revert", kind: "run", argv: ["bash", `${dir}/kubelet_node_helper.sh`, "revert"], retries: 1 },
    ],
  };
}

export function kubenestLeaveSpec(dir = "/apps/conf/kosmos"): WorkflowSpecInput {
  return {
    kind: "leave",
    steps: [{ name: "unjoin", kind: "run", argv: ["bash", `${dir}/kubelet_node_helper.sh`, "unjoin"] }],
  };
}
