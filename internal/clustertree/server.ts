/**
 * The kubelet API of the virtual nodes (clustertree.md §1.17): the root API server reaches it at the
 * address and `daemonEndpoints` port the virtual Nodes advertise, for `kubectl logs` and `kubectl
 * exec` on pods in leaves. Served over TLS; client certificates are required and verified against
 * `clientCA` by default (upstream only requests them: quirk 11, fixed). Routes:
 *   GET  /healthz
 *   GET  /containerLogs/{ns}/{pod}/{container}?follow&tailLines&limitBytes&previous&sinceSeconds&sinceTime&timestamps
 *        → the leaf API server's pods/log, streamed;
 *   GET|POST /exec/{ns}/{pod}/{container}?command=…&stdin&stdout&stderr&tty (an upgrade: SPDY or
 *        WebSocket) → the leaf API server's pods/exec, the upgraded connection piped both ways.
 * Everything else is 404, as upstream (no attach, port-forward or stats).
 */
import { createServer as httpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { type RequestOptions, request as httpsRequest } from "node:https";
import type { Duplex } from "node:stream";
import { type Server, type TLSSocket, createServer as tlsServer } from "node:tls";
import type { KubeClient } from "../kube/index.ts";
import type { Logger } from "../observability/index.ts";
import { type Authorizer, forbiddenText, kubeletAttributes, type KubeletUser, userOfCert } from "./authz.ts";

export interface KubeletServerOptions {
  cert: string;
  key: string;
  /** PEM of the CA whose client certificates are accepted (the root API server's kubelet client). */
  clientCA?: string;
  /** Accept any client (upstream's default); only with no clientCA. */
  insecureSkipClientVerify?: boolean;
  host?: string;
  port: number;
  /** Where a root pod runs (its virtual node, its leaf). */
  leafOfPod(ns: string, name: string): { cluster: string; client: KubeClient; node?: string } | undefined;
  /**
   * Authorize each request as a kubelet with `--authorization-mode=Webhook` (authz.ts). Without it,
   * any verified client is allowed (a kubelet's AlwaysAllow).
   */
  authorize?: Authorizer;
  logger: Logger;
}

const LOG_PARAMS = [
  "follow",
  "tailLines",
  "limitBytes",
  "previous",
  "sinceSeconds",
  "sinceTime",
  "timestamps",
];
/** The kubelet's exec flags (`input`, `output`, `error`) as the API server's pods/exec names them. */
const EXEC_PARAMS: Record<string, string> = {
  command: "command",
  input: "stdin",
  output: "stdout",
  error: "stderr",
  tty: "tty",
  stdin: "stdin",
  stdout: "stdout",
  stderr: "stderr",
};

/** Kubelet path → (ns, pod, container, the leaf API path with its query). Pure. */
export function leafPath(
  url: string,
): { kind: "log" | "exec"; ns: string; pod: string; path: string } | undefined {
  const u = new URL(url, "https://x");
  const m = /^\/(containerLogs|exec)\/([^/]+)\/([^/]+)\/([^/]+)\/?$/.exec(u.pathname);
  if (!m) return undefined;
  const [, route, ns, pod, container] = m as unknown as [string, string, string, string, string];
  const kind = route === "containerLogs" ? "log" : "exec";
  const q = new URLSearchParams({ container: decodeURIComponent(container) });
  if (kind === "log") for (const p of LOG_PARAMS) for (const v of u.searchParams.getAll(p)) q.append(p, v);
  else
    for (const [k, v] of u.searchParams) {
      const to = EXEC_PARAMS[k];
      if (to) q.append(to, to === "command" ? v : v === "1" || v === "true" ? "true" : "false");
    }
  return {
    kind,
    ns: decodeURIComponent(ns),
    pod: decodeURIComponent(pod),
    path: `/api/v1/namespaces/${ns}/pods/${pod}/${kind}?${q.toString()}`,
  };
}

async function leafRequest(
  client: KubeClient,
  method: string,
  path: string,
  headers: Record<string, string>,
): Promise<RequestOptions> {
  const o: RequestOptions = { headers };
  await client.kc.applyToHTTPSOptions(o);
  const s = client.server;
  return {
    ...o,
    protocol: s.protocol,
    hostname: s.hostname.replace(/^\[|\]$/g, ""),
    port: s.port || 443,
    method,
    path: `${s.pathname.replace(/\/$/, "")}${path}`,
    agent: false,
  };
}

const UPGRADE_HEADERS = [
  "upgrade",
  "connection",
  "x-stream-protocol-version",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-protocol",
  "sec-websocket-extensions",
];

/**
 * Authorize a request for a pod's virtual node: undefined when allowed, else [status, text]. No
 * verified certificate (only possible with insecureSkipClientVerify) is 401, as a kubelet without
 * anonymous access answers.
 */
/** Client certificate subjects, by TLS socket (Bun's https server does not expose peer certificates). */
type Peers = WeakMap<object, Record<string, string | string[]> | undefined>;

async function check(
  o: KubeletServerOptions,
  peers: Peers,
  req: IncomingMessage,
  node: string,
): Promise<[number, string] | undefined> {
  if (!o.authorize) return undefined;
  const user: KubeletUser | undefined = userOfCert(peers.get(req.socket));
  if (!user) return [401, "Unauthorized"];
  const a = kubeletAttributes(req.method ?? "GET", req.url ?? "/", node);
  const r = await o.authorize(user, a);
  if (r.allowed) return undefined;
  o.logger.info(
    { user: user.name, groups: user.groups, ...a, reason: r.reason },
    "kubelet API request forbidden",
  );
  return [403, forbiddenText(user, a)];
}

/** Logs: authorize, then stream the leaf's pods/log. */
function onRequest(o: KubeletServerOptions, peers: Peers, log: Logger) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    void (async () => {
      if (req.url === "/healthz") {
        res.writeHead(200).end("ok");
        return;
      }
      const t = leafPath(req.url ?? "/");
      if (t?.kind !== "log" || req.method !== "GET") {
        res.writeHead(404).end("not found");
        return;
      }
      const leaf = o.leafOfPod(t.ns, t.pod);
      const denied = await check(o, peers, req, leaf?.node ?? "");
      if (denied) {
        res.writeHead(denied[0], { "Content-Type": "text/plain" }).end(denied[1]);
        return;
      }
      if (!leaf) {
        res.writeHead(404).end(`pod ${t.ns}/${t.pod} is not on a virtual node of a connected leaf`);
        return;
      }
      const opts = await leafRequest(leaf.client, "GET", t.path, { Accept: "*/*" });
      const up = httpsRequest(opts, (lr) => {
        res.writeHead(lr.statusCode ?? 502, { "Content-Type": lr.headers["content-type"] ?? "text/plain" });
        lr.pipe(res);
      });
      up.on("error", (e) => {
        if (!res.headersSent) res.writeHead(502);
        res.end(`leaf ${leaf.cluster}: ${e.message}`);
      });
      req.on("close", () => up.destroy());
      up.end();
    })().catch((e) => {
      log.warn({ err: (e as Error).message, url: req.url }, "kubelet API request failed");
      if (!res.headersSent) res.writeHead(500);
      res.end((e as Error).message);
    });
  };
}

/** Exec: authorize, then pipe the upgraded connection to the leaf's pods/exec. */
function onUpgrade(o: KubeletServerOptions, peers: Peers, log: Logger) {
  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    void (async () => {
      const t = leafPath(req.url ?? "/");
      const leaf = t?.kind === "exec" ? o.leafOfPod(t.ns, t.pod) : undefined;
      const denied = await check(o, peers, req, leaf?.node ?? "");
      if (denied) {
        socket.end(
          `HTTP/1.1 ${denied[0]} ${denied[0] === 401 ? "Unauthorized" : "Forbidden"}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(denied[1])}\r\nConnection: close\r\n\r\n${denied[1]}`,
        );
        return;
      }
      if (!t || !leaf) {
        socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      const headers: Record<string, string> = {};
      for (const h of UPGRADE_HEADERS) {
        const v = req.headers[h];
        if (v !== undefined) headers[h] = Array.isArray(v) ? v.join(", ") : v;
      }
      const opts = await leafRequest(leaf.client, req.method ?? "POST", t.path, headers);
      const up = httpsRequest(opts);
      up.on("upgrade", (lr, leafSocket, leafHead) => {
        const lines = [`HTTP/1.1 ${lr.statusCode} ${lr.statusMessage ?? "Switching Protocols"}`];
        for (let i = 0; i < lr.rawHeaders.length; i += 2)
          lines.push(`${lr.rawHeaders[i]}: ${lr.rawHeaders[i + 1]}`);
        socket.write(`${lines.join("\r\n")}\r\n\r\n`);
        if (leafHead.length > 0) socket.write(leafHead);
        if (head.length > 0) leafSocket.write(head);
        leafSocket.pipe(socket);
        socket.pipe(leafSocket);
        const end = (): void => {
          leafSocket.destroy();
          socket.destroy();
        };
        leafSocket.on("error", end).on("close", end);
        socket.on("error", end).on("close", end);
      });
      up.on("response", (lr) => {
        // no upgrade: pass the leaf's answer (an error Status) back and close
        const chunks: Buffer[] = [];
        lr.on("data", (c: Buffer) => chunks.push(c));
        lr.on("end", () => {
          const body = Buffer.concat(chunks);
          socket.end(
            `HTTP/1.1 ${lr.statusCode} ${lr.statusMessage}\r\nContent-Type: ${lr.headers["content-type"] ?? "text/plain"}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.toString("utf8")}`,
          );
        });
      });
      up.on("error", (e) =>
        socket.end(
          `HTTP/1.1 502 Bad Gateway\r\nContent-Length: ${Buffer.byteLength(e.message)}\r\n\r\n${e.message}`,
        ),
      );
      up.end();
    })().catch((e) => {
      log.warn({ err: (e as Error).message, url: req.url }, "kubelet API upgrade failed");
      socket.destroy();
    });
  };
}

export function startKubeletServer(
  o: KubeletServerOptions,
): Promise<{ server: Server; port: number; stop(): Promise<void> }> {
  if (!o.clientCA && !o.insecureSkipClientVerify)
    throw new Error("the kubelet API needs a client CA (or an explicit insecure opt-out)");
  // TLS first (the verified peer certificate is read there), then HTTP on the TLS socket.
  const peers: Peers = new WeakMap();
  const server = httpServer();
  const tls: Server = tlsServer(
    {
      cert: o.cert,
      key: o.key,
      ca: o.clientCA,
      requestCert: true,
      rejectUnauthorized: !o.insecureSkipClientVerify,
      minVersion: "TLSv1.2",
    },
    (sock: TLSSocket) => {
      peers.set(
        sock,
        sock.authorized
          ? (sock.getPeerCertificate()?.subject as unknown as Record<string, string | string[]>)
          : undefined,
      );
      server.emit("connection", sock);
    },
  );
  const log = o.logger;
  server.on("request", onRequest(o, peers, log));
  server.on("upgrade", onUpgrade(o, peers, log));
  return new Promise((resolve, reject) => {
    tls.once("error", reject);
    tls.listen(o.port, o.host ?? "0.0.0.0", () => {
      const addr = tls.address();
      const port = typeof addr === "object" && addr ? addr.port : o.port;
      log.info({ port, verifyClients: !o.insecureSkipClientVerify }, "kubelet API listening");
      resolve({
        server: tls,
        port,
        stop: () =>
          new Promise<void>((r) => {
            server.close();
            tls.close(() => r());
          }),
      });
    });
  });
}
