/**
 * kosmosctl join / unjoin cluster driving the real CLI against fake API servers (a host and members):
 * the member gets the agents (namespace, service account, DaemonSet with KOSMOS_CLUSTER_NAME = the member
 * name, the host's kosmos-token + kosmos-secret), the host the kubeconfig Secret + Cluster; the join waits
 * for the DaemonSet rollout (status written by the test, as the kube-controller-manager would) and times
 * out clearly when nothing rolls out; unjoin removes both sides, but never the host's own agents.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { type FakeApiServer, kubeConfigFromYaml, startFakeApiServer } from "../../internal/kube/index.ts";

const REPO = resolve(import.meta.dir, "../..");
const NS = "kosmos-system";
const tag = process.pid.toString(36);
let host: FakeApiServer;
let m1: FakeApiServer;
let m2: FakeApiServer;
const files: Record<string, string> = {};
let stopPatcher = false;
let patcher: Promise<void> | undefined;

const kcOf = (s: FakeApiServer): KubeConfig => kubeConfigFromYaml(s.kubeconfig());
const missing = async (f: () => Promise<unknown>): Promise<boolean> =>
  f().then(
    () => false,
    () => true,
  );

async function run(args: string[]) {
  // Async spawn: the fake API servers live in this process and must keep answering.
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
}

/** A stand-in for member1's kube-controller-manager: rolls out the agent DaemonSet on its 2 nodes. */
async function rollOutAgents(kc: KubeConfig): Promise<void> {
  const apps = kc.makeApiClient(AppsV1Api);
  while (!stopPatcher) {
    try {
      const ds = await apps.readNamespacedDaemonSet({ name: "kosmos-agent", namespace: NS });
      if (ds.status?.observedGeneration !== ds.metadata?.generation) {
        await apps.patchNamespacedDaemonSetStatus(
          {
            name: "kosmos-agent",
            namespace: NS,
            body: {
              status: {
                observedGeneration: ds.metadata?.generation,
                desiredNumberScheduled: 2,
                currentNumberScheduled: 2,
                numberMisscheduled: 0,
                numberReady: 2,
                updatedNumberScheduled: 2,
                numberAvailable: 2,
              },
            },
          },
          setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
        );
      }
    } catch {
      // not there yet
    }
    await Bun.sleep(100);
  }
}

beforeAll(async () => {
  host = await startFakeApiServer();
  m1 = await startFakeApiServer();
  m2 = await startFakeApiServer();
  for (const [k, s] of Object.entries({ host, m1, m2 })) {
    files[k] = join(tmpdir(), `kosmos-join-${k}-${tag}.kubeconfig`);
    await writeFile(files[k]!, s.kubeconfig());
  }
  patcher = rollOutAgents(kcOf(m1));
});
afterAll(async () => {
  stopPatcher = true;
  await patcher;
  for (const s of [host, m1, m2]) await s?.stop();
  for (const f of Object.values(files)) await rm(f, { force: true });
});

describe("kosmosctl join/unjoin cluster (real CLI, fake API servers)", () => {
  test("join before install: clear error, nothing created on the member", async () => {
    const r = await run([
      "join",
      "cluster",
      "--name",
      "member1",
      "--kubeconfig",
      files.m1!,
      "--host-kubeconfig",
      files.host!,
    ]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("kosmos-system/kosmos-token not found on the host cluster");
    expect(r.stderr).toContain("kosmosctl install");
    expect(await missing(() => kcOf(m1).makeApiClient(CoreV1Api).readNamespace({ name: NS }))).toBe(true);
  }, 30_000);

  test("join installs the agents with the host's secrets, waits for the rollout; unjoin removes them", async () => {
    const inst = await run(["install", "--kubeconfig", files.host!, "--no-wait"]);
    expect(inst.exitCode).toBe(0);
    const r = await run([
      "join",
      "cluster",
      "--name",
      "member1",
      "--kubeconfig",
      files.m1!,
      "--host-kubeconfig",
      files.host!,
      "--network-type",
      "gateway",
      "--timeout",
      "20",
    ]);
    expect(r.stderr).not.toContain("error");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(
      "agents of member1 applied (DaemonSet kosmos-agent, KOSMOS_CLUSTER_NAME=member1)",
    );
    expect(r.stderr).toContain("2/2 pods | kosmos-agent 2/2"); // the progress bar (stderr)
    expect(r.stdout).toContain("cluster member1 joined");

    const hcore = kcOf(host).makeApiClient(CoreV1Api);
    const mcore = kcOf(m1).makeApiClient(CoreV1Api);
    for (const [name, key] of [
      ["kosmos-token", "token"],
      ["kosmos-secret", "secret"],
    ] as const) {
      const h = (await hcore.readNamespacedSecret({ name, namespace: NS })).data?.[key];
      const m = (await mcore.readNamespacedSecret({ name, namespace: NS })).data?.[key];
      expect(h).toBeTruthy();
      expect(m).toBe(h!); // one installation secret for every agent
    }
    expect(
      (await mcore.readNamespacedServiceAccount({ name: "kosmos-agent", namespace: NS })).metadata?.name,
    ).toBe("kosmos-agent");
    const ds = await kcOf(m1)
      .makeApiClient(AppsV1Api)
      .readNamespacedDaemonSet({ name: "kosmos-agent", namespace: NS });
    const env = ds.spec?.template.spec?.containers[0]?.env ?? [];
    expect(env.find((e) => e.name === "KOSMOS_CLUSTER_NAME")?.value).toBe("member1");
    // The member runs agents only: no controller, no CRDs.
    expect(
      await missing(() =>
        kcOf(m1)
          .makeApiClient(AppsV1Api)
          .readNamespacedDeployment({ name: "kosmos-controller", namespace: NS }),
      ),
    ).toBe(true);
    const cluster = (await kcOf(host).makeApiClient(CustomObjectsApi).getClusterCustomObject({
      group: "kosmos.io",
      version: "v1alpha1",
      plural: "clusters",
      name: "member1",
    })) as {
      spec: { clusterLinkOptions: { networkType: string } };
    };
    expect(cluster.spec.clusterLinkOptions.networkType).toBe("gateway");

    // unjoin without --kubeconfig: the member's kubeconfig comes from the Secret stored at join.
    const u = await run(["unjoin", "cluster", "--name", "member1", "--host-kubeconfig", files.host!]);
    expect(u.exitCode).toBe(0);
    expect(u.stdout).toContain("cluster member1 unjoined");
    expect(await missing(() => mcore.readNamespace({ name: NS }))).toBe(true);
    expect(await missing(() => mcore.readNamespacedSecret({ name: "kosmos-token", namespace: NS }))).toBe(
      true,
    );
    expect(
      await missing(() =>
        kcOf(m1).makeApiClient(AppsV1Api).readNamespacedDaemonSet({ name: "kosmos-agent", namespace: NS }),
      ),
    ).toBe(true);
    expect(
      await missing(() => hcore.readNamespacedSecret({ name: "kosmos-member-member1", namespace: NS })),
    ).toBe(true);
    // The host's own installation is untouched.
    expect(
      (await hcore.readNamespacedSecret({ name: "kosmos-token", namespace: NS })).data?.token,
    ).toBeTruthy();
  }, 60_000);

  test("a member whose agents never roll out: join times out with a clear error", async () => {
    const r = await run([
      "join",
      "cluster",
      "--name",
      "member2",
      "--kubeconfig",
      files.m2!,
      "--host-kubeconfig",
      files.host!,
      "--timeout",
      "1",
    ]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("timed out after 1s waiting for the rollout: daemonset/kosmos-agent 0/0");
    expect(r.stderr).toContain("hint:");
    // Objects are in place (a later rollout completes the join); unjoin with an explicit kubeconfig.
    const u = await run([
      "unjoin",
      "cluster",
      "--name",
      "member2",
      "--host-kubeconfig",
      files.host!,
      "--kubeconfig",
      files.m2!,
    ]);
    expect(u.exitCode).toBe(0);
    expect(await missing(() => kcOf(m2).makeApiClient(CoreV1Api).readNamespace({ name: NS }))).toBe(true);
  }, 30_000);

  test("the host joined as a member: unjoin keeps its agents (they belong to install)", async () => {
    const j = await run([
      "join",
      "cluster",
      "--name",
      "hostc",
      "--kubeconfig",
      files.host!,
      "--host-kubeconfig",
      files.host!,
      "--no-wait",
    ]);
    expect(j.exitCode).toBe(0);
    const u = await run(["unjoin", "cluster", "--name", "hostc", "--host-kubeconfig", files.host!]);
    expect(u.exitCode).toBe(0);
    expect(u.stderr).toContain("runs the Kosmos controller (host cluster): its agents are kept");
    const apps = kcOf(host).makeApiClient(AppsV1Api);
    expect((await apps.readNamespacedDaemonSet({ name: "kosmos-agent", namespace: NS })).metadata?.name).toBe(
      "kosmos-agent",
    );
  }, 30_000);
});
