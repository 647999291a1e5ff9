/**
 * Runs one probe of a container (side effects): exec in the container's namespaces (`nsenter` on its
 * pid: mount, network, UTS), HTTP GET and TCP connect from inside the pod's network namespace to the
 * pod's IP (or `host` when the probe names one). Success is exit 0, an HTTP status 200–399, a
 * completed connection; each attempt is bounded by the probe's timeout.
 */
import type { Probe } from "./podplan.ts";

export interface ProbeTarget {
  pid: number;
  ns: string;
  podIP: string;
  env: Record<string, string>;
}

async function run(
  argv: string[],
  timeoutMs: number,
  env?: Record<string, string>,
): Promise<{ code: number; out: string }> {
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "ignore", ...(env ? { env } : {}) });
  const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  try {
    const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    return { code, out };
  } finally {
    clearTimeout(timer);
  }
}

const hostOf = (h: string): string => (h.includes(":") ? `[${h}]` : h);

export async function runProbe(p: Probe, t: ProbeTarget): Promise<boolean> {
  const a = p.action;
  if ("exec" in a) {
    const r = await run(
      ["nsenter", "-t", String(t.pid), "-m", "-n", "-u", "--", ...a.exec],
      p.timeoutMs,
      t.env,
    );
    return r.code === 0;
  }
  if ("http" in a) {
    const url = `${a.http.scheme.toLowerCase()}://${hostOf(a.http.host ?? t.podIP)}:${a.http.port}${a.http.path}`;
    const r = await run(
      [
        "ip",
        "netns",
        "exec",
        t.ns,
        "curl",
        "-sk",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        String(p.timeoutMs / 1000),
        url,
      ],
      p.timeoutMs + 1000,
    );
    const status = Number(r.out.trim());
    return status >= 200 && status < 400;
  }
  const host = a.tcp.host ?? t.podIP;
  const r = await run(
    [
      "ip",
      "netns",
      "exec",
      t.ns,
      "socat",
      "-u",
      "OPEN:/dev/null",
      `TCP:${hostOf(host)}:${a.tcp.port},connect-timeout=${p.timeoutMs / 1000}`,
    ],
    p.timeoutMs + 1000,
  );
  return r.code === 0;
}
