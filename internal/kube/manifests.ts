/** Reading the YAML manifests shipped in manifests/ (CRDs, RBAC, workloads). */
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseAllDocuments } from "yaml";
import type { JsonObject } from "./fake-apiserver/patch.ts";

/** The repository's manifests/ directory. */
export const MANIFESTS_DIR = process.env.KOSMOS_MANIFESTS_DIR ?? resolve(import.meta.dir, "../../manifests");

export interface ManifestObject extends JsonObject {
  apiVersion: string;
  kind: string;
  metadata: JsonObject & { name: string };
}

/** Parse a multi-document YAML string into objects (empty documents dropped). */
export function parseManifests(text: string): ManifestObject[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`YAML: ${d.errors[0]!.message}`);
      return d.toJS() as ManifestObject | null;
    })
    .filter((o): o is ManifestObject => o !== null && typeof o === "object");
}

/** Every object of every *.yaml file in a directory, files in name order (kustomization.yaml excluded). */
export function loadManifestDir(dir: string): ManifestObject[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
    .sort()
    .flatMap((f) => parseManifests(readFileSync(join(dir, f), "utf8")));
}

/** The Kosmos CRDs (Cluster, ClusterNode, GlobalNode). */
export function loadKosmosCrds(dir = join(MANIFESTS_DIR, "crds")): ManifestObject[] {
  return loadManifestDir(dir);
}
