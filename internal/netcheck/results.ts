/** The results file (`.kosmos-check/last.json` by default): written after every run, read by --resume. */
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { NetcheckError } from "./agents.ts";
import type { CheckReport } from "./types.ts";

export const DEFAULT_RESULTS = ".kosmos-check/last.json";

export async function saveReport(file: string, report: CheckReport): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(report, null, 2)}\n`);
  await rename(tmp, file);
}

export async function loadReport(file: string): Promise<CheckReport> {
  if (!existsSync(file)) {
    throw new NetcheckError(
      "RESULTS",
      `no previous results in ${file}`,
      "run `kosmosctl check` once first (or pass --results FILE)",
    );
  }
  let data: unknown;
  try {
    data = JSON.parse(await readFile(file, "utf8"));
  } catch (e) {
    throw new NetcheckError(
      "RESULTS",
      `${file} is not a check results file: ${(e as Error).message}`,
      "remove it and run a full check",
    );
  }
  const r = data as Partial<CheckReport>;
  if (r.version !== 1 || !Array.isArray(r.results) || !r.options) {
    throw new NetcheckError(
      "RESULTS",
      `${file} is not a check results file (version ${String(r.version)})`,
      "remove it and run a full check",
    );
  }
  return r as CheckReport;
}

/** Keys of the pairs that failed in a report. */
export function failedKeys(report: CheckReport): Set<string> {
  return new Set(report.results.filter((r) => !r.ok).map((r) => r.key));
}
