/**
 * The lab kubelet against a real control plane (API server, controller-manager, scheduler): it
 * registers its Nodes and Leases, runs the pods the real scheduler binds to it in network namespaces
 * on the lab nodes' cni0 (reached across nodes over the lab's host-gw routes), writes their status,
 * keeps their logs, restarts crashing containers, drives Ready from probes, and deletes gracefully.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlPlane, freePort, issueCert } from "../../internal/controlplane/index.ts";
import { KubeApiError, type KubeClient, type KubeObject } from "../../internal/kube/index.ts";
import { Kubelet } from "../../internal/kubelet/kubelet.ts";
import { parseLabConfig } from "../../internal/lab/config.ts";
import { LAB_APISERVER_FLAGS } from "../../internal/lab/kubernetes.ts";
import { labDown } from "../../internal/lab/lab.ts";
import { buildNetwork } from "../../internal/lab/network.ts";
import { type LabPlan, planLab } from "../../internal/lab/plan.ts";
import { inNs, listNetns } from "../../internal/lab/sh.ts";
import { createLogger, silentLogger } from "../../internal/observability/index.ts";
import { clientOf, kubeSkip, uniqueName } from "../helpers/k8s.ts";
import { until } from "../helpers/wait.ts";
import { labName } from "./helpers.ts";

const skip = kubeSkip() || process.getuid?.() !== 0;
const LAB = labName("kl");
const T = 120_000;
let plan: LabPlan;
let cp: ControlPlane;
let client: KubeClient;
const kubelets: Kubelet[] = [];
let root: string;

type Pod = KubeObject & {
  spec: { nodeName?: string };
  status?: {
    phase?: string;
    podIP?: string;
    hostIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: {
      name: string;
      restartCount: number;
      ready: boolean;
      state: Record<string, unknown>;
    }[];
  };
};

const NS = "default";
/**
 * kubectl ≥ 1.30 (websocket exec; the lab kubelet serves no SPDY). The machine's `kubectl` is a
 * dispatcher that would pick 1.28 for a 1.28 API server.
 */
const KUBECTL = existsSync("/usr/lib/google-cloud-sdk/bin/kubectl.1.32")
  ? "/usr/lib/google-cloud-sdk/bin/kubectl.1.32"
  : "kubectl";
const podPath = (n: string) => `/api/v1/namespaces/${NS}/pods/${n}`;
const getPod = (n: string) => client.get<Pod>(podPath(n));

/**
 * POST, retried once when the API server answers a bare `400 Bad Request` (no Status): seen now and
 * then on a reused keep-alive connection of this machine's loaded runs, before the request reached
 * the API's handlers (nothing was created).
 */
async function create<T = KubeObject>(path: string, body: unknown): Promise<T> {
  try {
    return await client.create<T>(path, body);
  } catch (e) {
    if (!(e instanceof KubeApiError && e.status === 400 && !e.apiStatus)) throw e;
    return await client.create<T>(path, body);
  }
}

async function waitPod(n: string, what: string, ok: (p: Pod) => boolean, ms = 60_000): Promise<Pod> {
  let last: Pod | undefined;
  let err = "";
  await until(
    async () => {
      last = await getPod(n).catch((e: Error) => {
        err = e.message;
        return undefined;
      });
      return last !== undefined && ok(last);
    },
    `pod ${n}: ${what}`,
    ms,
    100,
  ).catch((e: Error) => {
    throw new Error(`${e.message} (last: ${last ? JSON.stringify(last.status) : err})`);
  });
  return last!;
}

async function startKubelet(node: LabPlan["nodes"][number]): Promise<Kubelet> {
  const cert = await issueCert(cp.ca, root, {
    name: `kubelet-${node.short}`,
    cn: `system:node:${node.short}`,
    usage: "server",
    hosts: ["localhost", "127.0.0.1"],
  });
  const k = new Kubelet({
    client,
    node: {
      name: node.short,
      addresses: [node.ipv4, node.ipv6],
      podCIDRs: node.podCIDRs,
      labels: { "kosmos.io/lab-cluster": node.cluster },
      kubeletPort: await freePort(),
    },
    tls: { certFile: cert.certPath, keyFile: cert.keyPath, clientCAFile: cp.ca.certPath },
    nodeNs: node.ns,
    podNsPrefix: `${plan.prefix}${node.short}-`,
    root: join(root, node.short),
    backoffBaseMs: 300,
    leaseEveryMs: 2000, // well inside the 8 s node-monitor grace period below
    proxyClusterCIDRs: plan.clusters[0]!.podCIDRs,
    log: process.env.KUBELET_TEST_LOG
      ? createLogger({ component: "kubelet", node: node.short, level: "debug" })
      : silentLogger(),
  });
  kubelets.push(k);
  return k;
}

describe.skipIf(skip)("lab kubelet on a real control plane", () => {
  beforeAll(async () => {
    await labDown(LAB);
    root = mkdtempSync(join(tmpdir(), "kosmos-kubelet-"));
    plan = planLab(LAB, parseLabConfig({ clusters: [{ name: "c1", nodes: 2, podsPerNode: 0 }] }));
    await buildNetwork(plan);
    cp = await ControlPlane.start({
      components: ["controller-manager", "scheduler"],
      apiServerFlags: LAB_APISERVER_FLAGS,
      // A short node-monitor grace period: a stopped kubelet's Node turns NotReady within seconds.
      controllerManagerFlags: ["--node-monitor-grace-period=8s", "--node-monitor-period=1s"],
    });
    client = clientOf(cp);
    for (const n of plan.nodes) await (await startKubelet(n)).start();
    // Pods need the namespace's default ServiceAccount (the controller-manager makes it).
    await until(
      async () =>
        (await client.get(`/api/v1/namespaces/${NS}/serviceaccounts/default`).catch(() => undefined)) !==
        undefined,
      "default ServiceAccount",
      30_000,
    );
  }, T);

  afterAll(async () => {
    for (const k of kubelets) await k.stop({ stopPods: true }).catch(() => undefined);
    client?.close();
    await cp?.stop();
    await labDown(LAB);
    if (root) rmSync(root, { recursive: true, force: true });
  }, T);

  test("registers Ready Nodes with the lab's pod CIDRs and addresses, and renews their Leases", async () => {
    for (const n of plan.nodes) {
      const node = await client.get<{
        spec: { podCIDRs: string[] };
        status: {
          conditions: { type: string; status: string }[];
          addresses: { type: string; address: string }[];
        };
      }>(`/api/v1/nodes/${n.short}`);
      expect(node.spec.podCIDRs).toEqual(n.podCIDRs);
      expect(node.status.conditions.find((c) => c.type === "Ready")?.status).toBe("True");
      expect(node.status.addresses).toContainEqual({ type: "InternalIP", address: n.ipv4 });
    }
    // the periodic status update, again and again: a dual-stack node's two InternalIPs stay as they are
    for (const k of kubelets) {
      expect(await k.postStatus()).toBe(true);
      expect(await k.postStatus()).toBe(true);
    }
    for (const n of plan.nodes) {
      const node = await client.get<{ status: { addresses: { type: string; address: string }[] } }>(
        `/api/v1/nodes/${n.short}`,
      );
      expect(node.status.addresses.filter((a) => a.type === "InternalIP")).toEqual([
        { type: "InternalIP", address: n.ipv4 },
        { type: "InternalIP", address: n.ipv6 },
      ]);
      const lease = await client.get<{ spec: { holderIdentity: string } }>(
        `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${n.short}`,
      );
      expect(lease.spec.holderIdentity).toBe(n.short);
    }
  });

  test(
    "runs a scheduled pod in its own namespace: env, downward API, ConfigMap volume, SA token, logs, reachable from the other node",
    async () => {
      const name = uniqueName("web");
      const cm = uniqueName("cfg");
      await create(`/api/v1/namespaces/${NS}/configmaps`, {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: cm },
        data: { greeting: "hello from a ConfigMap" },
      });
      await create(`/api/v1/namespaces/${NS}/pods`, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, labels: { app: "web" } },
        spec: {
          nodeSelector: { "kubernetes.io/hostname": "node-1" },
          terminationGracePeriodSeconds: 5,
          containers: [
            {
              name: "echo",
              image: "registry.k8s.io/echoserver:2.5",
              ports: [{ name: "http", containerPort: 8080 }],
              readinessProbe: { tcpSocket: { port: "http" }, periodSeconds: 1 },
            },
            {
              name: "shell",
              image: "busybox",
              command: ["sh", "-c"],
              args: [
                'echo "pod=$POD_NAME ip=$POD_IP"; cat /etc/cfg/greeting; echo; wc -c < /var/run/secrets/kubernetes.io/serviceaccount/token; hostname; exec sleep infinity',
              ],
              env: [
                { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
                { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
              ],
              volumeMounts: [{ name: "cfg", mountPath: "/etc/cfg" }],
            },
          ],
          volumes: [{ name: "cfg", configMap: { name: cm } }],
        },
      });
      const pod = await waitPod(
        name,
        "Running and Ready",
        (p) =>
          p.status?.phase === "Running" &&
          p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true,
      );
      const node1 = plan.nodes.find((n) => n.short === "node-1")!;
      const node2 = plan.nodes.find((n) => n.short === "node-2")!;
      expect(pod.spec.nodeName).toBe("node-1");
      expect(pod.status?.hostIP).toBe(node1.ipv4);
      const podIP = pod.status!.podIP!;
      expect(podIP.startsWith(node1.podCIDRs[0]!.split(".").slice(0, 3).join("."))).toBe(true);
      // The echo server answers its pod's name, from the other node (the lab's host-gw routes).
      const r = await inNs(node2.ns, ["socat", "-T2", "-", `TCP:${podIP}:8080`], { input: "" });
      expect(r.stdout.trim()).toBe(name);
      // The shell container's log: env from the downward API, the ConfigMap file, a token, its hostname.
      const k1 = kubelets.find((k) => k.name === "node-1")!;
      const logPath = k1.worker(NS, name)!.logPath("shell")!;
      await until(() => readFileSync(logPath, "utf8").split("\n").length > 4, "shell's log lines", 10_000);
      const lines = readFileSync(logPath, "utf8")
        .trim()
        .split("\n")
        .map((l) => l.split(" ").slice(3).join(" "));
      expect(lines[0]).toBe(`pod=${name} ip=${podIP}`);
      expect(lines[1]).toBe("hello from a ConfigMap");
      expect(Number(lines[2])).toBeGreaterThan(100);
      expect(lines[3]).toBe(name);
    },
    T,
  );

  test(
    "restarts a crashing container with backoff and counts restarts; a pod that completes Succeeds",
    async () => {
      const crash = uniqueName("crash");
      const once = uniqueName("once");
      const mk = (name: string, args: string, restartPolicy: string) =>
        create(`/api/v1/namespaces/${NS}/pods`, {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name },
          spec: { restartPolicy, containers: [{ name: "c", image: "busybox", command: ["sh", "-c", args] }] },
        });
      await mk(crash, "echo crashing; exit 3", "Always");
      await mk(once, "echo done", "Never");
      const p = await waitPod(
        crash,
        "restarted twice",
        (x) => (x.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 2,
      );
      expect(p.status?.phase).toBe("Running");
      const cs0 = p.status?.containerStatuses?.[0] as
        | { lastState?: { terminated?: { exitCode: number } } }
        | undefined;
      const last = cs0?.lastState;
      expect(last?.terminated?.exitCode).toBe(3);
      await waitPod(once, "Succeeded", (x) => x.status?.phase === "Succeeded");
    },
    T,
  );

  test(
    "a failing liveness probe restarts the container; readiness follows its probe",
    async () => {
      const name = uniqueName("live");
      await create(`/api/v1/namespaces/${NS}/pods`, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name },
        spec: {
          containers: [
            {
              name: "c",
              image: "busybox",
              command: ["sh", "-c", "touch /tmp/kosmos-never-there-$$; exec sleep infinity"],
              livenessProbe: {
                exec: { command: ["test", "-e", "/nonexistent-kosmos"] },
                periodSeconds: 1,
                failureThreshold: 2,
              },
              readinessProbe: { exec: { command: ["true"] }, periodSeconds: 1 },
            },
          ],
        },
      });
      await waitPod(
        name,
        "restarted by its liveness probe",
        (x) => (x.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1,
      );
    },
    T,
  );

  test(
    "deleting a pod stops it gracefully, removes its namespace and finalizes the object",
    async () => {
      const name = uniqueName("del");
      await create(`/api/v1/namespaces/${NS}/pods`, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name },
        spec: {
          terminationGracePeriodSeconds: 20,
          containers: [
            {
              name: "c",
              image: "busybox",
              command: [
                "sh",
                "-c",
                "trap 'echo TERM > /var/lib/kosmos-kt-data/term; exit 0' TERM; echo up > /var/lib/kosmos-kt-data/up; while :; do sleep 0.1; done",
              ],
              volumeMounts: [{ name: "data", mountPath: "/var/lib/kosmos-kt-data" }],
            },
          ],
          volumes: [{ name: "data", hostPath: { path: `/var/lib/${name}`, type: "DirectoryOrCreate" } }],
        },
      });
      const p = await waitPod(name, "Running", (x) => x.status?.phase === "Running");
      const k = kubelets.find((x) => x.name === p.spec.nodeName)!;
      const logPath = k.worker(NS, name)!.logPath("c")!;
      const hostDir = join(root, k.name, "host", "var/lib", name);
      await until(
        () => existsSync(join(hostDir, "up")),
        "the container wrote into its hostPath volume",
        10_000,
      );
      const before = (await listNetns()).filter((n) => n.startsWith(plan.prefix)).length;
      await client.delete(podPath(name));
      await until(
        async () => (await getPod(name).catch(() => undefined)) === undefined,
        "pod object gone",
        30_000,
      );
      const after = (await listNetns()).filter((n) => n.startsWith(plan.prefix)).length;
      expect(after).toBe(before - 1);
      // The container got SIGTERM (and wrote so into the node's own hostPath directory).
      expect(readFileSync(join(hostDir, "term"), "utf8").trim()).toBe("TERM");
      void logPath; // the pod's directory (logs included) is removed with it
      await until(() => k.worker(NS, name) === undefined, "the kubelet forgot the pod", 10_000);
    },
    T,
  );

  test(
    "Services reach their ready endpoints through the kube-proxy stand-in, from pods on both nodes",
    async () => {
      const app = uniqueName("svc");
      for (const node of ["node-1", "node-2"]) {
        await create(`/api/v1/namespaces/${NS}/pods`, {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: `${app}-${node}`, labels: { app } },
          spec: {
            nodeSelector: { "kubernetes.io/hostname": node },
            containers: [{ name: "echo", image: "echoserver", ports: [{ containerPort: 8080 }] }],
          },
        });
      }
      const svc = await create<{ spec: { clusterIP: string } }>(`/api/v1/namespaces/${NS}/services`, {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: app },
        spec: { selector: { app }, ports: [{ port: 80, targetPort: 8080 }] },
      });
      const client1 = uniqueName("cli");
      await create(`/api/v1/namespaces/${NS}/pods`, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: client1 },
        spec: {
          nodeSelector: { "kubernetes.io/hostname": "node-1" },
          containers: [{ name: "c", image: "busybox" }],
        },
      });
      await waitPod(client1, "Running", (p) => p.status?.phase === "Running");
      const k1 = kubelets.find((k) => k.name === "node-1")!;
      const seen = new Set<string>();
      // Ask through the ClusterIP until both backends answered (random choice per connection).
      await until(
        async () => {
          const c = k1.worker(NS, client1)!.container("c")!;
          const r = await inNs(c.ns, ["socat", "-T2", "-", `TCP:${svc.spec.clusterIP}:80`], {
            input: "",
            allowFail: true,
          });
          if (r.code === 0 && r.stdout.trim()) seen.add(r.stdout.trim());
          return seen.size === 2;
        },
        "both endpoints answered through the Service",
        60_000,
        50,
      );
      expect([...seen].sort()).toEqual([`${app}-node-1`, `${app}-node-2`]);
    },
    T,
  );

  test(
    "kubectl logs and kubectl exec reach the pod through the API server and the kubelet API",
    async () => {
      const name = uniqueName("kctl");
      await create(`/api/v1/namespaces/${NS}/pods`, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name },
        spec: {
          containers: [
            {
              name: "c",
              image: "busybox",
              command: ["sh", "-c", "echo line-1; echo line-2; exec sleep infinity"],
            },
          ],
        },
      });
      await waitPod(name, "Running", (p) => p.status?.phase === "Running");
      const kubeconfig = await cp.kubeconfigFile("kubectl.kubeconfig");
      const kubectl = async (...args: string[]) => {
        const p = Bun.spawn([KUBECTL, "--kubeconfig", kubeconfig, ...args], {
          stdout: "pipe",
          stderr: "pipe",
        });
        const [out, err, code] = await Promise.all([
          new Response(p.stdout).text(),
          new Response(p.stderr).text(),
          p.exited,
        ]);
        return { out, err, code };
      };
      await until(
        async () => (await kubectl("logs", name)).out === "line-1\nline-2\n",
        "kubectl logs shows both lines",
        15_000,
        200,
      );
      expect((await kubectl("logs", name, "--tail=1")).out).toBe("line-2\n");
      const ex = await kubectl("exec", name, "--", "sh", "-c", "hostname; echo to-stderr >&2; exit 3");
      expect(`${ex.out}|${ex.err}`).toStartWith(`${name}\n|`);
      expect(ex.err).toContain("to-stderr");
      expect(ex.code).toBe(3);
      const withStdin = Bun.spawn([KUBECTL, "--kubeconfig", kubeconfig, "exec", "-i", name, "--", "cat"], {
        stdin: new TextEncoder().encode("through stdin\n"),
        stdout: "pipe",
        stderr: "pipe",
      });
      expect(await new Response(withStdin.stdout).text()).toBe("through stdin\n");
      expect(await withStdin.exited).toBe(0);
      // -it: kubectl needs a terminal of its own, which script(1) gives it; the command gets a pty.
      const cmd = `${KUBECTL} --kubeconfig ${kubeconfig} exec -it ${name} -- sh -c 'test -t 0 && echo "tty=$(tty)"; exit 4'`;
      const withTty = Bun.spawn(["script", "-qec", cmd, "/dev/null"], {
        stdin: "pipe",
        stdout: "pipe",
        stderr: "pipe",
      });
      const ttyOut = await new Response(withTty.stdout).text();
      expect(ttyOut).toMatch(/tty=\/dev\/pts\/\d+/);
      expect(await withTty.exited).toBe(4);
    },
    T,
  );

  test(
    "a kubelet that dies leaves its Node NotReady; a new one sweeps the old sandboxes and runs the pods again",
    async () => {
      const name = uniqueName("surv");
      await create(`/api/v1/namespaces/${NS}/pods`, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name },
        spec: {
          nodeSelector: { "kubernetes.io/hostname": "node-2" },
          tolerations: [{ operator: "Exists" }],
          containers: [{ name: "echo", image: "echoserver", ports: [{ containerPort: 8080 }] }],
        },
      });
      await waitPod(name, "Running", (p) => p.status?.phase === "Running");
      const old = kubelets.find((k) => k.name === "node-2")!;
      await old.stop(); // as a crash: the pods are left as they are
      kubelets.splice(kubelets.indexOf(old), 1);
      const readyOf = async () =>
        (
          await client.get<{ status: { conditions: { type: string; status: string }[] } }>(
            "/api/v1/nodes/node-2",
          )
        ).status.conditions.find((c) => c.type === "Ready")?.status;
      await until(
        async () => (await readyOf()) === "Unknown",
        "node-2 NotReady (Unknown) after its Lease expired",
        60_000,
        200,
      );
      const node2 = plan.nodes.find((n) => n.short === "node-2")!;
      await (await startKubelet(node2)).start();
      await until(async () => (await readyOf()) === "True", "node-2 Ready again", 30_000, 200);
      const node1 = plan.nodes.find((n) => n.short === "node-1")!;
      // The pod's address may change (the new kubelet allocates afresh): read it on every try.
      await until(
        async () => {
          const ip = (await getPod(name)).status?.podIP;
          if (!ip) return false;
          const r = await inNs(node1.ns, ["socat", "-T2", "-", `TCP:${ip}:8080`], {
            input: "",
            allowFail: true,
          });
          return r.stdout.trim() === name;
        },
        "the pod answers from node-1",
        30_000,
        200,
      );
    },
    T,
  );
});
