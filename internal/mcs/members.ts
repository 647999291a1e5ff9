/**
 * One joined cluster as the MCS controller watches it: a client made from the Cluster's kubeconfig
 * (its Secret or the inline field, as the kosmos-controller reads it) and informers on Services,
 * EndpointSlices, ServiceExports and ServiceImports. Rebuilt only when the kubeconfig changes.
 */

import type { ClusterObject } from "../controller/index.ts";
import { memberKubeconfig } from "../controller/index.ts";
import {
  applyObjects,
  Informer,
  KubeClient,
  kubeConfigFromYaml,
  loadManifestDir,
  MANIFESTS_DIR,
} from "../kube/index.ts";
import type { Logger } from "../observability/index.ts";
import type {
  EndpointSliceObject,
  ServiceExportObject,
  ServiceImportObject,
  ServiceObject,
} from "./types.ts";

export const SERVICE_EXPORTS = "/apis/multicluster.x-k8s.io/v1alpha1/serviceexports";
export const SERVICE_IMPORTS = "/apis/multicluster.x-k8s.io/v1alpha1/serviceimports";
export const ENDPOINT_SLICES = "/apis/discovery.k8s.io/v1/endpointslices";

export interface McsMember {
  name: string;
  source: string;
  client: KubeClient;
  services: Informer<ServiceObject>;
  slices: Informer<EndpointSliceObject>;
  exports: Informer<ServiceExportObject>;
  imports: Informer<ServiceImportObject>;
}

export interface McsMembersOptions {
  namespace: string;
  logger: Logger;
  /** Any watched object of any member changed. */
  onChange: () => void;
  /** Install the MCS CRDs into a member when it joins (default true). */
  installCrds?: boolean;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

const all = (m: McsMember): Informer<{ metadata: { name: string; namespace?: string } }>[] => [
  m.services as never,
  m.slices as never,
  m.exports as never,
  m.imports as never,
];

export function mcsCrds(): ReturnType<typeof loadManifestDir> {
  return loadManifestDir(`${MANIFESTS_DIR}/crds`).filter((o) =>
    o.metadata.name.endsWith(".multicluster.x-k8s.io"),
  );
}

export class McsMembers {
  private readonly members = new Map<string, McsMember>();

  constructor(
    private readonly host: KubeClient,
    private readonly o: McsMembersOptions,
  ) {}

  list(): McsMember[] {
    return [...this.members.values()];
  }

  get(name: string): McsMember | undefined {
    return this.members.get(name);
  }

  /** Every member's informers have listed once. */
  synced(): boolean {
    return this.list().every((m) => all(m).every((i) => i.hasSynced()));
  }

  informers(): Informer<{ metadata: { name: string; namespace?: string } }>[] {
    return this.list().flatMap(all);
  }

  /** Connect to the Cluster's API server (again, if its kubeconfig changed); false when it has none. */
  async ensure(c: ClusterObject): Promise<boolean> {
    const name = c.metadata.name;
    const got = await memberKubeconfig(this.host, c, this.o.namespace);
    if (!("yaml" in got)) {
      this.o.logger.warn({ cluster: name, reason: got.reason }, got.message);
      await this.stop(name);
      return false;
    }
    const existing = this.members.get(name);
    if (existing && existing.source === got.yaml) return true;
    await this.stop(name);
    const client = new KubeClient(kubeConfigFromYaml(got.yaml));
    if (this.o.installCrds !== false) {
      try {
        await applyObjects(client, mcsCrds());
      } catch (e) {
        this.o.logger.warn(
          { cluster: name, err: (e as Error).message },
          "cannot install the MCS CRDs (the informers retry)",
        );
      }
    }
    const inf = <T extends { metadata: { name: string } }>(path: string, what: string): Informer<T> =>
      new Informer<T>({
        client,
        path,
        name: `${what}@${name}`,
        logger: this.o.logger,
        minBackoffMs: this.o.minBackoffMs,
        maxBackoffMs: this.o.maxBackoffMs,
      });
    const m: McsMember = {
      name,
      source: got.yaml,
      client,
      services: inf<ServiceObject>("/api/v1/services", "services"),
      slices: inf<EndpointSliceObject>(ENDPOINT_SLICES, "endpointslices"),
      exports: inf<ServiceExportObject>(SERVICE_EXPORTS, "serviceexports"),
      imports: inf<ServiceImportObject>(SERVICE_IMPORTS, "serviceimports"),
    };
    const changed = (): void => this.o.onChange();
    for (const i of all(m)) {
      i.on("add", changed).on("update", changed).on("delete", changed);
      i.start();
      void i.waitSynced().then(changed);
    }
    this.members.set(name, m);
    this.o.logger.info({ cluster: name, server: client.server.origin }, "mcs: watching member cluster");
    return true;
  }

  async stop(name: string): Promise<void> {
    const m = this.members.get(name);
    this.members.delete(name);
    if (!m) return;
    for (const i of all(m)) await i.stop();
    m.client.close();
  }

  async stopAll(): Promise<void> {
    for (const n of [...this.members.keys()]) await this.stop(n);
  }
}
