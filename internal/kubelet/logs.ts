/**
 * CRI log lines (`<RFC3339Nano> stdout|stderr F|P <text>`, as container.ts writes them) → what
 * `kubectl logs` shows (pure): the text, with the timestamp first when asked, the last `tailLines`
 * only, lines before `sinceTime` dropped. Partial lines (`P`) are joined with what follows them.
 */

export interface LogOptions {
  timestamps?: boolean;
  tailLines?: number;
  sinceTime?: string;
}

export function formatLogLines(content: string, o: LogOptions = {}): { text: string; bytes: number } {
  const complete = content.slice(0, content.lastIndexOf("\n") + 1);
  const out: string[] = [];
  let partial = "";
  const since = o.sinceTime ? Date.parse(o.sinceTime) : undefined;
  for (const line of complete.split("\n")) {
    if (!line) continue;
    const m = /^(\S+) (stdout|stderr) ([FP]) ?(.*)$/.exec(line);
    if (!m) continue;
    const [, ts, , tag, body] = m;
    if (tag === "P") {
      partial += body;
      continue;
    }
    const textLine = partial + body;
    partial = "";
    if (since !== undefined && Date.parse(ts!) < since) continue;
    out.push(o.timestamps ? `${ts} ${textLine}` : textLine!);
  }
  const lines =
    o.tailLines !== undefined && o.tailLines >= 0 ? out.slice(Math.max(0, out.length - o.tailLines)) : out;
  return { text: lines.map((l) => `${l}\n`).join(""), bytes: Buffer.byteLength(complete) };
}
