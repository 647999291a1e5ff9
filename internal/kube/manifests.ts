/**
 * The YAML manifests shipped in manifests/ (CRDs, RBAC, workloads), and applying them the way
 * `kubectl apply --server-side` does: each object is sent as the unstructured document it is (a
 * server-side apply patch), so nothing is lost on the way — no model in between to drop a CRD schema's
 * `default` or `enum`.
 *
 * YAML is read as YAML 1.1, like kubectl (go-yaml): `defaultMode: 0400` is the octal 256, not 400.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseAllDocuments } from "yaml";
import { errorStatus, KubeApiError } from "./errors.ts";
import type { KubeClient, KubeObject } from "./rest.ts";

/** The repository's manifests/ directory. */
export const MANIFESTS_DIR = process.env.KOSMOS_MANIFESTS_DIR ?? resolve(import.meta.dir, "../../manifests");

export type ManifestObject = KubeObject & { apiVersion: string; kind: string };

/** Parse a multi-document YAML string into objects (empty documents dropped). */
export function parseManifests(text: string): ManifestObject[] {
  return parseAllDocuments(text, { version: "1.1" })
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`YAML: ${d.errors[0]!.message}`);
      return d.toJS() as ManifestObject | null;
    })
    .filter((o): o is ManifestObject => o !== null && typeof o === "object");
}

/** Every object of every *.yaml file in a directory, files in name order (kustomization.yaml excluded). */
export function loadManifestDir(dir: string, o: { exclude?: string[] } = {}): ManifestObject[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml" && !(o.exclude ?? []).includes(f))
    .sort()
    .flatMap((f) => parseManifests(readFileSync(join(dir, f), "utf8")));
}

/** The Kosmos CRDs (Cluster, ClusterNode, GlobalNode). */
export function loadKosmosCrds(dir = join(MANIFESTS_DIR, "crds")): ManifestObject[] {
  return loadManifestDir(dir);
}

interface ApiResource {
  name: string;
  kind: string;
  namespaced: boolean;
}

/** Maps apiVersion + kind to a REST path through the API server's discovery documents. */
export class ResourceMapper {
  private readonly groups = new Map<string, ApiResource[]>();

  constructor(private readonly client: KubeClient) {}

  private async resources(apiVersion: string, refresh: boolean): Promise<ApiResource[]> {
    if (!refresh && this.groups.has(apiVersion)) return this.groups.get(apiVersion)!;
    const path = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    let list: ApiResource[] = [];
    try {
      list = (await this.client.get<{ resources: ApiResource[] }>(path)).resources;
    } catch (e) {
      if (errorStatus(e) !== 404) throw e;
    }
    this.groups.set(apiVersion, list);
    return list;
  }

  /**
   * The resource of a kind. A kind missing from discovery is looked up again until `waitMs` passes
   * (a CRD applied a moment ago is served only once it is Established).
   */
  async resource(apiVersion: string, kind: string, waitMs = 0): Promise<ApiResource> {
    const deadline = Date.now() + waitMs;
    for (let refresh = false; ; refresh = true) {
      const hit = (await this.resources(apiVersion, refresh)).find(
        (r) => r.kind === kind && !r.name.includes("/"),
      );
      if (hit) return hit;
      if (Date.now() >= deadline)
        throw new KubeApiError(404, `the server does not serve ${kind} in ${apiVersion}`, undefined);
      await Bun.sleep(200);
    }
  }

  /** Collection path of an object's kind (in its namespace), and the object's own path. */
  async paths(
    o: ManifestObject,
    waitMs = 0,
  ): Promise<{ collection: string; object: string; namespaced: boolean }> {
    const r = await this.resource(o.apiVersion, o.kind, waitMs);
    const base = o.apiVersion.includes("/") ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
    const ns = r.namespaced ? `/namespaces/${o.metadata.namespace ?? "default"}` : "";
    const collection = `${base}${ns}/${r.name}`;
    return {
      collection,
      object: `${collection}/${encodeURIComponent(o.metadata.name)}`,
      namespaced: r.namespaced,
    };
  }
}

export const FIELD_MANAGER = "kosmosctl";

/**
 * Server-side apply every object, in order; a CRD is waited for until it is Established, so custom
 * resources right after it apply. Idempotent: applying the same objects again changes nothing.
 */
export async function applyObjects(
  client: KubeClient,
  objects: ManifestObject[],
  o: {
    fieldManager?: string;
    onProgress?: (done: number, obj: ManifestObject) => void;
    mapper?: ResourceMapper;
  } = {},
): Promise<void> {
  const mapper = o.mapper ?? new ResourceMapper(client);
  let done = 0;
  for (const obj of objects) {
    const { object } = await mapper.paths(obj, 30_000);
    await client.apply(object, obj, o.fieldManager ?? FIELD_MANAGER);
    if (obj.kind === "CustomResourceDefinition") await waitEstablished(client, obj.metadata.name);
    o.onProgress?.(++done, obj);
  }
}

/** Delete every object in reverse order; missing ones (and kinds no longer served) are fine. */
export async function deleteObjects(
  client: KubeClient,
  objects: ManifestObject[],
  o: {
    onProgress?: (done: number, obj: ManifestObject) => void;
    mapper?: ResourceMapper;
    propagation?: "Foreground" | "Background";
  } = {},
): Promise<void> {
  const mapper = o.mapper ?? new ResourceMapper(client);
  let done = 0;
  for (const obj of [...objects].reverse()) {
    let path: string | undefined;
    try {
      path = (await mapper.paths(obj)).object;
    } catch (e) {
      if (errorStatus(e) !== 404) throw e;
    }
    if (path) await client.delete(path, { propagationPolicy: o.propagation ?? "Background" });
    o.onProgress?.(++done, obj);
  }
}

/** Wait until a CRD reports Established=True. */
export async function waitEstablished(client: KubeClient, name: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const crd = await client.get<
      KubeObject & { status?: { conditions?: { type: string; status: string }[] } }
    >(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
    if (crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) return;
    if (Date.now() > deadline) throw new Error(`CRD ${name} not Established after ${timeoutMs} ms`);
    await Bun.sleep(100);
  }
}
