/**
 * One `kubectl exec` on the lab kubelet: the command runs in the container's mount, network and UTS
 * namespaces (nsenter on its pid) with the container's environment, framed on a websocket with the
 * Kubernetes channel protocol (v5/v4.channel.k8s.io). With `-t` the command gets a terminal (Bun's
 * openpty: the child's controlling tty; stdout and stderr are one stream, as the kubelet's), stdin is
 * written to it, and resize frames (channel 4, `{"Width","Height"}`) resize it.
 */
import type { ServerWebSocket } from "bun";
import { k8s } from "../exec/index.ts";

const { errorStatus, exitStatus, frame, PROTOCOL_V5, STREAM } = k8s;

export interface ExecData {
  argv: string[];
  target: { pid: number; env: Record<string, string> };
  protocol: string;
  wantStdin: boolean;
  tty: boolean;
  proc?: ReturnType<typeof Bun.spawn>;
}

/** Default terminal size until the client's first resize frame (kubectl sends one at once). */
const TTY_COLS = 80;
const TTY_ROWS = 24;

function spawnTty(
  ws: ServerWebSocket<ExecData>,
  argv: string[],
): { proc: ReturnType<typeof Bun.spawn>; done: Promise<void> } {
  let end: () => void = () => {};
  const done = new Promise<void>((r) => {
    end = r;
  });
  const proc = Bun.spawn(argv, {
    env: ws.data.target.env,
    terminal: {
      cols: TTY_COLS,
      rows: TTY_ROWS,
      data: (_t, data) => {
        ws.send(frame(STREAM.stdout, new Uint8Array(data)));
      },
      exit: () => end(),
    },
  });
  return { proc, done };
}

export function openExec(ws: ServerWebSocket<ExecData>): void {
  const d = ws.data;
  const argv = ["nsenter", "-t", String(d.target.pid), "-m", "-n", "-u", "--", ...d.argv];
  let streams: Promise<unknown>;
  if (d.tty) {
    const t = spawnTty(ws, argv);
    d.proc = t.proc;
    streams = t.done;
  } else {
    const proc = Bun.spawn(argv, {
      stdin: d.wantStdin ? "pipe" : "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: d.target.env,
    });
    d.proc = proc;
    const pump = async (s: ReadableStream<Uint8Array>, ch: number) => {
      for await (const chunk of s) ws.send(frame(ch, chunk));
    };
    streams = Promise.all([
      pump(proc.stdout as ReadableStream<Uint8Array>, STREAM.stdout),
      pump(proc.stderr as ReadableStream<Uint8Array>, STREAM.stderr),
    ]);
  }
  const proc = d.proc;
  void (async () => {
    const code = await proc.exited;
    // A terminal's output may still be draining when the process ends; a background job holding it
    // open must not keep the session alive.
    await Promise.race([streams, Bun.sleep(d.tty ? 500 : 60_000)]);
    if (d.tty) proc.terminal?.close();
    ws.send(frame(STREAM.error, JSON.stringify(exitStatus(code, d.argv))));
    ws.close(1000);
  })().catch((e: unknown) => {
    ws.send(frame(STREAM.error, JSON.stringify(errorStatus((e as Error).message))));
    ws.close(1011);
  });
}

/** A client frame: stdin data, end of stdin (v5), or a terminal resize. */
export function execMessage(ws: ServerWebSocket<ExecData>, msg: string | Buffer): void {
  const d = ws.data;
  const b = typeof msg === "string" ? Buffer.from(msg) : msg;
  if (b.length === 0 || !d.proc) return;
  if (d.tty) {
    const term = d.proc.terminal;
    if (!term) return;
    if (b[0] === STREAM.stdin && b.length > 1) term.write(b.subarray(1));
    else if (b[0] === STREAM.resize) {
      try {
        const r = JSON.parse(b.subarray(1).toString("utf8")) as { Width?: number; Height?: number };
        if ((r.Width ?? 0) > 0 && (r.Height ?? 0) > 0) term.resize(r.Width!, r.Height!);
      } catch {
        /* a malformed resize frame is ignored, as the kubelet does */
      }
    } else if (d.protocol === PROTOCOL_V5 && b[0] === STREAM.close && b[1] === STREAM.stdin)
      term.write("\x04");
    return;
  }
  if (typeof d.proc.stdin === "number" || !d.proc.stdin) return;
  const stdin = d.proc.stdin as import("bun").FileSink;
  if (b[0] === STREAM.stdin && b.length > 1) {
    stdin.write(b.subarray(1));
    void stdin.flush();
  } else if (d.protocol === PROTOCOL_V5 && b[0] === STREAM.close && b[1] === STREAM.stdin) void stdin.end();
}

export function closeExec(ws: ServerWebSocket<ExecData>): void {
  ws.data.proc?.kill("SIGKILL");
  if (ws.data.tty) ws.data.proc?.terminal?.close();
}
