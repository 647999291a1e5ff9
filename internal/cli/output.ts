/** Output helpers shared by kosmosctl commands: tables, json/yaml, progress bars (stderr). */
import { SingleBar } from "cli-progress";
import Table from "cli-table3";
import { stringify as toYaml } from "yaml";

export type OutputFormat = "table" | "json" | "yaml";

export function parseOutput(v: string): OutputFormat {
  if (v === "table" || v === "json" || v === "yaml") return v;
  throw new Error(`--output must be table, json or yaml (got "${v}")`);
}

export function printData(format: OutputFormat, data: unknown, table: () => string): void {
  if (format === "json") process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else if (format === "yaml") process.stdout.write(toYaml(data));
  else process.stdout.write(`${table()}\n`);
}

export function renderTable(head: string[], rows: Array<Array<string | number>>): string {
  const useColor = process.stdout.isTTY === true;
  const t = new Table({ head, style: { head: useColor ? ["cyan"] : [], border: useColor ? ["grey"] : [] } });
  for (const r of rows) t.push(r.map(String));
  return t.toString();
}

export const OK = "✓";
export const FAIL = "✗";

/** A progress bar on stderr (a plain line per step when stderr is not a terminal). */
export function progressBar(
  total: number,
  label: string,
): { update(done: number, step: string, newTotal?: number): void; stop(): void } {
  if (!process.stderr.isTTY) {
    return {
      update(done, step, newTotal) {
        if (newTotal !== undefined) total = newTotal;
        process.stderr.write(`[${done}/${total}] ${label}: ${step}\n`);
      },
      stop() {},
    };
  }
  const bar = new SingleBar({
    format: `${label} [{bar}] {value}/{total} {step}`,
    barCompleteChar: "█",
    barIncompleteChar: "░",
    stream: process.stderr,
    hideCursor: true,
  });
  bar.start(total, 0, { step: "" });
  return {
    update(done, step, newTotal) {
      if (newTotal !== undefined && newTotal !== bar.getTotal()) bar.setTotal(newTotal);
      bar.update(done, { step });
    },
    stop() {
      bar.stop();
    },
  };
}
