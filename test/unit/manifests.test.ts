/**
 * Every manifest is validated against the Kubernetes OpenAPI schemas shipped by `kubernetes-models`
 * (generated from the upstream OpenAPI spec). The CRDs' schemas are exercised by a real API server in
 * test/e2e/k8s-api.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
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
import { loadKosmosCrds, loadManifestDir, MANIFESTS_DIR } from "../../internal/kube/index.ts";

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
    expect(k.resources.length).toBe(9);
  });

  test("CRDs: printer columns and short names; Cluster has no status subresource (as upstream), ClusterNode has", () => {
    // Their schemas (defaults, enums, upstream-shaped objects) are tested on a real API server: test/e2e/k8s-api.test.ts.
    const crds = loadKosmosCrds();
    type Crd = {
      spec: {
        names: { shortNames: string[] };
        versions: { additionalPrinterColumns: { name: string }[]; subresources?: { status?: object } }[];
      };
    };
    const cluster = crds.find((c) => c.metadata.name === "clusters.kosmos.io") as unknown as Crd;
    const clusterNode = crds.find((c) => c.metadata.name === "clusternodes.kosmos.io") as unknown as Crd;
    expect(cluster.spec.versions[0]!.additionalPrinterColumns.map((c) => c.name)).toContain("NETWORK_TYPE");
    expect(cluster.spec.versions[0]!.additionalPrinterColumns.map((c) => c.name)).toContain("IP_FAMILY");
    expect(cluster.spec.names.shortNames.length).toBeGreaterThan(0);
    expect(cluster.spec.versions[0]!.subresources?.status).toBeUndefined();
    expect(clusterNode.spec.versions[0]!.subresources?.status).toEqual({});
  });

  test("agent DaemonSet: every flag/env it sets exists in `kosmos-agent --help`; probes are HTTPS on the listen port", () => {
    const help = Bun.spawnSync([
      process.execPath,
      resolve(import.meta.dir, "../../cmd/kosmos-agent.ts"),
      "--help",
    ]);
    expect(help.exitCode).toBe(0);
    const text = help.stdout.toString();
    const flags = new Set([...text.matchAll(/(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!));
    const envs = new Set([...text.matchAll(/env:\s+([A-Z0-9_]+)/g)].map((m) => m[1]!));
    expect(envs.has("KOSMOS_NODE_NAME")).toBe(true); // the parser is real
    const ds = all.find((o) => o.kind === "DaemonSet") as unknown as {
      spec: {
        template: {
          spec: {
            containers: {
              command: string[];
              args?: string[];
              env: { name: string; value?: string }[];
              ports: { containerPort: number }[];
              readinessProbe: { httpGet: { scheme: string; port: number; path: string } };
              livenessProbe: { httpGet: { scheme: string; port: number; path: string } };
            }[];
          };
        };
      };
    };
    const c = ds.spec.template.spec.containers[0]!;
    for (const a of [...c.command.slice(1), ...(c.args ?? [])].filter((x) => x.startsWith("--"))) {
      expect(flags.has(a.split("=")[0]!), `flag ${a}`).toBe(true);
    }
    const kosmosEnv = c.env.filter((e) => e.name.startsWith("KOSMOS_") && e.name !== "KOSMOS_CLUSTER_NAME");
    for (const e of kosmosEnv)
      expect(envs.has(e.name), `env ${e.name} is not read by kosmos-agent`).toBe(true);
    for (const required of [
      "KOSMOS_NODE_NAME",
      "KOSMOS_DATA_DIR",
      "KOSMOS_LISTEN",
      "KOSMOS_ADVERTISE_URL",
      "KOSMOS_TOKEN",
      "KOSMOS_SECRET_FILE",
    ]) {
      expect(kosmosEnv.map((e) => e.name)).toContain(required);
    }
    const env = Object.fromEntries(c.env.map((e) => [e.name, e.value]));
    const port = Number(env.KOSMOS_LISTEN!.split(":").pop());
    expect(c.ports[0]!.containerPort).toBe(port);
    expect(c.readinessProbe.httpGet).toEqual({ scheme: "HTTPS", path: "/readyz", port });
    expect(c.livenessProbe.httpGet).toEqual({ scheme: "HTTPS", path: "/healthz", port });
    expect(env.KOSMOS_ADVERTISE_URL).toBe(`https://$(K8S_NODE_IP):${port}`);
    // Node name = the ClusterNode name the controller derives (<cluster>-<node>).
    expect(env.KOSMOS_NODE_NAME).toBe("$(KOSMOS_CLUSTER_NAME)-$(K8S_NODE_NAME)");
  });
});
