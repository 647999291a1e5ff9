import { describe, expect, test } from "bun:test";
import { parseStat, sessionProcesses, signalSession } from "../../internal/exec/proctree.ts";
import { alive, until } from "../helpers/wait.ts";

describe("the processes of an exec session", () => {
  test("parseStat reads ppid and session after the last ')' (command names may hold ') ' too)", () => {
    expect(parseStat(42, "42 (a) b (c)) S 7 42 40 0 -1 4194560 …")).toEqual({ pid: 42, ppid: 7, sid: 40 });
    expect(parseStat(43, "43 (sleep) Z 1 43 40 0")).toBeNull(); // a zombie: nothing to signal
    expect(parseStat(44, "garbage")).toBeNull();
  });

  test("members of the session, other groups included, plus descendants that left it; never others", () => {
    const procs = [
      { pid: 100, ppid: 1, sid: 100 }, // the session leader (shell)
      { pid: 101, ppid: 100, sid: 100 }, // a job in a group of its own: same session
      { pid: 102, ppid: 101, sid: 102 }, // a child of the job that called setsid
      { pid: 103, ppid: 102, sid: 102 }, // and its child
      { pid: 104, ppid: 1, sid: 100 }, // a member re-parented to init: still the session
      { pid: 200, ppid: 1, sid: 200 }, // unrelated
      { pid: 201, ppid: 200, sid: 200 },
    ];
    expect(sessionProcesses(100, procs).sort()).toEqual([100, 101, 102, 103, 104]);
    expect(sessionProcesses(300, procs)).toEqual([]);
  });

  test("signalSession kills a job that bash's job control put in a group of its own", async () => {
    const p = Bun.spawn(["bash", "-c", "set -m; sleep 301 & echo $!; wait"], {
      detached: true,
      stdout: "pipe",
    });
    const reader = p.stdout.getReader();
    const job = Number(new TextDecoder().decode((await reader.read()).value).trim());
    try {
      expect(sessionProcesses(p.pid).sort()).toEqual([p.pid, job].sort());
      let groupOnly = true;
      try {
        process.kill(-p.pid, 0); // the leader's group exists
        process.kill(-job, 0); // and the job's own group
      } catch {
        groupOnly = false;
      }
      expect(groupOnly).toBe(true);
      expect(signalSession(p.pid, "SIGKILL")).toBeGreaterThanOrEqual(2);
      await until(() => !alive(job) && !alive(p.pid), "the shell and its job are gone");
    } finally {
      reader.releaseLock();
      if (alive(job)) process.kill(job, "SIGKILL");
      p.kill("SIGKILL");
    }
  });
});
