/**
 * How the agent process is run, wherever it runs (lab, image, DaemonSet): cmd/kosmos-agent.ts bundled
 * into one file (the lab's cached bundle, the image's `bun build --compile` executable) on Bun, with
 * JavaScriptCore's JIT compilers off. The agent idles between short bursts (a resync pass, a gossip
 * frame, a plan); its heavy lifting is native (SQLite, JSON, TLS, HMAC, the kernel). JIT-compiling
 * those bursts cost ~20 MB of RSS per agent (compiler memory and code, re-spent on every pass after
 * code ages out) for ~10 ms less JS per pass. Measured figures: docs/benchmarks.md (agent module).
 */

/** Environment every agent process is started with (on top of the launcher's own). */
export const AGENT_RUNTIME_ENV: Readonly<Record<string, string>> = {
  BUN_JSC_useJIT: "0",
};

/** Whether this process runs with JavaScriptCore's JIT (false when started as above). */
export function jitEnabled(env: Record<string, string | undefined> = process.env): boolean {
  const v = env.BUN_JSC_useJIT?.trim().toLowerCase();
  return !(v === "0" || v === "false");
}
