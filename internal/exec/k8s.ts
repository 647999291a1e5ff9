/**
 * Kubernetes websocket streaming protocol (remotecommand v4/v5 channel.k8s.io): pure codec.
 * Every binary frame starts with a stream byte.
 */
export const PROTOCOL_V5 = "v5.channel.k8s.io";
export const PROTOCOL_V4 = "v4.channel.k8s.io";
export const SUPPORTED_PROTOCOLS = [PROTOCOL_V5, PROTOCOL_V4] as const;

export const STREAM = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const;

/** Pick the server protocol from the client's Sec-WebSocket-Protocol header (client order). */
export function negotiateProtocol(header: string | undefined | null): string | null {
  if (!header) return null;
  for (const p of header.split(",").map((s) => s.trim())) {
    if ((SUPPORTED_PROTOCOLS as readonly string[]).includes(p)) return p;
  }
  return null;
}

export function frame(stream: number, data: Uint8Array | string): Uint8Array {
  const body = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const out = new Uint8Array(body.length + 1);
  out[0] = stream;
  out.set(body, 1);
  return out;
}

export interface K8sStatus {
  apiVersion?: string;
  kind?: string;
  metadata: Record<string, never>;
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  details?: { causes: { reason: string; message: string }[] };
}

/** The status kubelet sends on stream 3 when the command ends. */
export function exitStatus(exitCode: number, command: string[] = []): K8sStatus {
  if (exitCode === 0) return { metadata: {}, status: "Success" };
  return {
    metadata: {},
    status: "Failure",
    message: `command terminated with non-zero exit code: error executing command [${command.join(" ")}], exit code ${exitCode}`,
    reason: "NonZeroExitCode",
    details: { causes: [{ reason: "ExitCode", message: String(exitCode) }] },
  };
}

/** A failure not tied to an exit code (bad request, timeout, internal error). */
export function errorStatus(message: string, reason = "InternalError"): K8sStatus {
  return { metadata: {}, status: "Failure", message, reason };
}

/** Exit code carried by a status (0 on Success; -1 when a failure has no ExitCode cause). */
export function exitCodeOf(status: K8sStatus): number {
  if (status.status === "Success") return 0;
  const cause = status.details?.causes.find((c) => c.reason === "ExitCode");
  const n = cause ? Number.parseInt(cause.message, 10) : Number.NaN;
  return Number.isFinite(n) ? n : -1;
}

export function parseResize(body: Uint8Array): { cols: number; rows: number } | null {
  try {
    const v = JSON.parse(new TextDecoder().decode(body)) as { Width?: unknown; Height?: unknown };
    const cols = Number(v.Width);
    const rows = Number(v.Height);
    if (
      !Number.isInteger(cols) ||
      !Number.isInteger(rows) ||
      cols <= 0 ||
      rows <= 0 ||
      cols > 10000 ||
      rows > 10000
    )
      return null;
    return { cols, rows };
  } catch {
    return null;
  }
}

export function resizeFrame(cols: number, rows: number): Uint8Array {
  return frame(STREAM.resize, JSON.stringify({ Width: cols, Height: rows }));
}
