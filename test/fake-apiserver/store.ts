/**
 * In-memory object storage with kube-apiserver semantics: a global resourceVersion counter, optimistic
 * concurrency (409 on stale resourceVersion), generation, finalizers, status subresources, and a bounded
 * event history that watches replay from (older versions answer 410 Expired).
 * The store outlives the HTTP server, so a server restart keeps the data, as etcd would.
 */
import { alreadyExists, ApiError, conflict, expired, invalid, notFound } from "./errors.ts";
import { clone, isObject, type Json, type JsonObject } from "./patch.ts";
import { builtinResources, ajvCauses, prune, type ResourceType, resourcesFromCrd } from "./resources.ts";
import { fieldsOf, matches, type Requirement } from "./selector.ts";

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface KubeObject extends JsonObject {
  metadata: JsonObject;
}

export interface WatchEvent {
  rv: number;
  gr: string;
  type: EventType;
  object: KubeObject;
}

export interface Watcher {
  gr: string;
  namespace?: string;
  labels: Requirement[];
  fields: Requirement[];
  send(ev: WatchEvent): void;
}

export interface StoreOptions {
  /** Events kept for watch replay; a watch from an older version gets 410 Expired. Default 1000. */
  historyLimit?: number;
  /** Service CIDR of this fake cluster, used to reject Services with an out-of-range clusterIP. */
  serviceCIDR?: string;
}

const grKey = (group: string, resource: string): string => `${resource}.${group}`;
const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, "Z");

function ipv4ToInt(ip: string): number | undefined {
  const p = ip.split(".").map(Number);
  if (p.length !== 4 || p.some((x) => !(x >= 0 && x <= 255))) return undefined;
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

function inCidr4(ip: string, cidr: string): boolean {
  const [base, len] = cidr.split("/");
  const a = ipv4ToInt(ip);
  const b = ipv4ToInt(base ?? "");
  const n = Number(len);
  if (a === undefined || b === undefined) return true;
  const mask = n === 0 ? 0 : (~0 << (32 - n)) >>> 0;
  return (a & mask) >>> 0 === (b & mask) >>> 0;
}

export class FakeStore {
  private rv = 0;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private history: WatchEvent[] = [];
  private readonly historyLimit: number;
  private readonly watchers = new Set<Watcher>();
  private readonly types = new Map<string, ResourceType>();
  readonly serviceCIDR: string | undefined;

  constructor(opts: StoreOptions = {}) {
    this.historyLimit = opts.historyLimit ?? 1000;
    this.serviceCIDR = opts.serviceCIDR;
    for (const t of builtinResources()) this.register(t);
    for (const ns of ["default", "kube-system", "kube-public", "kube-node-lease"]) {
      this.create(this.type("", "namespaces")!, undefined, {
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name: ns },
        spec: { finalizers: ["kubernetes"] },
        status: { phase: "Active" },
      });
    }
  }

  register(t: ResourceType): void {
    this.types.set(`${t.group}/${t.version}/${t.resource}`, t);
  }

  /** Every registered resource type (discovery). */
  resourceTypes(): ResourceType[] {
    return [...this.types.values()];
  }

  type(group: string, resource: string, version?: string): ResourceType | undefined {
    if (version) return this.types.get(`${group}/${version}/${resource}`);
    for (const t of this.types.values()) if (t.group === group && t.resource === resource) return t;
    return undefined;
  }

  resourceVersion(): number {
    return this.rv;
  }

  oldestReplayable(): number {
    return this.history.length > 0 ? this.history[0]!.rv - 1 : this.rv;
  }

  /** Drop all watch history (as etcd compaction does): every watch from an older version gets 410. */
  compact(): void {
    this.history = [];
  }

  private bucket(t: ResourceType): Map<string, KubeObject> {
    const k = grKey(t.group, t.resource);
    let b = this.objects.get(k);
    if (!b) {
      b = new Map();
      this.objects.set(k, b);
    }
    return b;
  }

  private emit(t: ResourceType, type: EventType, object: KubeObject): void {
    const ev: WatchEvent = { rv: this.rv, gr: grKey(t.group, t.resource), type, object: clone(object) };
    this.history.push(ev);
    if (this.history.length > this.historyLimit)
      this.history.splice(0, this.history.length - this.historyLimit);
    for (const w of this.watchers) if (this.watcherWants(w, ev)) w.send(ev);
    if (t.group === "apiextensions.k8s.io" && t.resource === "customresourcedefinitions") {
      if (type === "DELETED") this.unregisterCrd(object);
      else for (const rt of resourcesFromCrd(object)) this.register(rt);
    }
  }

  private unregisterCrd(crd: KubeObject): void {
    for (const rt of resourcesFromCrd(crd)) {
      this.types.delete(`${rt.group}/${rt.version}/${rt.resource}`);
      this.objects.delete(grKey(rt.group, rt.resource));
    }
  }

  private watcherWants(w: Watcher, ev: WatchEvent): boolean {
    if (w.gr !== ev.gr) return false;
    if (w.namespace !== undefined && ev.object.metadata.namespace !== w.namespace) return false;
    return (
      matches(w.labels, ev.object.metadata.labels as Record<string, string> | undefined) &&
      matches(w.fields, fieldsOf(ev.object as { metadata: { name?: string; namespace?: string } }))
    );
  }

  private key(namespace: string | undefined, name: string): string {
    return `${namespace ?? ""}/${name}`;
  }

  get(t: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const o = this.bucket(t).get(this.key(namespace, name));
    if (!o) throw notFound(t.resource, t.group, t.kind, name);
    return clone(o);
  }

  list(
    t: ResourceType,
    namespace: string | undefined,
    labels: Requirement[] = [],
    fields: Requirement[] = [],
  ): { items: KubeObject[]; resourceVersion: string } {
    const items = [...this.bucket(t).values()]
      .filter((o) => namespace === undefined || o.metadata.namespace === namespace)
      .filter((o) => matches(labels, o.metadata.labels as Record<string, string> | undefined))
      .filter((o) => matches(fields, fieldsOf(o as { metadata: { name?: string; namespace?: string } })))
      .sort((a, b) =>
        this.key(a.metadata.namespace as string, a.metadata.name as string).localeCompare(
          this.key(b.metadata.namespace as string, b.metadata.name as string),
        ),
      )
      .map((o) => clone(o));
    return { items, resourceVersion: String(this.rv) };
  }

  /** Admission: defaulting, pruning and schema validation for CRD kinds; a few built-in checks. */
  private admit(t: ResourceType, obj: KubeObject): KubeObject {
    const name = String(obj.metadata.name ?? "");
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) {
      throw invalid(t.kind, t.group, name, [
        {
          reason: "FieldValueInvalid",
          field: "metadata.name",
          message: `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`,
        },
      ]);
    }
    if (t.schema && t.validate) {
      const pruned = prune(obj, t.schema) as KubeObject;
      if (!t.validate(pruned)) throw invalid(t.kind, t.group, name, ajvCauses(t.validate));
      return pruned;
    }
    if (t.group === "" && t.resource === "services" && this.serviceCIDR) {
      const spec = isObject(obj.spec) ? obj.spec : {};
      const ip = typeof spec.clusterIP === "string" ? spec.clusterIP : undefined;
      if (ip && ip !== "None" && ip !== "" && !inCidr4(ip, this.serviceCIDR)) {
        throw invalid(t.kind, t.group, name, [
          {
            reason: "FieldValueInvalid",
            field: "spec.clusterIPs",
            message: `Invalid value: []string{"${ip}"}: failed to allocate IP ${ip}: the provided IP (${ip}) is not in the valid range. The range of valid IPs is ${this.serviceCIDR}`,
          },
        ]);
      }
    }
    return obj;
  }

  private checkNamespace(t: ResourceType, namespace: string | undefined): void {
    if (!t.namespaced) return;
    const nsType = this.type("", "namespaces")!;
    if (!namespace || !this.bucket(nsType).has(this.key(undefined, namespace))) {
      throw notFound("namespaces", "", "Namespace", namespace ?? "");
    }
  }

  create(t: ResourceType, namespace: string | undefined, input: JsonObject): KubeObject {
    const obj = clone(input) as KubeObject;
    obj.metadata = isObject(obj.metadata) ? obj.metadata : {};
    if (!obj.metadata.name && typeof obj.metadata.generateName === "string") {
      obj.metadata.name = obj.metadata.generateName + Math.random().toString(36).slice(2, 7);
    }
    if (!obj.metadata.name) {
      throw invalid(t.kind, t.group, "", [
        {
          reason: "FieldValueRequired",
          field: "metadata.name",
          message: "Required value: name or generateName is required",
        },
      ]);
    }
    this.checkNamespace(t, namespace);
    const name = obj.metadata.name as string;
    const b = this.bucket(t);
    if (b.has(this.key(namespace, name))) throw alreadyExists(t.resource, t.group, name);
    obj.apiVersion = t.group ? `${t.group}/${t.version}` : t.version;
    obj.kind = t.kind;
    if (t.namespaced) obj.metadata.namespace = namespace ?? "default";
    else delete obj.metadata.namespace;
    const admitted = this.admit(t, obj);
    this.rv++;
    admitted.metadata.uid = crypto.randomUUID();
    admitted.metadata.creationTimestamp = now();
    admitted.metadata.resourceVersion = String(this.rv);
    admitted.metadata.generation = 1;
    delete admitted.metadata.deletionTimestamp;
    if (t.resource === "customresourcedefinitions") {
      admitted.status = {
        conditions: [
          { type: "NamesAccepted", status: "True", reason: "NoConflicts", lastTransitionTime: now() },
          { type: "Established", status: "True", reason: "InitialNamesAccepted", lastTransitionTime: now() },
        ],
        acceptedNames: (admitted.spec as JsonObject).names ?? null,
        storedVersions: ((admitted.spec as JsonObject).versions as JsonObject[])
          .filter((v) => v.storage === true)
          .map((v) => v.name as string),
      };
    }
    b.set(this.key(namespace, name), admitted);
    this.emit(t, "ADDED", admitted);
    return clone(admitted);
  }

  /**
   * Replace an object (PUT). `subresource === "status"` changes only status; otherwise status is kept
   * for kinds with a status subresource. A stale metadata.resourceVersion answers 409 Conflict.
   */
  update(
    t: ResourceType,
    namespace: string | undefined,
    name: string,
    input: JsonObject,
    subresource?: "status",
  ): KubeObject {
    const b = this.bucket(t);
    const current = b.get(this.key(namespace, name));
    if (!current) throw notFound(t.resource, t.group, t.kind, name);
    const incoming = clone(input) as KubeObject;
    incoming.metadata = isObject(incoming.metadata) ? incoming.metadata : {};
    if (incoming.metadata.name !== undefined && incoming.metadata.name !== name) {
      throw new ApiError(400, "BadRequest", "the name of the object does not match the name on the URL");
    }
    const rv = incoming.metadata.resourceVersion;
    if (rv !== undefined && rv !== null && rv !== "" && rv !== current.metadata.resourceVersion) {
      throw conflict(t.resource, t.group, name);
    }
    let next: KubeObject;
    if (subresource === "status") {
      next = clone(current);
      if (incoming.status === undefined) delete next.status;
      else next.status = incoming.status;
    } else {
      next = incoming;
      next.metadata = {
        ...incoming.metadata,
        uid: current.metadata.uid ?? null,
        creationTimestamp: current.metadata.creationTimestamp ?? null,
        generation: current.metadata.generation ?? 1,
      };
      if (current.metadata.deletionTimestamp)
        next.metadata.deletionTimestamp = current.metadata.deletionTimestamp;
      if (t.statusSubresource) {
        if (current.status === undefined) delete next.status;
        else next.status = current.status;
      }
    }
    next.apiVersion = current.apiVersion as string;
    next.kind = current.kind as string;
    next.metadata.name = name;
    if (t.namespaced) next.metadata.namespace = namespace ?? "default";
    next = this.admit(t, next);
    if (specOf(next, t) !== specOf(current, t)) {
      next.metadata.generation = Number(current.metadata.generation ?? 1) + 1;
    }
    next.metadata.resourceVersion = current.metadata.resourceVersion ?? null;
    if (canonical(next) === canonical(current)) return clone(current); // no-op: no new version
    this.rv++;
    next.metadata.resourceVersion = String(this.rv);
    const finalizers = next.metadata.finalizers;
    if (next.metadata.deletionTimestamp && (!Array.isArray(finalizers) || finalizers.length === 0)) {
      b.delete(this.key(namespace, name));
      this.emit(t, "DELETED", next);
      return clone(next);
    }
    b.set(this.key(namespace, name), next);
    this.emit(t, "MODIFIED", next);
    return clone(next);
  }

  /** Delete; with finalizers the object only gets a deletionTimestamp until they are removed. */
  delete(t: ResourceType, namespace: string | undefined, name: string, preconditionRv?: string): KubeObject {
    const b = this.bucket(t);
    const current = b.get(this.key(namespace, name));
    if (!current) throw notFound(t.resource, t.group, t.kind, name);
    if (preconditionRv && preconditionRv !== current.metadata.resourceVersion)
      throw conflict(t.resource, t.group, name);
    const finalizers = current.metadata.finalizers;
    if (Array.isArray(finalizers) && finalizers.length > 0 && t.resource !== "namespaces") {
      if (current.metadata.deletionTimestamp) return clone(current);
      this.rv++;
      const next = clone(current);
      next.metadata.deletionTimestamp = now();
      next.metadata.resourceVersion = String(this.rv);
      b.set(this.key(namespace, name), next);
      this.emit(t, "MODIFIED", next);
      return clone(next);
    }
    b.delete(this.key(namespace, name));
    if (t.resource === "namespaces") this.deleteNamespaceContents(name);
    this.rv++;
    const gone = clone(current);
    gone.metadata.resourceVersion = String(this.rv);
    this.emit(t, "DELETED", gone);
    return clone(gone);
  }

  private deleteNamespaceContents(ns: string): void {
    for (const t of this.types.values()) {
      if (!t.namespaced) continue;
      for (const o of [...this.bucket(t).values()]) {
        if (o.metadata.namespace !== ns) continue;
        this.bucket(t).delete(this.key(ns, o.metadata.name as string));
        this.rv++;
        const gone = clone(o);
        gone.metadata.resourceVersion = String(this.rv);
        this.emit(t, "DELETED", gone);
      }
    }
  }

  /**
   * Start a watch. `fromRv` undefined/0: synthetic ADDED events for the current state first.
   * Otherwise replay history after fromRv, or throw 410 Expired if that history was dropped.
   */
  watch(w: Watcher, t: ResourceType, fromRv: number | undefined): () => void {
    if (fromRv === undefined || fromRv === 0) {
      for (const o of this.list(t, w.namespace, w.labels, w.fields).items) {
        w.send({ rv: this.rv, gr: w.gr, type: "ADDED", object: o });
      }
    } else {
      if (fromRv < this.oldestReplayable()) throw expired(fromRv, this.oldestReplayable() + 1);
      for (const ev of this.history) if (ev.rv > fromRv && this.watcherWants(w, ev)) w.send(ev);
    }
    this.watchers.add(w);
    return () => {
      this.watchers.delete(w);
    };
  }

  watcherCount(): number {
    return this.watchers.size;
  }
}

/** What counts as "spec" for generation: everything except metadata and status. */
function specOf(o: KubeObject, _t: ResourceType): string {
  const { metadata: _m, status: _s, ...rest } = o;
  return canonical(rest as Json);
}

/** JSON with sorted object keys, to compare objects regardless of key order. */
export function canonical(v: Json): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (isObject(v)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k] as Json)}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}
