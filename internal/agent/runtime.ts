/**
 * How the agent process is run, wherever it runs (lab, image, DaemonSet): cmd/kosmos-agent.ts bundled
 * into one file (the lab's cached bundle, the image's `bun build --compile` executable) on Bun, with
 * JavaScript kept in JavaScriptCore's interpreter: `useBaselineJIT=0` turns off the JS tiers
 * (Baseline, DFG, FTL) while the JIT stays on for RegExps and native-call thunks, the configuration
 * JSC itself uses for x86 binaries under Rosetta.
 *
 * Why: the agent idles between short bursts (a resync pass, a gossip frame, a plan) whose heavy
 * lifting is native (SQLite, JSON, TLS, HMAC, the kernel). JIT-compiling those bursts cost ~15 MB
 * of RSS per agent with 1,000 peers (compiler memory and code, spent again after code ages out).
 * Cost: pure-JS bursts run 1–3× slower (a 1,000-peer plan ~15–25 ms; a 100k-node plan 1.1–2.8 s
 * instead of 0.4–1 s); idle CPU and exec upload CPU stay within ~10% of the JIT. `useJIT=0` would
 * save ~5 MB more but doubles idle CPU and upload CPU (no JIT thunks). Figures: docs/benchmarks.md.
 */

/** Environment every agent process is started with (on top of the launcher's own). */
export const AGENT_RUNTIME_ENV: Readonly<Record<string, string>> = {
  BUN_JSC_useBaselineJIT: "0",
};

const off = (v: string | undefined): boolean =>
  v !== undefined && ["0", "false"].includes(v.trim().toLowerCase());

/** How this process runs JavaScript: "interpreter" when started as above, "jit" otherwise. */
export function jsExecution(env: Record<string, string | undefined> = process.env): "interpreter" | "jit" {
  return off(env.BUN_JSC_useJIT) || off(env.BUN_JSC_useBaselineJIT) ? "interpreter" : "jit";
}
