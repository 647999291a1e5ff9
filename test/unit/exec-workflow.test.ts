import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { AgentClient, runRemoteWorkflow } from "../../internal/exec/client.ts";
import { SqliteJournal } from "../../internal/exec/journal-sqlite.ts";
import { startTestAgent } from "../helpers/exec-agent.ts";
import {
  kubenestJoinSpec,
  recoverWorkflows,
  runWorkflow,
  type WorkflowEvent,
  WorkflowSpecSchema,
} from "../../internal/exec/workflow.ts";
import { openStore, type Store, workflowSteps, workflows } from "../../internal/store/index.ts";

let dir: string;
let store: Store;
const noSleep = async () => {};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "kosmos-wf-"));
  store = await openStore(join(dir, "agent.db"), { node: "n1" });
});
afterEach(async () => {
  store.close();
  await rm(dir, { recursive: true, force: true });
});

/** `sh -c` step that appends to a log file (so tests can count executions). */
const mark = (name: string) => ({
  name,
  kind: "run" as const,
  argv: ["sh", "-c", `echo ${name} >> ${dir}/log`],
});
const log = async () =>
  (await readFile(join(dir, "log"), "utf8").catch(() => "")).trim().split("\n").filter(Boolean);

describe("workflows", () => {
  test("steps run in order, a flaky step is retried with backoff, state is journaled", async () => {
    const events: WorkflowEvent[] = [];
    const delays: number[] = [];
    const journal = new SqliteJournal(store.db);
    const counter = join(dir, "count");
    const r = await runWorkflow(
      {
        kind: "join",
        backoffMs: 100,
        steps: [
          {
            name: "upload",
            kind: "upload",
            path: join(dir, "conf", "a.conf"),
            content: Buffer.from("cfg").toString("base64"),
          },
          // fails twice, then succeeds
          {
            name: "flaky",
            kind: "run",
            argv: ["sh", "-c", `echo x >> ${counter}; [ $(wc -l < ${counter}) -ge 3 ]`],
          },
          { name: "wait-file", kind: "wait", argv: ["test", "-f", counter], timeoutSec: 5 },
        ],
      },
      {
        journal,
        roots: [dir],
        onEvent: (e) => events.push(e),
        sleep: async (ms) => {
          delays.push(ms);
        },
      },
    );
    expect(r.status).toBe("succeeded");
    expect(await readFile(join(dir, "conf", "a.conf"), "utf8")).toBe("cfg");
    expect(events.filter((e) => e.type === "retry").map((e) => (e as { delayMs: number }).delayMs)).toEqual([
      100, 200,
    ]);
    expect(delays).toEqual([100, 200]);
    const steps = store.db.select().from(workflowSteps).where(eq(workflowSteps.workflowId, r.id)).all();
    expect(steps.map((s) => [s.name, s.status, s.attempts])).toEqual([
      ["upload", "succeeded", 1],
      ["flaky", "succeeded", 3],
      ["wait-file", "succeeded", 1],
    ]);
    const wf = store.db.select().from(workflows).where(eq(workflows.id, r.id)).get();
    expect(wf?.status).toBe("succeeded");
  });

  test("a step failing for good triggers the rollback", async () => {
    const journal = new SqliteJournal(store.db);
    const r = await runWorkflow(
      {
        kind: "join",
        steps: [mark("one"), { name: "broken", kind: "run", argv: ["false"], retries: 2 }, mark("never")],
        rollback: [mark("revert")],
      },
      { journal, roots: [dir], onEvent: () => {}, sleep: noSleep },
    );
    expect(r.status).toBe("rolled_back");
    expect(await log()).toEqual(["one", "revert"]);
    expect(store.db.select().from(workflows).where(eq(workflows.id, r.id)).get()?.status).toBe("rolled_back");
  });

  test("a restarted agent resumes an interrupted workflow from the interrupted step", async () => {
    const spec = WorkflowSpecSchema.parse({ kind: "join", steps: [mark("s0"), mark("s1"), mark("s2")] });
    // state left behind by a crashed agent: s0 done, s1 was running
    const before = new SqliteJournal(store.db);
    before.create("wf-1", spec, 1);
    before.update("wf-1", { status: "running", currentStep: 1 }, 2);
    before.step("wf-1", 0, { status: "succeeded", attempts: 1 });
    before.step("wf-1", 1, { status: "running", attempts: 1 });
    await writeFile(join(dir, "log"), "s0\n");
    store.close();
    // restart: reopen the same database
    store = await openStore(join(dir, "agent.db"), { node: "n1" });
    const journal = new SqliteJournal(store.db);
    expect(journal.unfinished().map((w) => w.id)).toEqual(["wf-1"]);
    const out = await recoverWorkflows({ journal, roots: [dir], onEvent: () => {}, sleep: noSleep });
    expect(out).toEqual([{ id: "wf-1", status: "succeeded" }]);
    expect(await log()).toEqual(["s0", "s1", "s2"]);
    expect(journal.unfinished()).toEqual([]);
  });

  test("onRestart=rollback rolls an interrupted workflow back instead", async () => {
    const spec = WorkflowSpecSchema.parse({
      kind: "leave",
      onRestart: "rollback",
      steps: [mark("s0"), mark("s1")],
      rollback: [mark("undo")],
    });
    const journal = new SqliteJournal(store.db);
    journal.create("wf-2", spec, 1);
    journal.update("wf-2", { status: "running", currentStep: 1 }, 2);
    const out = await recoverWorkflows({ journal, roots: [dir], onEvent: () => {}, sleep: noSleep });
    expect(out).toEqual([{ id: "wf-2", status: "rolled_back" }]);
    expect(await log()).toEqual(["undo"]);
  });

  test("the kubenest join helper flow is expressible as a workflow", () => {
    const spec = WorkflowSpecSchema.parse(
      kubenestJoinSpec({ caCrt: "CA", kubeletConf: "K", configYaml: "C" }),
    );
    expect(spec.steps.map((s) => s.name)).toEqual([
      "upload-ca",
      "upload-kubelet-conf",
      "upload-config",
      "check",
      "join",
    ]);
    expect(spec.rollback[0]?.name).toBe("revert");
  });

  test("over the API: events are streamed and the close reason tells the outcome", async () => {
    const agent = await startTestAgent();
    try {
      const client = new AgentClient(agent.target());
      const events: { type: string }[] = [];
      const ok = await runRemoteWorkflow(
        client,
        {
          kind: "join",
          steps: [
            {
              name: "conf",
              kind: "upload",
              path: join(agent.root, "k.conf"),
              content: Buffer.from("x").toString("base64"),
            },
            { name: "run", kind: "run", argv: ["cat", join(agent.root, "k.conf")] },
          ],
        },
        (e) => events.push(e),
      );
      expect(ok).toBe(true);
      expect(events.filter((e) => e.type === "step").length).toBe(4);
      expect(events.at(-1)).toMatchObject({ type: "workflow", status: "succeeded" });
      const bad = await runRemoteWorkflow(
        client,
        { kind: "leave", steps: [{ name: "nope", kind: "run", argv: ["false"], retries: 1 }] },
        () => {},
      );
      expect(bad).toBe(false);
    } finally {
      await agent.stop();
    }
  });
});
