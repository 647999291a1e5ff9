/**
 * A Kubernetes API server test double that speaks the real wire protocol over HTTP on 127.0.0.1:
 * REST verbs, resourceVersion/409, watch streams (JSON lines, bookmarks, 410 Expired), status
 * subresources, CRD-defined kinds, label/field selectors, discovery. Drive @kubernetes/client-node with it.
 */
import { parse as parseYaml } from "yaml";
import { ApiError, badRequest } from "./errors.ts";
import { isObject, type Json, type JsonObject, jsonPatch, mergePatch, strategicMergePatch } from "./patch.ts";
import type { ResourceType } from "./resources.ts";
import { parseSelector } from "./selector.ts";
import { FakeStore, type KubeObject, type StoreOptions, type WatchEvent } from "./store.ts";

export interface FakeApiServerOptions extends StoreOptions {
  /** Port to listen on (default 0: random). */
  port?: number;
  /** Require `Authorization: Bearer <token>` (401 otherwise). */
  token?: string;
  /** Reuse a store (e.g. the one of a stopped server) instead of a fresh one. */
  store?: FakeStore;
  /** CustomResourceDefinition objects to register at start. */
  crds?: JsonObject[];
  /** Send BOOKMARK events on every watch that allows them, every N ms (default: only via bookmark()). */
  bookmarkIntervalMs?: number;
}

export interface FakeApiServer {
  readonly url: string;
  readonly port: number;
  readonly store: FakeStore;
  /** A kubeconfig (YAML) pointing at this server. */
  kubeconfig(opts?: { context?: string; namespace?: string }): string;
  /** Send a BOOKMARK with the current resourceVersion on every watch that asked for bookmarks. */
  bookmark(): void;
  /** Number of open watch streams. */
  watchCount(): number;
  /** Close every open watch stream (as an apiserver does at its request timeout). */
  closeWatches(): void;
  /** Stop listening and drop every connection. The store survives. */
  stop(): Promise<void>;
  /** Listen again on the same port with the same store. */
  start(): Promise<void>;
}

interface OpenWatch {
  bookmarks: boolean;
  rt: ResourceType;
  push(line: Json): void;
  close(): void;
}

interface Route {
  rt: ResourceType;
  namespace: string | undefined;
  name: string | undefined;
  subresource: "status" | undefined;
}

const json = (body: unknown, status = 200): Response =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

const apiVersionOf = (rt: ResourceType): string => (rt.group ? `${rt.group}/${rt.version}` : rt.version);

function stripForList(rt: ResourceType, o: KubeObject): KubeObject {
  // The real apiserver omits kind/apiVersion on items of built-in lists; CRD lists keep them.
  if (rt.schema) return o;
  const { kind: _k, apiVersion: _a, ...rest } = o;
  return rest as KubeObject;
}

export async function startFakeApiServer(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
  const store = opts.store ?? new FakeStore(opts);
  const crdType = store.type("apiextensions.k8s.io", "customresourcedefinitions")!;
  for (const crd of opts.crds ?? []) {
    const name = (crd.metadata as JsonObject).name as string;
    try {
      store.get(crdType, undefined, name);
    } catch {
      store.create(crdType, undefined, crd);
    }
  }
  const watches = new Set<OpenWatch>();
  let server: ReturnType<typeof Bun.serve> | undefined;
  let port = opts.port ?? 0;
  let timer: ReturnType<typeof setInterval> | undefined;

  const bookmark = (): void => {
    for (const w of watches) {
      if (!w.bookmarks) continue;
      w.push({
        type: "BOOKMARK",
        object: {
          kind: w.rt.kind,
          apiVersion: apiVersionOf(w.rt),
          metadata: { resourceVersion: String(store.resourceVersion()) },
        },
      });
    }
  };

  function route(url: URL): Route | Response {
    const seg = url.pathname.split("/").filter((s) => s.length > 0);
    let group: string;
    let version: string;
    let rest: string[];
    if (seg[0] === "api" && seg.length >= 2) {
      group = "";
      version = seg[1]!;
      rest = seg.slice(2);
    } else if (seg[0] === "apis" && seg.length >= 3) {
      group = seg[1]!;
      version = seg[2]!;
      rest = seg.slice(3);
    } else return discovery(seg);
    if (rest.length === 0) return resourceList(group, version);
    let namespace: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3) {
      const candidate = store.type(group, rest[2]!, version);
      if (candidate?.namespaced) {
        namespace = rest[1];
        rest = rest.slice(2);
      }
    }
    const rt = store.type(group, rest[0]!, version);
    if (!rt) {
      return json(
        new ApiError(404, "NotFound", "the server could not find the requested resource").toStatus(),
        404,
      );
    }
    const sub = rest[2];
    if (sub !== undefined && !(sub === "status" && rt.statusSubresource)) {
      return json(
        new ApiError(404, "NotFound", "the server could not find the requested resource").toStatus(),
        404,
      );
    }
    return { rt, namespace, name: rest[1], subresource: sub as "status" | undefined };
  }

  function discovery(seg: string[]): Response {
    const path = seg.join("/");
    if (path === "version") {
      return json({ major: "1", minor: "31", gitVersion: "v1.31.0-kosmos-fake", platform: "linux/amd64" });
    }
    if (path === "healthz" || path === "readyz" || path === "livez") return new Response("ok");
    if (path === "api")
      return json({ kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [] });
    if (path === "apis") {
      const groups = new Map<string, Set<string>>();
      for (const t of store.resourceTypes()) {
        if (!t.group) continue;
        const s = groups.get(t.group) ?? new Set<string>();
        s.add(t.version);
        groups.set(t.group, s);
      }
      return json({
        kind: "APIGroupList",
        apiVersion: "v1",
        groups: [...groups].map(([name, vs]) => {
          const versions = [...vs].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
          return { name, versions, preferredVersion: versions[0] };
        }),
      });
    }
    return json(
      new ApiError(404, "NotFound", "the server could not find the requested resource").toStatus(),
      404,
    );
  }

  function resourceList(group: string, version: string): Response {
    const types = store.resourceTypes().filter((t) => t.group === group && t.version === version);
    if (types.length === 0) {
      return json(
        new ApiError(404, "NotFound", "the server could not find the requested resource").toStatus(),
        404,
      );
    }
    const verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
    return json({
      kind: "APIResourceList",
      apiVersion: "v1",
      groupVersion: group ? `${group}/${version}` : version,
      resources: types.flatMap((t) => {
        const main = {
          name: t.resource,
          singularName: t.singular,
          namespaced: t.namespaced,
          kind: t.kind,
          verbs,
          shortNames: t.shortNames,
        };
        return t.statusSubresource
          ? [
              main,
              {
                name: `${t.resource}/status`,
                singularName: "",
                namespaced: t.namespaced,
                kind: t.kind,
                verbs: ["get", "patch", "update"],
              },
            ]
          : [main];
      }),
    });
  }

  async function readBody(req: Request): Promise<Json> {
    const text = await req.text();
    const ct = req.headers.get("content-type") ?? "";
    try {
      if (ct.includes("yaml")) return parseYaml(text) as Json;
      return JSON.parse(text) as Json;
    } catch (e) {
      throw badRequest(`error decoding request body: ${(e as Error).message}`);
    }
  }

  function startWatch(r: Route, url: URL): Response {
    const q = url.searchParams;
    const rvParam = q.get("resourceVersion");
    const fromRv = rvParam === null || rvParam === "" ? undefined : Number(rvParam);
    if (fromRv !== undefined && !Number.isInteger(fromRv))
      throw badRequest(`invalid resourceVersion "${rvParam}"`);
    const labels = parseSelector(q.get("labelSelector"));
    const fields = parseSelector(q.get("fieldSelector"));
    const timeoutSeconds = Number(q.get("timeoutSeconds") ?? "0");
    const enc = new TextEncoder();
    let ow: OpenWatch | undefined;
    let unsubscribe: (() => void) | undefined;
    let timeout: ReturnType<typeof setTimeout> | undefined;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        let closed = false;
        const done = (): void => {
          if (closed) return;
          closed = true;
          unsubscribe?.();
          if (timeout) clearTimeout(timeout);
          if (ow) watches.delete(ow);
          try {
            controller.close();
          } catch {
            /* already closed by the client */
          }
        };
        const push = (line: Json): void => {
          if (closed) return;
          try {
            controller.enqueue(enc.encode(`${JSON.stringify(line)}\n`));
          } catch {
            done();
          }
        };
        ow = { bookmarks: q.get("allowWatchBookmarks") === "true", rt: r.rt, push, close: done };
        const send = (ev: WatchEvent): void => push({ type: ev.type, object: ev.object });
        try {
          unsubscribe = store.watch(
            { gr: `${r.rt.resource}.${r.rt.group}`, namespace: r.namespace, labels, fields, send },
            r.rt,
            fromRv,
          );
        } catch (e) {
          if (e instanceof ApiError) {
            push({ type: "ERROR", object: e.toStatus() as unknown as Json });
            done();
            return;
          }
          throw e;
        }
        watches.add(ow);
        // Bun sends the response head with the first chunk: flush it now, as the apiserver does.
        controller.enqueue(enc.encode("\n"));
        if (timeoutSeconds > 0) timeout = setTimeout(done, timeoutSeconds * 1000);
      },
      cancel() {
        unsubscribe?.();
        if (timeout) clearTimeout(timeout);
        if (ow) watches.delete(ow);
      },
    });
    return new Response(stream, {
      status: 200,
      headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
    });
  }

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (opts.token !== undefined && req.headers.get("authorization") !== `Bearer ${opts.token}`) {
      return json(new ApiError(401, "Unauthorized", "Unauthorized").toStatus(), 401);
    }
    const r = route(url);
    if (r instanceof Response) return r;
    const { rt, namespace, name, subresource } = r;
    const q = url.searchParams;
    const method = req.method.toUpperCase();
    if (method === "GET" && name === undefined) {
      if (q.get("watch") === "true" || q.get("watch") === "1") return startWatch(r, url);
      const list = store.list(
        rt,
        namespace,
        parseSelector(q.get("labelSelector")),
        parseSelector(q.get("fieldSelector")),
      );
      return json({
        kind: rt.listKind,
        apiVersion: apiVersionOf(rt),
        metadata: { resourceVersion: list.resourceVersion },
        items: list.items.map((o) => stripForList(rt, o)),
      });
    }
    if (method === "GET") return json(store.get(rt, namespace, name!));
    if (method === "POST" && name === undefined) {
      const body = await readBody(req);
      if (!isObject(body)) throw badRequest("request body must be an object");
      if (q.get("dryRun") === "All") return json(body, 201);
      return json(store.create(rt, namespace, body), 201);
    }
    if (name === undefined) {
      return json(
        new ApiError(
          405,
          "MethodNotAllowed",
          `the server does not allow this method on the requested resource`,
        ).toStatus(),
        405,
      );
    }
    if (method === "PUT") {
      const body = await readBody(req);
      if (!isObject(body)) throw badRequest("request body must be an object");
      return json(store.update(rt, namespace, name, body, subresource));
    }
    if (method === "PATCH") {
      const ct = (req.headers.get("content-type") ?? "").split(";")[0]!.trim();
      const body = await readBody(req);
      if (ct === "application/apply-patch+yaml") {
        if (!isObject(body)) throw badRequest("apply patch must be an object");
        let current: KubeObject | undefined;
        try {
          current = store.get(rt, namespace, name);
        } catch {
          return json(
            store.create(rt, namespace, { ...body, metadata: { ...(body.metadata as JsonObject), name } }),
            201,
          );
        }
        const merged = mergePatch(current, body) as JsonObject;
        (merged.metadata as JsonObject).resourceVersion = current.metadata.resourceVersion ?? null;
        return json(store.update(rt, namespace, name, merged, subresource));
      }
      const current = store.get(rt, namespace, name);
      let next: Json;
      if (ct === "application/merge-patch+json") next = mergePatch(current, body);
      else if (ct === "application/json-patch+json") next = jsonPatch(current, body);
      else if (ct === "application/strategic-merge-patch+json") {
        if (rt.schema) {
          throw new ApiError(
            415,
            "UnsupportedMediaType",
            "strategic merge patch is not supported for custom resources",
          );
        }
        next = strategicMergePatch(current, body);
      } else {
        throw new ApiError(
          415,
          "UnsupportedMediaType",
          `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`,
        );
      }
      if (!isObject(next)) throw badRequest("patch produced a non-object");
      // A patch is applied to the current version: it conflicts only if it sets a stale resourceVersion itself.
      const meta = (isObject(next.metadata) ? next.metadata : {}) as JsonObject;
      const patchMeta = isObject(body) && isObject(body.metadata) ? body.metadata : {};
      if (patchMeta.resourceVersion === undefined)
        meta.resourceVersion = current.metadata.resourceVersion ?? null;
      next.metadata = meta;
      return json(store.update(rt, namespace, name, next, subresource));
    }
    if (method === "DELETE") {
      let precondition: string | undefined;
      const text = await req.text();
      if (text) {
        try {
          const b = JSON.parse(text) as JsonObject;
          const pre = isObject(b.preconditions) ? b.preconditions : {};
          if (typeof pre.resourceVersion === "string") precondition = pre.resourceVersion;
        } catch {
          throw badRequest("error decoding DeleteOptions");
        }
      }
      return json(store.delete(rt, namespace, name, precondition));
    }
    return json(
      new ApiError(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
      ).toStatus(),
      405,
    );
  }

  const listen = async (): Promise<void> => {
    server = Bun.serve({
      hostname: "127.0.0.1",
      port,
      idleTimeout: 0,
      fetch: async (req) => {
        try {
          return await handle(req);
        } catch (e) {
          if (e instanceof ApiError) return json(e.toStatus(), e.code);
          return json(
            new ApiError(500, "InternalError", `Internal error occurred: ${(e as Error).message}`).toStatus(),
            500,
          );
        }
      },
    });
    port = server.port ?? port;
    if (opts.bookmarkIntervalMs) timer = setInterval(bookmark, opts.bookmarkIntervalMs);
  };

  const closeWatches = (): void => {
    for (const w of [...watches]) w.close();
  };

  await listen();
  const api: FakeApiServer = {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    store,
    kubeconfig: (o = {}) => fakeKubeconfig(`http://127.0.0.1:${port}`, { token: opts.token, ...o }),
    bookmark,
    watchCount: () => watches.size,
    closeWatches,
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      closeWatches();
      await server?.stop(true);
      server = undefined;
    },
    async start() {
      if (!server) await listen();
    },
  };
  return api;
}

/** A kubeconfig YAML for a server URL (token auth when given). */
export function fakeKubeconfig(
  server: string,
  o: { token?: string | undefined; context?: string; namespace?: string } = {},
): string {
  const ctx = o.context ?? "fake";
  const user = o.token ? `    token: ${o.token}\n` : "    {}\n";
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    `- name: ${ctx}`,
    "  cluster:",
    `    server: ${server}`,
    ...(server.startsWith("http:") ? ["    insecure-skip-tls-verify: true"] : []),
    "contexts:",
    `- name: ${ctx}`,
    "  context:",
    `    cluster: ${ctx}`,
    `    user: ${ctx}`,
    ...(o.namespace ? [`    namespace: ${o.namespace}`] : []),
    `current-context: ${ctx}`,
    "users:",
    `- name: ${ctx}`,
    "  user:",
    user.trimEnd(),
    "",
  ].join("\n");
}
