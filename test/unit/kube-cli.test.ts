import { afterAll, beforeAll, expect, test } from "bun:test";
import { CustomObjectsApi } from "@kubernetes/client-node";
import { applyManifests, deleteManifests, installObjects, joinObjects } from "../../internal/cli/k8s.ts";
import { type FakeApiServer, kubeConfigFromYaml, startFakeApiServer } from "../../internal/kube/index.ts";

let api: FakeApiServer;
beforeAll(async () => {
  api = await startFakeApiServer();
});
afterAll(async () => {
  await api.stop();
});

test("install applies every manifest (idempotent), join creates Secret + Cluster, uninstall removes all", async () => {
  const kc = kubeConfigFromYaml(api.kubeconfig());
  const objs = installObjects();
  const progress: number[] = [];
  await applyManifests(kc, objs, (n) => progress.push(n));
  expect(progress.at(-1)).toBe(objs.length);
  await applyManifests(kc, objs); // second install replaces, no errors
  expect(api.store.type("kosmos.io", "clusters")).toBeDefined();
  await applyManifests(kc, joinObjects("member1", "apiVersion: v1\nkind: Config\n", "gateway", "all"));
  const co = kc.makeApiClient(CustomObjectsApi);
  const c = (await co.getClusterCustomObject({
    group: "kosmos.io",
    version: "v1alpha1",
    plural: "clusters",
    name: "member1",
  })) as {
    spec: { clusterLinkOptions: { networkType: string; ipFamily: string } };
  };
  expect(c.spec.clusterLinkOptions).toMatchObject({ networkType: "gateway", ipFamily: "all" });
  await deleteManifests(kc, joinObjects("member1", "", "p2p", "ipv4"));
  await deleteManifests(kc, objs);
  expect(api.store.type("kosmos.io", "clusters")).toBeUndefined();
});
