/**
 * kosmosctl install / uninstall against the fake API server: objects + secrets created (kept on
 * re-install), the rollout wait (kubectl semantics: a Deployment's and a DaemonSet's status fields,
 * which nothing updates in the fake, so the test patches them as the kube-controller-manager would),
 * the timeout with a clear error, and the real CLI end to end.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  AppsV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1Deployment,
} from "@kubernetes/client-node";
import {
  applyManifests,
  daemonSetRollout,
  deploymentRollout,
  ensureInstallSecrets,
  installObjects,
  type Rollout,
  RolloutTimeoutError,
  waitRollout,
  withClusterName,
} from "../../internal/cli/k8s.ts";
import { type FakeApiServer, kubeConfigFromYaml, startFakeApiServer } from "../../internal/kube/index.ts";

const REPO = resolve(import.meta.dir, "../..");
let api: FakeApiServer;
let kcFile: string;

beforeAll(async () => {
  api = await startFakeApiServer();
  kcFile = join(tmpdir(), `kosmos-install-${process.pid}.kubeconfig`);
  await writeFile(kcFile, api.kubeconfig());
});
afterAll(async () => {
  await api.stop();
  await rm(kcFile, { force: true });
});

const kc = () => kubeConfigFromYaml(api.kubeconfig());
const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

/** What the kube-controller-manager would write into the workloads' status. */
async function setStatus(
  d: Record<string, unknown> | undefined,
  ds: Record<string, unknown> | undefined,
): Promise<void> {
  const apps = kc().makeApiClient(AppsV1Api);
  const ns = "kosmos-system";
  if (d) {
    const cur = await apps.readNamespacedDeployment({ name: "kosmos-controller", namespace: ns });
    await apps.patchNamespacedDeploymentStatus(
      {
        name: "kosmos-controller",
        namespace: ns,
        body: { status: { observedGeneration: cur.metadata?.generation, ...d } },
      },
      merge,
    );
  }
  if (ds) {
    const cur = await apps.readNamespacedDaemonSet({ name: "kosmos-agent", namespace: ns });
    await apps.patchNamespacedDaemonSetStatus(
      {
        name: "kosmos-agent",
        namespace: ns,
        body: { status: { observedGeneration: cur.metadata?.generation, ...ds } },
      },
      merge,
    );
  }
}

describe("rollout semantics (pure)", () => {
  const dep = (status: V1Deployment["status"], generation = 2): V1Deployment => ({
    metadata: { name: "c", generation },
    spec: { replicas: 2, selector: {}, template: {} },
    status,
  });
  test("a Deployment is rolled out when the new template's replicas are all available and no old ones remain", () => {
    expect(
      deploymentRollout(dep({ observedGeneration: 1, updatedReplicas: 2, availableReplicas: 2, replicas: 2 }))
        .complete,
    ).toBe(false); // stale
    expect(
      deploymentRollout(dep({ observedGeneration: 2, updatedReplicas: 2, availableReplicas: 1, replicas: 2 }))
        .complete,
    ).toBe(false);
    expect(
      deploymentRollout(dep({ observedGeneration: 2, updatedReplicas: 2, availableReplicas: 3, replicas: 3 }))
        .complete,
    ).toBe(false); // an old pod left
    expect(
      deploymentRollout(
        dep({ observedGeneration: 2, updatedReplicas: 2, availableReplicas: 2, replicas: 2 }),
      ),
    ).toMatchObject({ complete: true, done: 2, desired: 2 });
    const stuck = deploymentRollout(
      dep({
        observedGeneration: 2,
        conditions: [
          {
            type: "Progressing",
            status: "False",
            reason: "ProgressDeadlineExceeded",
            message: "ReplicaSet has timed out progressing.",
          },
        ],
      }),
    );
    expect(stuck.failed).toContain("timed out progressing");
  });
  test("a DaemonSet: pods of the current template on every node; `ready` also needs them available", () => {
    const ds = {
      metadata: { name: "a", generation: 1 },
      status: {
        observedGeneration: 1,
        desiredNumberScheduled: 3,
        currentNumberScheduled: 3,
        numberMisscheduled: 0,
        numberReady: 1,
        updatedNumberScheduled: 3,
        numberAvailable: 1,
      },
    };
    expect(daemonSetRollout(ds, "scheduled")).toMatchObject({ complete: true, done: 3, desired: 3 });
    expect(daemonSetRollout(ds, "ready")).toMatchObject({ complete: false, done: 1 });
    expect(daemonSetRollout({ ...ds, metadata: { name: "a", generation: 2 } }, "scheduled").complete).toBe(
      false,
    );
    expect(daemonSetRollout(undefined, "scheduled").complete).toBe(false);
  });
});

describe("kosmosctl install against the fake API server", () => {
  test("objects and both secrets created; re-install keeps the secrets; the DaemonSet gets the cluster name", async () => {
    const objs = withClusterName(installObjects(), "member7");
    await applyManifests(kc(), objs);
    expect((await ensureInstallSecrets(kc())).sort()).toEqual(["kosmos-secret", "kosmos-token"]);
    const core = kc().makeApiClient(CoreV1Api);
    const token = (await core.readNamespacedSecret({ name: "kosmos-token", namespace: "kosmos-system" })).data
      ?.token;
    expect(Buffer.from(token!, "base64").toString()).toMatch(/^[0-9a-f]{64}$/);
    const secret = (await core.readNamespacedSecret({ name: "kosmos-secret", namespace: "kosmos-system" }))
      .data?.secret;
    expect(Buffer.from(secret!, "base64").length).toBe(32);
    await applyManifests(kc(), objs);
    expect(await ensureInstallSecrets(kc())).toEqual([]);
    const again = (await core.readNamespacedSecret({ name: "kosmos-token", namespace: "kosmos-system" })).data
      ?.token;
    expect(again).toBe(token);
    const ds = await kc()
      .makeApiClient(AppsV1Api)
      .readNamespacedDaemonSet({ name: "kosmos-agent", namespace: "kosmos-system" });
    const env = ds.spec?.template.spec?.containers[0]?.env ?? [];
    expect(env.find((e) => e.name === "KOSMOS_CLUSTER_NAME")?.value).toBe("member7");
  });

  test("the wait times out with a clear error while the status says nothing is rolled out", async () => {
    const err = await waitRollout(kc(), { timeoutMs: 300, intervalMs: 50, agents: "scheduled" }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RolloutTimeoutError);
    expect((err as Error).message).toContain("deployment/kosmos-controller 0/2");
    expect((err as Error).message).toContain("daemonset/kosmos-agent");
    expect((err as RolloutTimeoutError).hint).toContain("kubectl -n kosmos-system");
  });

  test("the wait follows the status fields and returns once both workloads are rolled out", async () => {
    const seen: Rollout[][] = [];
    const waiting = waitRollout(kc(), {
      timeoutMs: 20_000,
      intervalMs: 50,
      agents: "ready",
      onProgress: (r) => seen.push(structuredClone(r)),
    });
    await Bun.sleep(150);
    await setStatus(
      { replicas: 2, updatedReplicas: 2, readyReplicas: 1, availableReplicas: 1 },
      {
        desiredNumberScheduled: 3,
        currentNumberScheduled: 3,
        numberMisscheduled: 0,
        numberReady: 0,
        updatedNumberScheduled: 3,
        numberAvailable: 0,
      },
    );
    await Bun.sleep(150);
    await setStatus(
      { replicas: 2, updatedReplicas: 2, readyReplicas: 2, availableReplicas: 2 },
      {
        desiredNumberScheduled: 3,
        currentNumberScheduled: 3,
        numberMisscheduled: 0,
        numberReady: 3,
        updatedNumberScheduled: 3,
        numberAvailable: 3,
      },
    );
    const done = await waiting;
    expect(done.every((r) => r.complete)).toBe(true);
    const totals = seen.map((rs) => rs.reduce((a, r) => a + r.done, 0));
    expect(totals[0]).toBe(0);
    expect(totals).toContain(1);
    expect(totals.at(-1)).toBe(5);
  });

  test("the real CLI: install (rolled out) → get clusters → uninstall", async () => {
    // Async spawn: the fake API server lives in this process and must keep answering.
    const run = async (args: string[]) => {
      const p = Bun.spawn([process.execPath, join(REPO, "cmd/kosmosctl.ts"), ...args], {
        env: { ...process.env, NO_COLOR: "1" },
        stdout: "pipe",
        stderr: "pipe",
      });
      const [stdout, stderr, exitCode] = await Promise.all([
        new Response(p.stdout).text(),
        new Response(p.stderr).text(),
        p.exited,
      ]);
      return { stdout, stderr, exitCode };
    };
    // Same template as before (cluster name member7): the status written above still describes it.
    const inst = await run([
      "install",
      "--kubeconfig",
      kcFile,
      "--cluster-name",
      "member7",
      "--timeout",
      "5",
    ]);
    expect(inst.stderr).not.toContain("timed out"); // status from the previous test: rolled out
    expect(inst.exitCode).toBe(0);
    expect(inst.stdout).toContain("kept existing kosmos-token, kosmos-secret");
    expect(inst.stdout).toContain("Kosmos installed.");
    const get = await run(["get", "clusters", "--kubeconfig", kcFile]);
    expect(get.exitCode).toBe(0);
    expect(get.stdout).toContain("NETWORK_TYPE");
    const un = await run(["uninstall", "--kubeconfig", kcFile]);
    expect(un.exitCode).toBe(0);
    const core = kc().makeApiClient(CoreV1Api);
    expect(
      await core
        .readNamespacedSecret({ name: "kosmos-token", namespace: "kosmos-system" })
        .catch(() => "gone"),
    ).toBe("gone");
    // A fresh install on an empty cluster: nothing rolls out in the fake, so the wait times out clearly.
    const fresh = await run(["install", "--kubeconfig", kcFile, "--timeout", "1"]);
    expect(fresh.exitCode).not.toBe(0);
    expect(fresh.stdout).toContain("created kosmos-token, kosmos-secret");
    expect(fresh.stderr).toContain("timed out after 1s waiting for the rollout");
    expect(fresh.stderr).toContain("hint:");
  }, 30_000);
});
