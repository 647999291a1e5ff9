/**
 * A raw JSON client for the Kubernetes API. Authentication and TLS come from a client-node
 * `KubeConfig` (kubeconfig files, in-cluster service-account tokens, exec plugins); bodies go out and
 * come back as the plain JSON the API server speaks. There is deliberately no model serialization:
 * client-node's models drop fields they do not know (a CRD schema's `default`/`enum` came out as
 * `_default`/`_enum` and were pruned) and write `Date`s with three fractional digits where a
 * `MicroTime` needs six (every Lease write was refused).
 */
import { Agent, request as httpsRequest, type RequestOptions } from "node:https";
import type { IncomingMessage } from "node:http";
import type { KubeConfig } from "@kubernetes/client-node";
import { KubeApiError, type KubeStatus } from "./errors.ts";

export type PatchType = "merge" | "strategic" | "json" | "apply";

const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  merge: "application/merge-patch+json",
  strategic: "application/strategic-merge-patch+json",
  json: "application/json-patch+json",
  apply: "application/apply-patch+yaml",
};

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOpts {
  query?: Query;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  /** Whole-request timeout (default 30 s; watches have none). */
  timeoutMs?: number;
}

export interface WatchEvent<T = KubeObject> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

/** What an informer needs of an object: its name, namespace and version. */
export interface Named {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
}

/** The parts of an object every client here needs; everything else passes through untouched. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: OwnerReference[];
    deletionTimestamp?: string;
    finalizers?: string[];
    creationTimestamp?: string;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface KubeList<T = KubeObject> {
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

function queryString(q: Query | undefined): string {
  if (!q) return "";
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : "";
}

export class KubeClient {
  readonly server: URL;
  private agent: Agent | undefined;

  constructor(readonly kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster?.server) throw new Error("kubeconfig has no current cluster with a server URL");
    this.server = new URL(cluster.server);
  }

  /** TLS options and fresh auth headers (tokens from files and exec plugins may rotate). */
  private async options(
    method: string,
    path: string,
    headers: Record<string, string>,
  ): Promise<RequestOptions> {
    const o: RequestOptions = { headers: { ...headers } };
    await this.kc.applyToHTTPSOptions(o);
    this.agent ??= new Agent({
      keepAlive: true,
      ca: o.ca,
      cert: o.cert,
      key: o.key,
      rejectUnauthorized: o.rejectUnauthorized,
      servername: o.servername,
    });
    const base = this.server.pathname.replace(/\/$/, "");
    return {
      protocol: this.server.protocol,
      hostname: this.server.hostname.replace(/^\[|\]$/g, ""),
      port: this.server.port || (this.server.protocol === "https:" ? 443 : 80),
      method,
      path: `${base}${path}`,
      headers: o.headers,
      auth: o.auth,
      agent: this.agent,
    };
  }

  private async send(method: string, path: string, o: RequestOpts): Promise<IncomingMessage> {
    const body =
      o.body === undefined ? undefined : typeof o.body === "string" ? o.body : JSON.stringify(o.body);
    const headers: Record<string, string> = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = o.contentType ?? "application/json";
    const opts = await this.options(method, path + queryString(o.query), headers);
    return await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpsRequest(opts, resolve);
      req.on("error", (e) =>
        reject(
          new KubeApiError(0, `${method} ${path}: ${e.message}`, undefined, { cause: e, unreachable: true }),
        ),
      );
      if (o.timeoutMs !== 0) {
        req.setTimeout(o.timeoutMs ?? 30_000, () =>
          req.destroy(new Error(`no answer in ${o.timeoutMs ?? 30_000} ms`)),
        );
      }
      if (o.signal) {
        if (o.signal.aborted) req.destroy(new Error("aborted"));
        o.signal.addEventListener("abort", () => req.destroy(new Error("aborted")), { once: true });
      }
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  /** One request; a JSON answer, or a KubeApiError carrying the API server's Status. */
  async request<T = unknown>(method: string, path: string, o: RequestOpts = {}): Promise<T> {
    const res = await this.send(method, path, o);
    const chunks: Buffer[] = [];
    try {
      for await (const c of res) chunks.push(c as Buffer);
    } catch (e) {
      throw new KubeApiError(0, `${method} ${path}: ${(e as Error).message}`, undefined, {
        cause: e,
        unreachable: true,
      });
    }
    const text = Buffer.concat(chunks).toString("utf8");
    const status = res.statusCode ?? 0;
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (status < 200 || status >= 300) {
      const st = json as KubeStatus | undefined;
      throw new KubeApiError(
        status,
        st?.message ?? `${method} ${path}: HTTP ${status} ${text.slice(0, 300)}`,
        st,
      );
    }
    return (json ?? text) as T;
  }

  get<T = KubeObject>(path: string, query?: Query): Promise<T> {
    return this.request<T>("GET", path, { query });
  }

  list<T = KubeObject>(path: string, query?: Query): Promise<KubeList<T>> {
    return this.request<KubeList<T>>("GET", path, { query });
  }

  create<T = KubeObject>(path: string, body: unknown, query?: Query): Promise<T> {
    return this.request<T>("POST", path, { body, query });
  }

  replace<T = KubeObject>(path: string, body: unknown, query?: Query): Promise<T> {
    return this.request<T>("PUT", path, { body, query });
  }

  patch<T = KubeObject>(path: string, body: unknown, type: PatchType, query?: Query): Promise<T> {
    return this.request<T>("PATCH", path, { body, contentType: PATCH_CONTENT_TYPE[type], query });
  }

  /** Server-side apply (`kubectl apply --server-side --force-conflicts` semantics). */
  apply<T = KubeObject>(path: string, obj: unknown, fieldManager: string): Promise<T> {
    return this.patch<T>(path, obj, "apply", { fieldManager, force: true });
  }

  /** Delete; a missing object is not an error (returns false). */
  async delete(path: string, query?: Query, body?: unknown): Promise<boolean> {
    try {
      await this.request("DELETE", path, { query, body });
      return true;
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 404) return false;
      throw e;
    }
  }

  /**
   * A watch stream as an async iterator of events. The iterator ends when the server closes the
   * stream (normal every few minutes) and throws KubeApiError when the request fails or an ERROR
   * event arrives (410 Gone: the resourceVersion is too old, relist). `onOpen`: called once the API
   * server accepted the watch (response headers, 2xx), before any event.
   */
  async *watch<T extends Named = KubeObject>(
    path: string,
    query: Query,
    signal?: AbortSignal,
    onOpen?: () => void,
  ): AsyncGenerator<WatchEvent<T>> {
    const res = await this.send("GET", path, { query: { ...query, watch: true }, signal, timeoutMs: 0 });
    if ((res.statusCode ?? 0) >= 300) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString("utf8");
      let st: KubeStatus | undefined;
      try {
        st = JSON.parse(text) as KubeStatus;
      } catch {
        st = undefined;
      }
      throw new KubeApiError(res.statusCode ?? 0, st?.message ?? `watch ${path}: HTTP ${res.statusCode}`, st);
    }
    onOpen?.();
    let buf = "";
    try {
      for await (const chunk of res) {
        buf += (chunk as Buffer).toString("utf8");
        let nl = buf.indexOf("\n");
        while (nl >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          nl = buf.indexOf("\n");
          if (!line) continue;
          const ev = JSON.parse(line) as WatchEvent<T>;
          if (ev.type === "ERROR") {
            const st = ev.object as unknown as KubeStatus;
            throw new KubeApiError(st.code ?? 500, st.message ?? "watch error", st);
          }
          yield ev;
        }
      }
    } catch (e) {
      if (e instanceof KubeApiError) throw e;
      if (signal?.aborted) return;
      throw new KubeApiError(0, `watch ${path}: ${(e as Error).message}`, undefined, {
        cause: e,
        unreachable: true,
      });
    } finally {
      res.destroy();
    }
  }

  /** Close idle keep-alive connections. */
  close(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }
}
