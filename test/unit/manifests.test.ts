/**
 * Every manifest is validated against the Kubernetes OpenAPI schemas shipped by `kubernetes-models`
 * (generated from the upstream OpenAPI spec), and the CRDs are loaded into the fake apiserver, which
 * compiles their openAPIV3Schema; sample Cluster objects are then validated by it.
 */
import { describe, expect, test } from "bun:test";
import { CustomResourceDefinition } from "kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { ClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import { ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { parse } from "yaml";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FakeStore, loadKosmosCrds, loadManifestDir, MANIFESTS_DIR } from "../../internal/kube/index.ts";

type Validator = new (o: never) => { validate(): void };
const MODELS: Record<string, Validator> = {
  CustomResourceDefinition,
  DaemonSet,
  Deployment,
  ClusterRole,
  ClusterRoleBinding,
  Role,
  RoleBinding,
  Namespace,
  ServiceAccount,
};

describe("manifests", () => {
  const all = [...loadManifestDir(MANIFESTS_DIR), ...loadKosmosCrds()];
  test("every object validates against the Kubernetes OpenAPI schema", () => {
    expect(all.length).toBeGreaterThan(8);
    for (const o of all) {
      const Model = MODELS[o.kind];
      expect(Model, `no schema for kind ${o.kind}`).toBeDefined();
      expect(() => new Model!(o as never).validate(), `${o.kind}/${o.metadata.name}`).not.toThrow();
    }
  });

  test("an invalid DaemonSet is rejected (the validator is real)", () => {
    const ds = all.find((o) => o.kind === "DaemonSet")!;
    const bad = structuredClone(ds) as unknown as { spec: { template: { spec: { containers: unknown } } } };
    bad.spec.template.spec.containers = "nope";
    expect(() => new DaemonSet(bad as never).validate()).toThrow();
  });

  test("kustomization lists every manifest file", () => {
    const k = parse(readFileSync(join(MANIFESTS_DIR, "kustomization.yaml"), "utf8")) as {
      resources: string[];
    };
    for (const r of k.resources) expect(() => readFileSync(join(MANIFESTS_DIR, r))).not.toThrow();
    expect(k.resources.length).toBe(7);
  });

  test("CRDs: printer columns, short names, status subresource; schemas accept/reject samples", () => {
    const crds = loadKosmosCrds();
    const cluster = crds.find((c) => c.metadata.name === "clusters.kosmos.io") as unknown as {
      spec: {
        names: { shortNames: string[] };
        versions: { additionalPrinterColumns: { name: string }[]; subresources: { status: object } }[];
      };
    };
    expect(cluster.spec.versions[0]!.additionalPrinterColumns.map((c) => c.name)).toContain("NETWORK_TYPE");
    expect(cluster.spec.versions[0]!.additionalPrinterColumns.map((c) => c.name)).toContain("IP_FAMILY");
    expect(cluster.spec.names.shortNames.length).toBeGreaterThan(0);
    expect(cluster.spec.versions[0]!.subresources.status).toEqual({});
    const store = new FakeStore();
    const crdType = store.type("apiextensions.k8s.io", "customresourcedefinitions")!;
    for (const c of crds) store.create(crdType, undefined, c);
    const t = store.type("kosmos.io", "clusters")!;
    const ok = store.create(t, undefined, {
      apiVersion: "kosmos.io/v1alpha1",
      kind: "Cluster",
      metadata: { name: "upstream-style" },
      spec: {
        kubeconfig: "YWJj",
        clusterLinkOptions: {
          networkType: "p2p",
          ipFamily: "all",
          clusterpodCIDRs: ["10.0.0.0/16"],
          useexternalapiserver: true,
          nodeElasticIPMap: { n: "1.1.1.1" },
        },
      },
    });
    expect((ok.spec as { clusterLinkOptions: { cni: string } }).clusterLinkOptions.cni).toBe("calico");
    expect(() =>
      store.create(t, undefined, {
        metadata: { name: "bad" },
        spec: { clusterLinkOptions: { bridgeCIDRs: { ip: "x", ip6: "y" } } },
      }),
    ).toThrow(/invalid/);
  });
});
