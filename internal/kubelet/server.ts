/**
 * The lab kubelet's API (the part the API server proxies `kubectl logs` and `kubectl exec` to), TLS on
 * 127.0.0.1 with a certificate of the cluster's CA (the API server verifies it, --kubelet-certificate-
 * authority) and client certificates of that CA required:
 *   GET /containerLogs/{ns}/{pod}/{container}?follow&tailLines&timestamps&previous&limitBytes
 *   GET /exec/{ns}/{pod}/{container}?command=…&stdin&stdout&stderr  (websocket, v5/v4.channel.k8s.io)
 *   GET /healthz
 * exec runs the command in the container's mount, network and UTS namespaces (nsenter on its pid);
 * there is no terminal (tty is refused with a clear message: the lab has no pty support).
 */

import { existsSync, readFileSync, statSync } from "node:fs";
import type { ServerWebSocket } from "bun";
import { k8s } from "../exec/index.ts";

const { errorStatus, exitStatus, frame, negotiateProtocol, PROTOCOL_V5, STREAM } = k8s;

import type { Kubelet } from "./kubelet.ts";
import { formatLogLines } from "./logs.ts";

export interface KubeletServerOptions {
  port: number;
  certFile: string;
  keyFile: string;
  /** CA of client certificates (the API server's kubelet client). */
  clientCAFile?: string;
}

interface ExecData {
  argv: string[];
  target: { pid: number; env: Record<string, string> };
  protocol: string;
  wantStdin: boolean;
  proc?: ReturnType<typeof Bun.spawn>;
}

const text = (status: number, body: string) =>
  new Response(body, { status, headers: { "Content-Type": "text/plain" } });

function logsResponse(
  k: Kubelet,
  ns: string,
  pod: string,
  container: string,
  q: URLSearchParams,
  signal: AbortSignal,
): Response {
  const w = k.worker(ns, pod);
  if (!w) return text(404, `pod ${ns}/${pod} is not on node ${k.name}`);
  const file = w.logPath(container, q.get("previous") === "true");
  if (!file || !existsSync(file))
    return text(
      400,
      `container "${container}" in pod "${pod}" has no ${q.get("previous") === "true" ? "previous " : ""}log`,
    );
  const opts = {
    timestamps: q.get("timestamps") === "true",
    tailLines: q.has("tailLines") ? Number(q.get("tailLines")) : undefined,
    sinceTime: q.get("sinceTime") ?? undefined,
  };
  const first = formatLogLines(readFileSync(file, "utf8"), opts);
  if (q.get("follow") !== "true") return text(200, first.text);
  let offset = first.bytes;
  const stream = new ReadableStream<Uint8Array>({
    async start(ctrl) {
      ctrl.enqueue(new TextEncoder().encode(first.text));
      while (!signal.aborted) {
        await Bun.sleep(200);
        if (!existsSync(file)) break;
        const size = statSync(file).size;
        if (size > offset) {
          const chunk = readFileSync(file).subarray(offset, size).toString("utf8");
          const cut = chunk.lastIndexOf("\n") + 1;
          offset += Buffer.byteLength(chunk.slice(0, cut));
          const out = formatLogLines(chunk.slice(0, cut), { timestamps: opts.timestamps });
          if (out.text) ctrl.enqueue(new TextEncoder().encode(out.text));
        }
        // The container ended (or restarted into a new file): its log is complete.
        if (w.logPath(container) !== file && w.logPath(container, true) !== file) break;
      }
      ctrl.close();
    },
  });
  return new Response(stream, { headers: { "Content-Type": "text/plain" } });
}

export function serveKubeletApi(k: Kubelet, o: KubeletServerOptions): { port: number; stop(): void } {
  const server = Bun.serve<ExecData, never>({
    hostname: "127.0.0.1",
    port: o.port,
    tls: {
      cert: Bun.file(o.certFile),
      key: Bun.file(o.keyFile),
      ...(o.clientCAFile
        ? { ca: Bun.file(o.clientCAFile), requestCert: true, rejectUnauthorized: true }
        : {}),
    },
    fetch(req, srv) {
      const url = new URL(req.url);
      const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
      if (url.pathname === "/healthz") return text(200, "ok");
      if (parts[0] === "containerLogs" && parts.length === 4)
        return logsResponse(k, parts[1]!, parts[2]!, parts[3]!, url.searchParams, req.signal);
      if (parts[0] === "exec" && (parts.length === 4 || parts.length === 5)) {
        const [, ns, pod, container] = parts.length === 5 ? [parts[0], parts[1], parts[2], parts[4]] : parts;
        const w = k.worker(ns!, pod!);
        const target = w?.container(container);
        if (!w || !target)
          return text(404, `container ${container} of pod ${ns}/${pod} is not running on ${k.name}`);
        const argv = url.searchParams.getAll("command");
        if (argv.length === 0) return text(400, "exec needs a command");
        // The API server asks with input/output/error/tty=1; direct clients with stdin/…=true.
        const flag = (a: string, b: string) =>
          ["1", "true"].includes(url.searchParams.get(a) ?? url.searchParams.get(b) ?? "");
        if (flag("tty", "tty")) return text(400, "the lab kubelet has no terminals: run exec without -t");
        const protocol = negotiateProtocol(req.headers.get("sec-websocket-protocol"));
        if (!protocol)
          return text(
            400,
            "exec needs a websocket with v5.channel.k8s.io or v4.channel.k8s.io (SPDY is not served)",
          );
        const data: ExecData = {
          argv,
          target,
          protocol,
          wantStdin: flag("input", "stdin"),
        };
        if (srv.upgrade(req, { data, headers: { "Sec-WebSocket-Protocol": protocol } })) return undefined;
        return text(400, "websocket upgrade failed");
      }
      return text(404, `no such kubelet endpoint: ${url.pathname}`);
    },
    websocket: {
      open(ws: ServerWebSocket<ExecData>) {
        const d = ws.data;
        const proc = Bun.spawn(["nsenter", "-t", String(d.target.pid), "-m", "-n", "-u", "--", ...d.argv], {
          stdin: d.wantStdin ? "pipe" : "ignore",
          stdout: "pipe",
          stderr: "pipe",
          env: d.target.env,
        });
        d.proc = proc;
        const pump = async (s: ReadableStream<Uint8Array>, ch: number) => {
          for await (const chunk of s) ws.send(frame(ch, chunk));
        };
        void (async () => {
          await Promise.all([
            pump(proc.stdout as ReadableStream<Uint8Array>, STREAM.stdout),
            pump(proc.stderr as ReadableStream<Uint8Array>, STREAM.stderr),
          ]);
          const code = await proc.exited;
          ws.send(frame(STREAM.error, JSON.stringify(exitStatus(code, d.argv))));
          ws.close(1000);
        })().catch((e: unknown) => {
          ws.send(frame(STREAM.error, JSON.stringify(errorStatus((e as Error).message))));
          ws.close(1011);
        });
      },
      message(ws: ServerWebSocket<ExecData>, msg: string | Buffer) {
        const d = ws.data;
        const b = typeof msg === "string" ? Buffer.from(msg) : msg;
        if (b.length === 0 || !d.proc || typeof d.proc.stdin === "number" || !d.proc.stdin) return;
        const stdin = d.proc.stdin as import("bun").FileSink;
        if (b[0] === STREAM.stdin && b.length > 1) {
          stdin.write(b.subarray(1));
          void stdin.flush();
        } else if (d.protocol === PROTOCOL_V5 && b[0] === STREAM.close && b[1] === STREAM.stdin)
          void stdin.end();
      },
      close(ws: ServerWebSocket<ExecData>) {
        ws.data.proc?.kill("SIGKILL");
      },
    },
  });
  return { port: server.port ?? o.port, stop: () => server.stop(true) };
}
