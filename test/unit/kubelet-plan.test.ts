import { describe, expect, test } from "bun:test";
import { installObjects } from "../../internal/cli/k8s-objects.ts";
import { EnvError, expand, fieldValue, type PodFacts, resolveEnv } from "../../internal/kubelet/env.ts";
import { imageKind, imageRepo, programFor } from "../../internal/kubelet/images.ts";
import { type PodSpecLike, planPod } from "../../internal/kubelet/podplan.ts";
import {
  type ContainerRuntime,
  type PodCondition,
  podPhase,
  podStatus,
  restartBackoffMs,
  shouldRestart,
} from "../../internal/kubelet/status.ts";
import { MountError, planVolume } from "../../internal/kubelet/volumes.ts";

const pod: PodFacts = {
  name: "web-1",
  namespace: "demo",
  uid: "u-1",
  nodeName: "node-1",
  serviceAccountName: "default",
  hostIP: "192.168.1.1",
  podIPs: ["10.244.1.5", "fd10:1::5"],
  labels: { app: "web" },
  annotations: { note: 'say "hi"' },
  resources: { "limits.memory": "64Mi" },
};
const look = {
  configMap: (n: string) => (n === "cfg" ? { data: { MODE: "fast", URL: "http://x" } } : undefined),
  secret: (n: string) => (n === "sec" ? { data: { token: "s3cret" } } : undefined),
};

describe("container environment (pure)", () => {
  test("envFrom with prefix, then env in order; $(VAR) expands what came before, $$ escapes, unknown stays", () => {
    const env = resolveEnv(
      {
        envFrom: [{ configMapRef: { name: "cfg" }, prefix: "CFG_" }],
        env: [
          { name: "A", value: "a" },
          { name: "B", value: "$(A)-$(CFG_MODE)-$(LATER)-$$(A)" },
          { name: "LATER", value: "l" },
          { name: "POD", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
          { name: "NODE_IP", valueFrom: { fieldRef: { fieldPath: "status.hostIP" } } },
          { name: "IPS", valueFrom: { fieldRef: { fieldPath: "status.podIPs" } } },
          { name: "APP", valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
          { name: "TOKEN", valueFrom: { secretKeyRef: { name: "sec", key: "token" } } },
          { name: "OPT", valueFrom: { secretKeyRef: { name: "nope", key: "x", optional: true } } },
          { name: "MEM", valueFrom: { resourceFieldRef: { resource: "limits.memory" } } },
        ],
      },
      pod,
      look,
    );
    expect(Object.fromEntries(env)).toEqual({
      CFG_MODE: "fast",
      CFG_URL: "http://x",
      A: "a",
      B: "a-fast-$(LATER)-$(A)",
      LATER: "l",
      POD: "web-1",
      NODE_IP: "192.168.1.1",
      IPS: "10.244.1.5,fd10:1::5",
      APP: "web",
      TOKEN: "s3cret",
      MEM: "64Mi",
    });
  });

  test("a missing required reference is a CreateContainerConfigError naming the variable", () => {
    expect(() =>
      resolveEnv(
        { env: [{ name: "T", valueFrom: { secretKeyRef: { name: "nope", key: "k" } } }] },
        pod,
        look,
      ),
    ).toThrow(new EnvError('secret "nope" not found (env T)'));
    expect(() =>
      resolveEnv(
        { env: [{ name: "T", valueFrom: { configMapKeyRef: { name: "cfg", key: "k" } } }] },
        pod,
        look,
      ),
    ).toThrow("couldn't find key k in ConfigMap cfg (env T)");
    expect(() => fieldValue(pod, "spec.bogus")).toThrow("unsupported fieldRef spec.bogus");
    expect(fieldValue(pod, "metadata.annotations")).toBe('note="say \\"hi\\""');
    expect(expand("$(X)", new Map())).toBe("$(X)");
  });
});

describe("images map to local programs", () => {
  test("repository without registry and tag; the table decides the kind", () => {
    expect(imageRepo("ghcr.io/kosmos-io/kosmos-ts:latest")).toBe("kosmos-io/kosmos-ts");
    expect(imageRepo("localhost:5000/busybox@sha256:abc")).toBe("busybox");
    expect(imageRepo("nginx")).toBe("nginx");
    expect(imageKind("registry.k8s.io/e2e-test-images/agnhost:2.39")).toBe("echo");
    expect(imageKind("busybox:1.36")).toBe("shell");
    expect(imageKind("registry.k8s.io/pause:3.9")).toBe("sleep");
  });
  test("Kosmos binaries run from this checkout; a shell image runs its command; echo listens on its ports", () => {
    const bun = "/x/bun";
    const agent = programFor({
      image: "ghcr.io/kosmos-io/kosmos-ts:latest",
      command: ["/usr/local/bin/kosmos-agent"],
      args: ["--x"],
      ports: [],
      podName: "p",
      bun,
    });
    expect(agent[0]).toBe(bun);
    expect(agent[1]).toMatch(/cmd\/kosmos-agent\.ts$/);
    expect(agent[2]).toBe("--x");
    expect(
      programFor({ image: "busybox", command: ["sh", "-c", "echo hi"], ports: [], podName: "p", bun }),
    ).toEqual(["sh", "-c", "echo hi"]);
    expect(programFor({ image: "busybox", ports: [], podName: "p", bun })).toEqual(["sleep", "infinity"]);
    expect(programFor({ image: "nginx", ports: [80, 8080], podName: "web-1", bun })[2]).toContain(
      "TCP6-LISTEN:80,",
    );
    expect(() =>
      programFor({ image: "kosmos-ts", command: ["/bin/true"], ports: [], podName: "p", bun }),
    ).toThrow("unknown Kosmos binary");
  });
});

describe("volumes as files (pure)", () => {
  const vlook = { ...look, token: (aud: string | undefined) => `tok-${aud ?? "api"}` };
  test("configMap items and modes, secret, projected SA token + root CA + namespace, downwardAPI", () => {
    expect(
      planVolume(
        { name: "c", configMap: { name: "cfg", items: [{ key: "MODE", path: "conf/mode", mode: 0o600 }] } },
        pod,
        vlook,
      ),
    ).toEqual({
      name: "c",
      kind: "files",
      files: [{ path: "conf/mode", content: "fast", mode: 0o600 }],
    });
    expect(planVolume({ name: "s", secret: { secretName: "sec", defaultMode: 0o400 } }, pod, vlook)).toEqual({
      name: "s",
      kind: "files",
      files: [{ path: "token", content: "s3cret", mode: 0o400 }],
    });
    const sa = planVolume(
      {
        name: "kube-api-access",
        projected: {
          sources: [
            { serviceAccountToken: { path: "token", expirationSeconds: 3607 } },
            { configMap: { name: "cfg", items: [{ key: "URL", path: "ca.crt" }] } },
            {
              downwardAPI: { items: [{ path: "namespace", fieldRef: { fieldPath: "metadata.namespace" } }] },
            },
          ],
        },
      },
      pod,
      vlook,
    );
    expect(sa.kind === "files" && sa.files.map((f) => [f.path, f.content])).toEqual([
      ["token", "tok-api"],
      ["ca.crt", "http://x"],
      ["namespace", "demo"],
    ]);
    expect(planVolume({ name: "h", hostPath: { path: "/var/lib/kosmos" } }, pod, vlook)).toEqual({
      name: "h",
      kind: "hostPath",
      path: "/var/lib/kosmos",
    });
  });
  test("missing sources fail the mount unless optional; hostile paths are refused", () => {
    expect(() => planVolume({ name: "x", secret: { secretName: "nope" } }, pod, vlook)).toThrow(
      new MountError('secret "nope" not found'),
    );
    expect(planVolume({ name: "x", secret: { secretName: "nope", optional: true } }, pod, vlook)).toEqual({
      name: "x",
      kind: "files",
      files: [],
    });
    expect(() =>
      planVolume(
        { name: "x", configMap: { name: "cfg", items: [{ key: "MODE", path: "../../etc/passwd" }] } },
        pod,
        vlook,
      ),
    ).toThrow("must be relative and stay inside the volume");
    expect(() =>
      planVolume(
        { name: "x", configMap: { name: "cfg", items: [{ key: "MODE", path: "/abs" }] } },
        pod,
        vlook,
      ),
    ).toThrow("must be relative");
    expect(() => planVolume({ name: "x" } as never, pod, vlook)).toThrow("unsupported volume type");
  });
});

describe("pod status from container states (pure)", () => {
  const now = "2026-12-02T12:00:00Z";
  const run = { running: { startedAt: now } };
  const exit = (exitCode: number) => ({
    terminated: { exitCode, reason: exitCode ? "Error" : "Completed", finishedAt: now },
  });
  const c = (state: ContainerRuntime["state"], o: Partial<ContainerRuntime> = {}): ContainerRuntime => ({
    name: "c",
    image: "busybox",
    state,
    restartCount: 0,
    ready: true,
    started: "running" in state,
    ...o,
  });
  test("phase follows the restart policy and exit codes", () => {
    expect(podPhase("Always", [c({ waiting: { reason: "ContainerCreating" } })])).toBe("Pending");
    expect(podPhase("Always", [c(run)])).toBe("Running");
    expect(podPhase("Never", [c(exit(0))])).toBe("Succeeded");
    expect(podPhase("Never", [c(exit(0)), c(exit(2))])).toBe("Failed");
    expect(podPhase("OnFailure", [c(exit(2))])).toBe("Running");
    expect(podPhase("OnFailure", [c(exit(0))])).toBe("Succeeded");
    expect(podPhase("Always", [c({ waiting: { reason: "CrashLoopBackOff" } }, { restartCount: 3 })])).toBe(
      "Running",
    );
    expect(shouldRestart("OnFailure", 0)).toBe(false);
    expect([1, 2, 3, 10].map((n) => restartBackoffMs(n))).toEqual([10_000, 20_000, 40_000, 300_000]);
  });
  test("Ready needs every container running and ready; transition times stay while a condition holds", () => {
    const first = podStatus({
      restartPolicy: "Always",
      containers: [c(run, { ready: false })],
      hostIP: "192.168.1.1",
      podIPs: ["10.244.1.5", "fd10::5"],
      startTime: now,
      now,
    });
    expect(first.phase).toBe("Running");
    expect(first.podIP).toBe("10.244.1.5");
    expect(first.podIPs).toEqual([{ ip: "10.244.1.5" }, { ip: "fd10::5" }]);
    const conds = first.conditions as PodCondition[];
    expect(conds.find((x) => x.type === "Ready")).toEqual({
      type: "Ready",
      status: "False",
      reason: "ContainersNotReady",
      lastTransitionTime: now,
    });
    const later = "2026-12-02T12:00:05Z";
    const second = podStatus({
      restartPolicy: "Always",
      containers: [c(run)],
      hostIP: "192.168.1.1",
      podIPs: ["10.244.1.5"],
      startTime: now,
      previous: conds,
      now: later,
    });
    const c2 = second.conditions as PodCondition[];
    expect(c2.find((x) => x.type === "Ready")).toEqual({
      type: "Ready",
      status: "True",
      lastTransitionTime: later,
    });
    expect(c2.find((x) => x.type === "PodScheduled")?.lastTransitionTime).toBe(now);
    expect((second.containerStatuses as { ready: boolean }[])[0]!.ready).toBe(true);
  });
});

describe("a pod's plan (pure)", () => {
  const vlook = { ...look, token: () => "tok" };
  test("the agent DaemonSet's pod: hostNetwork, downward-API env, secret volume mounted, HTTPS probes on the listen port", () => {
    const ds = installObjects().find((o) => o.kind === "DaemonSet") as unknown as {
      spec: { template: { spec: PodSpecLike } };
    };
    const spec = structuredClone(ds.spec.template.spec);
    const withToken = {
      ...vlook,
      secret: (n: string): { data: Record<string, string> } | undefined =>
        n === "kosmos-token"
          ? { data: { token: "t0k" } }
          : n === "kosmos-secret"
            ? { data: { secret: "s" } }
            : undefined,
    };
    const plan = planPod(spec, pod, withToken, "/bun");
    expect(plan.hostNetwork).toBe(true);
    const c = plan.containers[0]!;
    expect(c.argv[1]).toMatch(/cmd\/kosmos-agent\.ts$/);
    expect(c.env.KOSMOS_TOKEN).toBe("t0k");
    expect(c.env.K8S_NODE_NAME).toBe("node-1");
    expect(c.env.KOSMOS_ADVERTISE_URL).toBe("https://192.168.1.1:5678");
    expect(c.readiness?.action).toEqual({
      http: { scheme: "HTTPS", host: undefined, port: 5678, path: "/readyz" },
    });
    expect(c.mounts.map((m) => m.volume)).toContain("secret");
    expect(plan.volumes.find((v) => v.name === "secret")).toEqual({
      name: "secret",
      kind: "files",
      files: [{ path: "secret", content: "s", mode: 0o400 }],
    });
  });
  test("named probe ports resolve; a probe on an undeclared port, a mount of no volume, are errors; the unsupported is listed", () => {
    const spec: PodSpecLike = {
      initContainers: [{ name: "init", image: "busybox" }],
      containers: [
        {
          name: "web",
          image: "nginx",
          ports: [{ name: "http", containerPort: 80 }],
          readinessProbe: { httpGet: { port: "http" } },
          startupProbe: { tcpSocket: { port: 80 } },
        },
      ],
    };
    const plan = planPod(spec, pod, vlook, "/bun");
    expect(plan.containers[0]!.readiness).toEqual({
      action: { http: { scheme: "HTTP", host: undefined, port: 80, path: "/" } },
      initialDelayMs: 0,
      periodMs: 10_000,
      timeoutMs: 1000,
      failureThreshold: 3,
      successThreshold: 1,
    });
    expect(plan.unsupported).toEqual([
      "initContainers (not run)",
      "container web: startupProbe (treated as started)",
    ]);
    expect(() =>
      planPod(
        { containers: [{ name: "w", image: "nginx", livenessProbe: { tcpSocket: { port: "nope" } } }] },
        pod,
        vlook,
        "/bun",
      ),
    ).toThrow('probe port "nope" is not a declared port');
    expect(() =>
      planPod(
        { containers: [{ name: "w", image: "nginx", volumeMounts: [{ name: "v", mountPath: "/x" }] }] },
        pod,
        vlook,
        "/bun",
      ),
    ).toThrow("volumeMount v names no volume");
  });
});
