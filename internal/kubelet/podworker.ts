/**
 * The lab kubelet's worker for one pod (side effects): plans it (podplan.ts, with the ConfigMaps,
 * Secrets and ServiceAccount tokens it refers to fetched first), makes its sandbox and files, starts
 * its containers, restarts them per restart policy with the kubelet's backoff, runs its probes,
 * writes its status back, and on deletion stops it gracefully (SIGTERM, SIGKILL after the grace
 * period), removes the sandbox and finalizes the pod object (delete, grace 0, uid precondition).
 */

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KubeApiError, type KubeClient, type KubeObject } from "../kube/index.ts";
import type { Logger } from "../observability/index.ts";
import { type RunningContainer, signalGroup, startContainer } from "./container.ts";
import { resolvConf } from "./dns.ts";
import type { PodFacts } from "./env.ts";
import type { MountStep } from "./mounts.ts";
import { nowSeconds } from "./nodeobj.ts";
import { logFile, mountSteps, podDir, removePodDir, writeVolumes } from "./podfiles.ts";
import { type ContainerPlan, type PodPlan, type PodSpecLike, type Probe, planPod } from "./podplan.ts";
import { runProbe } from "./prober.ts";
import { podRefs } from "./refs.ts";
import { createSandbox, removeSandbox, type Sandbox, sandboxNames } from "./sandbox.ts";
import {
  type ContainerRuntime,
  type ContainerState,
  type PodCondition,
  podStatus,
  restartBackoffMs,
  shouldRestart,
} from "./status.ts";

export type Pod = KubeObject & {
  spec: PodSpecLike & {
    nodeName?: string;
    serviceAccountName?: string;
    containers: PodSpecLike["containers"];
  };
  status?: { phase?: string; conditions?: PodCondition[] };
  metadata: KubeObject["metadata"] & { deletionGracePeriodSeconds?: number };
};

export interface KubeletContext {
  client: KubeClient;
  node: string;
  /** The node's network namespace (its cni0 is the pods' bridge). */
  nodeNs: string;
  hostIP: string;
  podCIDRs: string[];
  /** Prefix of pod network namespaces (the lab's prefix, so `lab down` removes them). */
  prefix: string;
  /** The kubelet's directory (pod dirs, logs, the node's hostPath root). */
  root: string;
  bun: string;
  backoffBaseMs: number;
  /** Environment every container gets (PATH, KUBERNETES_SERVICE_HOST/PORT). */
  baseEnv: Record<string, string>;
  allocate(): string[];
  release(ips: string[]): void;
  clusterDNS: string[];
  clusterDomain: string;
  /** The node's /etc/resolv.conf, read once at start (pods inherit its searches and options). */
  hostResolvConf: string;
  log: Logger;
}

interface Ctr {
  plan: ContainerPlan;
  rt: ContainerRuntime;
  proc?: RunningContainer;
  restartTimer?: ReturnType<typeof setTimeout>;
  probeTimers: ReturnType<typeof setTimeout>[];
  generation: number;
}

const path = (p: Pod): string => `/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}`;

export class PodWorker {
  private plan: PodPlan | undefined;
  private sandbox: Sandbox | undefined;
  private readonly ctrs = new Map<string, Ctr>();
  private startTime = nowSeconds();
  private conditions: PodCondition[] | undefined;
  private terminating: Promise<void> | undefined;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private setting: Promise<void> | undefined;
  private pushing: Promise<void> | undefined;
  private dirty = false;
  private done = false;
  readonly uid: string;

  constructor(
    private readonly ctx: KubeletContext,
    private pod: Pod,
  ) {
    this.uid = pod.metadata.uid!;
  }

  get name(): string {
    return `${this.pod.metadata.namespace}/${this.pod.metadata.name}`;
  }

  /** Container processes by name (for the kubelet API's exec). */
  container(name?: string): { pid: number; ns: string; env: Record<string, string> } | undefined {
    const c = name ? this.ctrs.get(name) : [...this.ctrs.values()][0];
    if (!c?.proc || !this.sandbox) return undefined;
    return { pid: c.proc.pid, ns: this.sandbox.ns, env: { ...this.ctx.baseEnv, ...c.plan.env } };
  }

  /** The log file of a container's current (or previous) run. */
  logPath(name: string, previous = false): string | undefined {
    const c = this.ctrs.get(name);
    if (!c) return undefined;
    const n = previous ? c.rt.restartCount - 1 : c.rt.restartCount;
    return n < 0 ? undefined : logFile(this.ctx.root, this.uid, name, n);
  }

  get containerNames(): string[] {
    return this.pod.spec.containers.map((c) => c.name);
  }

  /** A new version of the pod object. */
  update(pod: Pod): void {
    this.pod = pod;
  }

  async start(): Promise<void> {
    if (this.pod.metadata.deletionTimestamp) return;
    const phase = this.pod.status?.phase;
    if (phase === "Succeeded" || phase === "Failed") return;
    this.conditions = this.pod.status?.conditions;
    for (const c of this.pod.spec.containers) {
      this.ctrs.set(c.name, {
        plan: undefined as unknown as ContainerPlan,
        rt: {
          name: c.name,
          image: c.image,
          state: { waiting: { reason: "ContainerCreating" } },
          restartCount: 0,
          ready: false,
          started: false,
        },
        probeTimers: [],
        generation: 0,
      });
    }
    this.setting = this.setup();
    await this.setting;
  }

  /** Plan, sandbox, files, containers; a plan error is reported in the status and retried. */
  private async setup(): Promise<void> {
    if (this.terminating) return;
    // The sandbox first: the downward API's status.podIP needs the pod's address.
    try {
      this.sandbox ??= this.pod.spec.hostNetwork
        ? { ns: this.ctx.nodeNs, own: false, ips: [this.ctx.hostIP] }
        : await createSandbox(
            { prefix: this.ctx.prefix, nodeNs: this.ctx.nodeNs, podCIDRs: this.ctx.podCIDRs, uid: this.uid },
            this.ctx.allocate(),
          );
    } catch (e) {
      this.ctx.log.error({ pod: this.name, err: (e as Error).message }, "sandbox failed");
      this.retry = setTimeout(() => {
        this.setting = this.setup();
      }, 5000);
      return;
    }
    if (this.terminating) return;
    let plan: PodPlan;
    try {
      plan = await this.makePlan();
    } catch (e) {
      const reason = (e as { code?: string }).code ?? "CreateContainerConfigError";
      for (const c of this.ctrs.values()) c.rt.state = { waiting: { reason, message: (e as Error).message } };
      this.ctx.log.warn({ pod: this.name, err: (e as Error).message }, "pod cannot start yet");
      this.push();
      this.retry = setTimeout(() => {
        this.setting = this.setup();
      }, 5000);
      return;
    }
    if (this.terminating) return;
    this.plan = plan;
    if (plan.unsupported.length > 0)
      this.ctx.log.info({ pod: this.name, unsupported: plan.unsupported }, "not done by the lab kubelet");
    this.startTime = nowSeconds();
    for (const c of plan.containers) this.ctrs.get(c.name)!.plan = c;
    for (const c of this.ctrs.values()) this.run(c);
    this.push();
  }

  private async makePlan(): Promise<PodPlan> {
    const p = this.pod;
    const ns = p.metadata.namespace!;
    const refs = podRefs(p.spec);
    const get = async (kind: "configmaps" | "secrets", name: string) => {
      try {
        const o = await this.ctx.client.get<{ data?: Record<string, string> }>(
          `/api/v1/namespaces/${ns}/${kind}/${name}`,
        );
        const data = o.data ?? {};
        if (kind === "secrets")
          for (const k of Object.keys(data)) data[k] = Buffer.from(data[k]!, "base64").toString("utf8");
        return [name, { data }] as const;
      } catch (e) {
        if (e instanceof KubeApiError && e.status === 404) return [name, undefined] as const;
        throw e;
      }
    };
    const cms = new Map(await Promise.all(refs.configMaps.map((n) => get("configmaps", n))));
    const secrets = new Map(await Promise.all(refs.secrets.map((n) => get("secrets", n))));
    const tokens = new Map<string, string>();
    const sa = p.spec.serviceAccountName ?? "default";
    for (const aud of refs.tokenAudiences) {
      const r = await this.ctx.client.create<{ status: { token: string } }>(
        `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`,
        {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenRequest",
          spec: {
            ...(aud ? { audiences: [aud] } : {}),
            expirationSeconds: 3607,
            boundObjectRef: { apiVersion: "v1", kind: "Pod", name: p.metadata.name, uid: this.uid },
          },
        },
      );
      tokens.set(aud, r.status.token);
    }
    const facts = this.facts();
    return planPod(
      p.spec,
      facts,
      {
        configMap: (n) => cms.get(n),
        secret: (n) => secrets.get(n),
        token: (aud) => tokens.get(aud ?? ""),
      },
      this.ctx.bun,
    );
  }

  private facts(): PodFacts {
    const p = this.pod;
    return {
      name: p.metadata.name,
      namespace: p.metadata.namespace!,
      uid: this.uid,
      nodeName: this.ctx.node,
      serviceAccountName: p.spec.serviceAccountName ?? "default",
      hostIP: this.ctx.hostIP,
      podIPs: this.sandbox?.ips ?? [],
      labels: p.metadata.labels ?? {},
      annotations: p.metadata.annotations ?? {},
      resources: {},
    };
  }

  /** The pod's /etc/resolv.conf (dns.ts), written once into its directory; none: the node's own. */
  private resolvMount(): MountStep[] {
    const text = resolvConf({
      dnsPolicy: this.pod.spec.dnsPolicy,
      dnsConfig: this.pod.spec.dnsConfig,
      hostNetwork: this.plan?.hostNetwork ?? false,
      namespace: this.pod.metadata.namespace!,
      clusterDNS: this.ctx.clusterDNS,
      clusterDomain: this.ctx.clusterDomain,
      hostResolvConf: this.ctx.hostResolvConf,
    });
    if (text === undefined) return [];
    mkdirSync(podDir(this.ctx.root, this.uid), { recursive: true });
    const file = join(podDir(this.ctx.root, this.uid), "resolv.conf");
    writeFileSync(file, text, { mode: 0o644 });
    return [{ source: file, mountPath: "/etc/resolv.conf", readOnly: false, file: true }];
  }

  /** Start (or restart) one container and watch it. */
  private run(c: Ctr): void {
    if (this.terminating || !this.plan || !this.sandbox) return;
    const gen = ++c.generation;
    const volumes = this.plan.volumes;
    const hostPathTypes = Object.fromEntries(
      (this.pod.spec.volumes ?? []).map((v) => [v.name, v.hostPath?.type]),
    );
    let proc: RunningContainer;
    try {
      const sources = writeVolumes(this.ctx.root, this.uid, volumes, hostPathTypes);
      proc = startContainer({
        ns: this.sandbox.ns,
        argv: c.plan.argv,
        env: {
          ...this.ctx.baseEnv,
          HOSTNAME: this.plan.hostNetwork ? this.ctx.node : this.pod.metadata.name,
          ...c.plan.env,
        },
        mounts: {
          mounts: [...mountSteps(c.plan, sources), ...this.resolvMount()],
          overlayDir: join(podDir(this.ctx.root, this.uid), "overlays", c.plan.name),
          ...(this.plan.hostNetwork ? {} : { hostname: this.pod.metadata.name }),
          ...(c.plan.workingDir ? { workingDir: c.plan.workingDir } : {}),
        },
        logFile: logFile(this.ctx.root, this.uid, c.plan.name, c.rt.restartCount),
      });
    } catch (e) {
      c.rt.state = { waiting: { reason: "CreateContainerError", message: (e as Error).message } };
      this.push();
      return;
    }
    c.proc = proc;
    c.rt.state = { running: { startedAt: proc.startedAt } };
    c.rt.started = true;
    c.rt.ready = !c.plan.readiness;
    this.startProbes(c, gen);
    void proc.exited.then((x) => this.exited(c, gen, x));
    this.push();
  }

  private exited(c: Ctr, gen: number, x: { exitCode: number; signal?: number; finishedAt: string }): void {
    if (gen !== c.generation) return;
    this.stopProbes(c);
    c.proc = undefined;
    const startedAt = "running" in c.rt.state ? c.rt.state.running.startedAt : undefined;
    const terminated: ContainerState = {
      terminated: {
        exitCode: x.exitCode,
        reason: x.exitCode === 0 ? "Completed" : "Error",
        ...(startedAt ? { startedAt } : {}),
        finishedAt: x.finishedAt,
        ...(x.signal !== undefined ? { signal: x.signal } : {}),
      },
    };
    c.rt.ready = false;
    if (!this.terminating && shouldRestart(this.plan!.restartPolicy, x.exitCode)) {
      c.rt.lastState = terminated;
      c.rt.restartCount++;
      const delay = restartBackoffMs(c.rt.restartCount, this.ctx.backoffBaseMs);
      c.rt.state = {
        waiting: { reason: "CrashLoopBackOff", message: `back-off ${delay} ms restarting failed container` },
      };
      c.restartTimer = setTimeout(() => this.run(c), delay);
    } else c.rt.state = terminated;
    this.push();
    const all = [...this.ctrs.values()];
    if (!this.terminating && all.every((k) => "terminated" in k.rt.state)) void this.cleanupFinished();
  }

  /** A pod that has finished (Succeeded/Failed) keeps its status and logs, not its sandbox. */
  private async cleanupFinished(): Promise<void> {
    await this.flush();
    if (this.sandbox?.own) {
      await removeSandbox(this.sandbox.ns, this.ctx.nodeNs);
      this.ctx.release(this.sandbox.ips);
    }
  }

  private startProbes(c: Ctr, gen: number): void {
    const loop = (probe: Probe, kind: "readiness" | "liveness") => {
      let ok = 0;
      let bad = 0;
      const tick = async () => {
        if (gen !== c.generation || !c.proc || this.terminating) return;
        const pass = await runProbe(probe, {
          pid: c.proc.pid,
          ns: this.sandbox!.ns,
          podIP: this.sandbox!.ips[0] ?? this.ctx.hostIP,
          env: { ...this.ctx.baseEnv, ...c.plan.env },
        }).catch(() => false);
        if (gen !== c.generation || !c.proc) return;
        if (pass) [ok, bad] = [ok + 1, 0];
        else [ok, bad] = [0, bad + 1];
        if (kind === "readiness") {
          const ready = pass
            ? ok >= probe.successThreshold || c.rt.ready
            : bad < probe.failureThreshold && c.rt.ready;
          if (ready !== c.rt.ready) {
            c.rt.ready = ready;
            this.push();
          }
        } else if (bad >= probe.failureThreshold) {
          this.ctx.log.info({ pod: this.name, container: c.plan.name }, "liveness probe failed, restarting");
          void this.stopContainer(c, this.plan!.gracePeriodSeconds);
          return;
        }
        c.probeTimers.push(setTimeout(() => void tick(), probe.periodMs));
      };
      c.probeTimers.push(setTimeout(() => void tick(), probe.initialDelayMs));
    };
    if (c.plan.readiness) loop(c.plan.readiness, "readiness");
    if (c.plan.liveness) loop(c.plan.liveness, "liveness");
  }

  private stopProbes(c: Ctr): void {
    for (const t of c.probeTimers) clearTimeout(t);
    c.probeTimers = [];
  }

  /** SIGTERM the container's process group, SIGKILL after `graceSeconds`; resolves once it exited. */
  private async stopContainer(c: Ctr, graceSeconds: number): Promise<void> {
    const proc = c.proc;
    if (!proc) return;
    signalGroup(proc.pid, "SIGTERM");
    const kill = setTimeout(() => signalGroup(proc.pid, "SIGKILL"), Math.max(0, graceSeconds * 1000));
    try {
      await proc.exited;
    } finally {
      clearTimeout(kill);
    }
  }

  /**
   * Stop the pod: every container gracefully, then the sandbox; `finalize`: delete the pod object
   * (grace 0, precondition on its uid) once nothing of it runs.
   */
  terminate(graceSeconds: number | undefined, finalize: boolean): Promise<void> {
    this.terminating ??= (async () => {
      clearTimeout(this.retry);
      await this.setting; // a sandbox being made is made before it is removed
      const grace = graceSeconds ?? this.plan?.gracePeriodSeconds ?? 30;
      const ctrs = [...this.ctrs.values()];
      for (const c of ctrs) {
        clearTimeout(c.restartTimer);
        this.stopProbes(c);
      }
      await Promise.all(ctrs.map((c) => this.stopContainer(c, grace)));
      if (this.sandbox?.own) {
        await removeSandbox(this.sandbox.ns, this.ctx.nodeNs);
        this.ctx.release(this.sandbox.ips);
      } else if (!this.sandbox) {
        await removeSandbox(sandboxNames(this.ctx.prefix, this.uid).ns, this.ctx.nodeNs);
      }
      await this.pushing;
      if (finalize) await this.finalize();
      removePodDir(this.ctx.root, this.uid);
      this.done = true;
    })();
    return this.terminating;
  }

  /**
   * Delete the pod object (grace 0, precondition on its uid). A failure other than "gone or replaced"
   * is retried (a real kubelet's status manager keeps trying too): one lost request would otherwise
   * leave the pod Terminating for ever.
   */
  private async finalize(): Promise<void> {
    const body = {
      apiVersion: "v1",
      kind: "DeleteOptions",
      gracePeriodSeconds: 0,
      preconditions: { uid: this.uid },
    };
    for (let attempt = 1; ; attempt++) {
      try {
        await this.ctx.client.delete(path(this.pod), { gracePeriodSeconds: 0 }, body);
        return;
      } catch (e) {
        if (e instanceof KubeApiError && (e.status === 409 || e.status === 404)) return;
        this.ctx.log.warn(
          { pod: this.name, err: (e as Error).message, attempt },
          "finalizing the pod failed",
        );
        if (attempt >= 10) return;
        await Bun.sleep(Math.min(500 * 2 ** (attempt - 1), 10_000));
      }
    }
  }

  /**
   * Forget the pod without touching it (the kubelet stops as if it crashed): no more restarts, probes
   * or status writes; its processes are left to the next kubelet's sweep.
   */
  abandon(): void {
    this.done = true;
    this.terminating ??= Promise.resolve();
    clearTimeout(this.retry);
    for (const c of this.ctrs.values()) {
      clearTimeout(c.restartTimer);
      this.stopProbes(c);
      c.generation++;
    }
  }

  /** Write the status soon; writes are serialized and coalesced. */
  private push(): void {
    this.dirty = true;
    if (this.pushing) return;
    this.pushing = (async () => {
      while (this.dirty && !this.done) {
        this.dirty = false;
        await this.writeStatus().catch((e: unknown) => {
          if (!(e instanceof KubeApiError && e.status === 404))
            this.ctx.log.warn({ pod: this.name, err: (e as Error).message }, "status write failed");
        });
      }
      this.pushing = undefined;
    })();
  }

  /** Resolves once every status change so far is written. */
  async flush(): Promise<void> {
    while (this.pushing) await this.pushing;
  }

  private async writeStatus(): Promise<void> {
    const status = podStatus({
      restartPolicy: this.plan?.restartPolicy ?? this.pod.spec.restartPolicy ?? "Always",
      containers: [...this.ctrs.values()].map((c) => c.rt),
      hostIP: this.ctx.hostIP,
      podIPs: this.sandbox?.ips ?? [],
      startTime: this.startTime,
      ...(this.conditions ? { previous: this.conditions } : {}),
      now: nowSeconds(),
    });
    for (const cs of status.containerStatuses as { name: string; containerID: string }[])
      cs.containerID = `lab://${this.uid}/${cs.name}`;
    this.conditions = status.conditions as PodCondition[];
    await this.ctx.client.patch(`${path(this.pod)}/status`, { status }, "merge");
  }
}
