/**
 * `kosmosctl lab demo` on real Kubernetes (issue 13): the lab's clusters become real clusters (one
 * control plane each, a lab kubelet per node), Kosmos is installed into them the way a user does it on
 * real clusters (`install` on the first, `join cluster` for every one, the first included), the agents
 * run as the DaemonSet's pods, and a Deployment of echo pods in every cluster is probed from every
 * other cluster through Kosmos. Each step prints the command a user would type.
 */
import { readFile } from "node:fs/promises";
import { applyObjects, KubeClient, loadKubeConfig, type ManifestObject } from "../kube/index.ts";
import { sandboxNames } from "../kubelet/index.ts";
import { type LabConfig, type LabKubeState, type LabPlan, labUp, mapToGlobal, sh } from "../lab/index.ts";
import { install, join } from "./k8s-ops.ts";
import { kubeRows, printKubeRows, upKubernetes } from "./lab-k8s.ts";
import { FAIL, OK, progressBar, renderTable } from "./output.ts";
import { waitWithBar } from "./rollout.ts";

export const DEMO_NAMESPACE = "kosmos-demo";
const ECHO_PORT = 8080;

export interface DemoPod {
  cluster: string;
  name: string;
  node: string;
  uid: string;
  ips: string[];
}

export interface DemoProbe {
  from: string;
  fromCluster: string;
  to: string;
  toCluster: string;
  ip: string;
  ok: boolean;
  answer: string;
  /** Connections tried (a refused or timed-out one is tried again until the probe's deadline). */
  attempts: number;
}

const say = (s: string) => process.stdout.write(`${s}\n`);
const upstreamFamily = (f: string): string => (f === "dual" ? "all" : f);

/** The echo Deployment every cluster gets (image → the lab's echo program, docs/lab.md). */
export function echoObjects(replicas = 2): ManifestObject[] {
  return [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: DEMO_NAMESPACE } },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "echo", namespace: DEMO_NAMESPACE },
      spec: {
        replicas,
        selector: { matchLabels: { app: "echo" } },
        template: {
          metadata: { labels: { app: "echo" } },
          spec: {
            containers: [
              {
                name: "echo",
                image: "kosmos-echo",
                ports: [{ containerPort: ECHO_PORT }],
                // Running only says the process started; Ready says it listens (the probes wait for it).
                readinessProbe: { tcpSocket: { port: ECHO_PORT }, periodSeconds: 1 },
              },
            ],
          },
        },
      },
    } as ManifestObject,
  ];
}

/** Ready echo pods with their IPs (empty until all `want` are Running and Ready). */
export async function runningEcho(client: KubeClient, cluster: string, want: number): Promise<DemoPod[]> {
  const list = await client.list<{
    metadata: { name: string; uid: string };
    spec?: { nodeName?: string };
    status?: { phase?: string; podIPs?: { ip: string }[]; conditions?: { type: string; status: string }[] };
  }>(`/api/v1/namespaces/${DEMO_NAMESPACE}/pods?labelSelector=app%3Decho`);
  const running = list.items.filter(
    (p) =>
      p.status?.phase === "Running" &&
      p.status.podIPs?.length &&
      p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
  );
  if (running.length < want) return [];
  return running.map((p) => ({
    cluster,
    name: p.metadata.name,
    node: p.spec?.nodeName ?? "",
    uid: p.metadata.uid,
    ips: (p.status?.podIPs ?? []).map((x) => x.ip),
  }));
}

/** What each source pod must reach (pure): every pod of every other cluster, by the address Kosmos routes. */
export function demoTargets(
  plan: LabPlan,
  pods: DemoPod[],
): Array<{ src: DemoPod; dst: DemoPod; ip: string }> {
  const out: Array<{ src: DemoPod; dst: DemoPod; ip: string }> = [];
  const firstOf = new Map<string, DemoPod>();
  for (const p of pods) if (!firstOf.has(p.cluster)) firstOf.set(p.cluster, p);
  for (const src of firstOf.values()) {
    for (const dst of pods) {
      if (dst.cluster === src.cluster) continue;
      const dc = plan.clusters.find((c) => c.name === dst.cluster)!;
      for (const ip of dst.ips) {
        const v6 = ip.includes(":");
        if (!src.ips.some((s) => s.includes(":") === v6)) continue;
        out.push({ src, dst, ip: v6 ? ip : (mapToGlobal(ip, dc.globalCIDRs) ?? ip) });
      }
    }
  }
  return out;
}

/**
 * Probe every target at once (each from its source pod's network namespace). A failed connection is
 * tried again, one second apart, until `withinMs` has passed since the start (routes and the agents'
 * tables converge in that time on a busy machine); each result says how many tries it took.
 */
export function probeTargets(
  plan: LabPlan,
  targets: Array<{ src: DemoPod; dst: DemoPod; ip: string }>,
  withinMs = 20_000,
) {
  const deadline = Date.now() + withinMs;
  return Promise.all(
    targets.map(async (t) => {
      for (let attempts = 1; ; attempts++) {
        const r = await probe(plan, t);
        if (r.ok || Date.now() + 1000 > deadline) return { ...r, attempts };
        await Bun.sleep(1000);
      }
    }),
  );
}

async function probe(
  plan: LabPlan,
  t: { src: DemoPod; dst: DemoPod; ip: string },
): Promise<Omit<DemoProbe, "attempts">> {
  const node = plan.nodes.find((n) => n.cluster === t.src.cluster && n.short === t.src.node);
  if (!node) throw new Error(`no lab node ${t.src.cluster}/${t.src.node}`);
  const { ns } = sandboxNames(`${node.ns}-`, t.src.uid);
  const addr = t.ip.includes(":") ? `TCP6:[${t.ip}]:${ECHO_PORT}` : `TCP4:${t.ip}:${ECHO_PORT}`;
  const r = await sh(["ip", "netns", "exec", ns, "socat", "-T3", "-", `${addr},connect-timeout=3`], {
    allowFail: true,
    input: "",
  });
  const answer = r.stdout.trim() || r.stderr.trim().split("\n").pop() || "";
  return {
    from: t.src.name,
    fromCluster: t.src.cluster,
    to: t.dst.name,
    toCluster: t.dst.cluster,
    ip: t.ip,
    ok: r.code === 0 && answer === t.dst.name,
    answer,
  };
}

/**
 * `install` on the first cluster, `join cluster` for every one (the first included), then wait for
 * every agent. `tree`: clusters joined with `--enable-tree` (leaves of the first, ClusterTree).
 */
export async function installAndJoin(
  plan: LabPlan,
  st: LabKubeState,
  clients: Map<string, KubeClient>,
  tree: string[] = [],
): Promise<void> {
  const first = st.clusters[0]!;
  const host = clients.get(first.name)!;
  say(`\n$ kosmosctl install --kubeconfig ${first.kubeconfig} --cluster-name ${first.name} --mcs`);
  const bar = progressBar(1, "apply");
  await install(host, {
    clusterName: first.name,
    mcs: true,
    timeoutMs: 300_000,
    onProgress: (n, total, what) => bar.update(n, what, total),
  }).finally(() => bar.stop());
  for (const c of st.clusters) {
    const pc = plan.clusters.find((x) => x.name === c.name)!;
    const globals = Object.entries(pc.globalCIDRs).map(([l, g]) => ` --global-cidr ${l}=${g}`);
    say(
      `$ kosmosctl join cluster --name ${c.name} --kubeconfig ${c.kubeconfig} --stored-kubeconfig ${c.internalKubeconfig} ` +
        `--network-type ${pc.networkType} --ip-family ${upstreamFamily(pc.ipFamily)} --mcs` +
        (tree.includes(c.name) ? " --enable-tree" : "") +
        `${pc.podCIDRs.map((p) => ` --pod-cidr ${p}`).join("")}${globals.join("")}`,
    );
    await join(host, clients.get(c.name)!, {
      name: c.name,
      memberKubeconfig: await readFile(c.internalKubeconfig, "utf8"),
      networkType: pc.networkType,
      ipFamily: upstreamFamily(pc.ipFamily),
      timeoutMs: 300_000,
      link: { globalCIDRsMap: pc.globalCIDRs, clusterpodCIDRs: pc.podCIDRs },
      mcs: true,
      ...(tree.includes(c.name) ? { tree: { enable: true } } : {}),
    });
  }
  for (const c of st.clusters) {
    say(`waiting for the agents of ${c.name} (topology applied)`);
    await waitWithBar(clients.get(c.name)!, {
      timeoutMs: 300_000,
      agents: "ready",
      controller: c.name === first.name,
    });
  }
}

async function deployEcho(st: LabKubeState, clients: Map<string, KubeClient>): Promise<DemoPod[]> {
  const pods: DemoPod[] = [];
  for (const c of st.clusters) {
    say(
      `$ kubectl --kubeconfig ${c.kubeconfig} -n ${DEMO_NAMESPACE} create deployment echo --image kosmos-echo --replicas 2`,
    );
    await applyObjects(clients.get(c.name)!, echoObjects(2));
  }
  const deadline = Date.now() + 180_000;
  for (const c of st.clusters) {
    for (;;) {
      const got = await runningEcho(clients.get(c.name)!, c.name, 2);
      if (got.length) {
        pods.push(...got);
        break;
      }
      if (Date.now() > deadline) throw new Error(`echo pods of ${c.name} not Running and Ready after 180 s`);
      await Bun.sleep(500);
    }
  }
  say(
    renderTable(
      ["CLUSTER", "POD", "NODE", "POD IPS"],
      pods.map((p) => [p.cluster, p.name, p.node, p.ips.join(", ")]),
    ),
  );
  return pods;
}

/**
 * `lab up --kubernetes --no-agents` as a demo step (printed as `command`): the lab, its control planes
 * and kubelets, the clusters' table, and an API client per cluster (the caller closes them).
 */
export async function demoLabUp(
  name: string,
  config: LabConfig,
  command: string,
): Promise<{ plan: LabPlan; st: LabKubeState; clients: Map<string, KubeClient> }> {
  say(`$ ${command}`);
  const bar = progressBar(1, "lab up");
  const { plan } = await labUp(name, config, {
    noAgents: true,
    progress: (step, done, total) => bar.update(done, step, total),
  }).finally(() => bar.stop());
  const st = await upKubernetes(name);
  say(printKubeRows(await kubeRows(st)));
  const clients = new Map(st.clusters.map((c) => [c.name, new KubeClient(loadKubeConfig(c.kubeconfig))]));
  return { plan, st, clients };
}

/** The whole demo; true when every cross-cluster probe answered with the right pod's name. */
export async function kubernetesDemo(name: string, config: LabConfig): Promise<boolean> {
  const t0 = performance.now();
  const { plan, st, clients } = await demoLabUp(
    name,
    config,
    `kosmosctl lab up --kubernetes --no-agents --name ${name}`,
  );
  try {
    await installAndJoin(plan, st, clients);
    say(printKubeRows(await kubeRows(st)));
    const pods = await deployEcho(st, clients);
    const results = await probeTargets(plan, demoTargets(plan, pods));
    say(
      renderTable(
        ["FROM", "TO", "ADDRESS", "", "ANSWER", "TRIES"],
        results.map((r) => [
          `${r.fromCluster}/${r.from}`,
          `${r.toCluster}/${r.to}`,
          r.ip,
          r.ok ? OK : FAIL,
          r.answer,
          String(r.attempts),
        ]),
      ),
    );
    const ok = results.filter((r) => r.ok).length;
    say(
      `${ok}/${results.length} cross-cluster connections between pods the real scheduler placed answered ` +
        `(${((performance.now() - t0) / 1000).toFixed(0)} s)`,
    );
    return ok === results.length && results.length > 0;
  } finally {
    for (const c of clients.values()) c.close();
  }
}
