import { readFileSync } from "node:fs";
/** One measured figure of a benchmark, optionally compared with a baseline measured in the same run. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  target?: string;
  ok?: boolean;
}

/**
 * CPU time (user + system, ms) a process has used so far, from /proc/PID/stat (Linux; clock ticks
 * of 100/s). 0 when the process is gone.
 */
export function cpuMs(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return 0;
  }
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

/** Resident set size (kB) of a process, from /proc/PID/status; 0 when the process is gone. */
export function rssKb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Percentile (0..100) of a list of numbers (nearest-rank). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/** Print results as a table (used when a bench file is run directly). */
export function printResults(results: BenchResult[]): void {
  for (const r of results) {
    const base = r.baseline ? ` (baseline ${r.baseline.name}: ${r.baseline.value.toFixed(3)})` : "";
    const verdict = r.ok === undefined ? "" : r.ok ? " OK" : " FAIL";
    console.log(
      `${r.name}: ${r.value.toFixed(3)} ${r.unit}${base}${r.target ? ` target ${r.target}` : ""}${verdict}`,
    );
  }
}
