/**
 * The lab kubelet's API (the part the API server proxies `kubectl logs` and `kubectl exec` to), TLS on
 * 127.0.0.1 with a certificate of the cluster's CA (the API server verifies it, --kubelet-certificate-
 * authority) and client certificates of that CA required:
 *   GET /containerLogs/{ns}/{pod}/{container}?follow&tailLines&timestamps&previous&limitBytes
 *   GET /exec/{ns}/{pod}/{container}?command=…&stdin&stdout&stderr  (websocket, v5/v4.channel.k8s.io)
 *   GET /healthz
 * exec runs the command in the container's mount, network and UTS namespaces (execws.ts), with a
 * terminal when asked (`kubectl exec -it`).
 */

import { existsSync, readFileSync, statSync } from "node:fs";
import { k8s } from "../exec/index.ts";

const { negotiateProtocol } = k8s;

import { closeExec, type ExecData, execMessage, openExec } from "./execws.ts";
import type { Kubelet } from "./kubelet.ts";
import { formatLogLines } from "./logs.ts";

export interface KubeletServerOptions {
  port: number;
  certFile: string;
  keyFile: string;
  /** CA of client certificates (the API server's kubelet client). */
  clientCAFile?: string;
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
          tty: flag("tty", "tty"),
        };
        if (srv.upgrade(req, { data, headers: { "Sec-WebSocket-Protocol": protocol } })) return undefined;
        return text(400, "websocket upgrade failed");
      }
      return text(404, `no such kubelet endpoint: ${url.pathname}`);
    },
    websocket: { open: openExec, message: execMessage, close: closeExec },
  });
  return { port: server.port ?? o.port, stop: () => server.stop(true) };
}
