/**
 * Runs the probes of a matrix: batches per source endpoint, one probe-script exec per batch on the
 * source's node agent, bounded so that at most `concurrency` probes are in flight at any moment
 * (execs in flight × probes in parallel per exec ≤ concurrency), each probe bounded by the timeout.
 */
import { PROBE_SCRIPT, parseScriptLine, probeLine } from "./script.ts";
import type { Endpoint, Pair, ProbeOutcome } from "./types.ts";

export interface ExecOutcome {
  exitCode: number;
  stderr: string;
}

/** Runs commands on a node (through its agent). Implementations: AgentExecutor, fakes in tests. */
export interface ProbeExecutor {
  run(
    node: string,
    argv: string[],
    stdin: string,
    timeoutSec: number,
    onLine: (line: string) => void,
  ): Promise<ExecOutcome>;
  /** undefined when the node's agent answers; otherwise why not. */
  health(node: string): Promise<string | undefined>;
}

export interface Schedule {
  /** Probes run in parallel inside one exec. */
  perExec: number;
  /** Execs in flight at once. */
  execs: number;
  /** Probes per exec call. */
  batch: number;
}

/** Split the concurrency budget between execs and in-exec parallelism (pure). */
export function schedule(concurrency: number, sources: number, maxPerExec = 32): Schedule {
  const c = Math.max(1, Math.floor(concurrency));
  const s = Math.max(1, sources);
  const perExec = Math.max(1, Math.min(maxPerExec, Math.floor(c / Math.min(c, s))));
  const execs = Math.max(1, Math.floor(c / perExec));
  return { perExec, execs, batch: perExec * 6 };
}

interface Job {
  src: Endpoint;
  items: Array<{ key: string; pair: number; probe: number }>;
}

/** Batches, round-robin over sources so that every agent works from the start, spread over targets. */
export function planJobs(pairs: Pair[], batch: number): Job[] {
  const bySrc = new Map<string, Job["items"]>();
  const srcOf = new Map<string, Endpoint>();
  pairs.forEach((p, i) => {
    const list = bySrc.get(p.src.id) ?? [];
    for (let j = 0; j < p.probes.length; j++) list.push({ key: `${i}.${j}`, pair: i, probe: j });
    bySrc.set(p.src.id, list);
    srcOf.set(p.src.id, p.src);
  });
  const n = bySrc.size;
  const queues = [...bySrc.entries()].map(([id, list], s) => {
    // Every source starts at a different destination: all sources probing the same target at
    // once overflow its listen backlog (SYNs dropped, retried after 1 s) and look like failures.
    const off = Math.floor((s * list.length) / n);
    const items = [...list.slice(off), ...list.slice(0, off)];
    const chunks: Job[] = [];
    for (let k = 0; k < items.length; k += batch) {
      chunks.push({ src: srcOf.get(id) as Endpoint, items: items.slice(k, k + batch) });
    }
    return chunks;
  });
  const jobs: Job[] = [];
  for (let round = 0; queues.some((q) => q.length > round); round++) {
    for (const q of queues) {
      const j = q[round];
      if (j) jobs.push(j);
    }
  }
  return jobs;
}

export interface RunOptions {
  concurrency: number;
  timeoutSec: number;
  /** Nodes known to be unreachable: their sources' probes fail without trying. */
  deadNodes?: Map<string, string>;
  onProbe?: (pair: number, outcome: ProbeOutcome) => void;
}

/** Run every probe of `pairs`; returns outcomes indexed like pairs[i].probes[j]. */
export async function runProbes(
  pairs: Pair[],
  exec: ProbeExecutor,
  opts: RunOptions,
): Promise<ProbeOutcome[][]> {
  const out: ProbeOutcome[][] = pairs.map(() => []);
  const sources = new Set(pairs.map((p) => p.src.id)).size;
  const sch = schedule(opts.concurrency, sources);
  const jobs = planJobs(pairs, sch.batch);
  const record = (pair: number, probe: number, ok: boolean, ms: number, detail: string) => {
    const spec = pairs[pair]?.probes[probe];
    if (!spec || out[pair]?.[probe]) return;
    const o: ProbeOutcome = { ...spec, ok, ms, detail };
    (out[pair] as ProbeOutcome[])[probe] = o;
    opts.onProbe?.(pair, o);
  };
  let next = 0;
  const worker = async () => {
    for (;;) {
      const job = jobs[next++];
      if (!job) return;
      const dead = opts.deadNodes?.get(job.src.node);
      if (dead) {
        for (const it of job.items) record(it.pair, it.probe, false, 0, dead);
        continue;
      }
      const byKey = new Map(job.items.map((it) => [it.key, it]));
      const stdin = `${job.items.map((it) => probeLine(it.key, pairs[it.pair]?.probes[it.probe] as Pair["probes"][number])).join("\n")}\n`;
      const argv = [
        ...job.src.execPrefix,
        "bash",
        "-c",
        PROBE_SCRIPT,
        "kosmos-probe",
        String(opts.timeoutSec),
        String(sch.perExec),
      ];
      // Generous ceiling for the whole batch: waves of perExec probes, each at most the timeout (+ slack).
      const ceiling = Math.ceil(job.items.length / sch.perExec) * (opts.timeoutSec + 1) + 15;
      let why = "";
      try {
        const r = await exec.run(job.src.node, argv, stdin, ceiling, (line) => {
          const l = parseScriptLine(line);
          const it = l ? byKey.get(l.key) : undefined;
          if (l && it) record(it.pair, it.probe, l.ok, l.ms, l.detail);
        });
        if (r.exitCode !== 0)
          why = `probe script exited ${r.exitCode} on ${job.src.node}: ${r.stderr.trim().split("\n").pop() ?? ""}`;
      } catch (e) {
        why = `cannot run probes on ${job.src.node}: ${(e as Error).message}`;
      }
      for (const it of job.items) {
        if (!out[it.pair]?.[it.probe])
          record(it.pair, it.probe, false, 0, why || "no result from the probe script");
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(sch.execs, Math.max(1, jobs.length)) }, worker));
  return out;
}
