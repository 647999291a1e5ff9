/**
 * The lab kubelet: one per lab node, running in the root network namespace. It registers its Node,
 * renews its Lease in kube-node-lease every 10 s (stop it and the node-lifecycle controller marks the
 * node NotReady), posts the node status every minute, and runs every pod the scheduler binds to the
 * node through a PodWorker. On start it removes pod sandboxes a previous run left behind: the pods
 * still bound to the node are started again, so a restart converges to the same pods running.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { Informer, KubeApiError, type KubeClient } from "../kube/index.ts";
import { listNetns } from "../lab/index.ts";
import type { Logger } from "../observability/index.ts";
import { allocatePodIPs } from "./ipam.ts";
import { KubeProxy } from "./kubeproxy.ts";
import { leaseObject, type NodeIdentity, nodeObject, nodeStatus, nowSeconds } from "./nodeobj.ts";
import { type KubeletContext, type Pod, PodWorker } from "./podworker.ts";
import { removeSandbox } from "./sandbox.ts";
import { serveKubeletApi } from "./server.ts";

export interface KubeletOptions {
  client: KubeClient;
  node: NodeIdentity;
  /** The node's network namespace. */
  nodeNs: string;
  /** Prefix of pod namespaces (default `<nodeNs>-`). */
  podNsPrefix?: string;
  root: string;
  /** Bun binary for Kosmos' own images (default: this process's). */
  bun?: string;
  /** CrashLoopBackOff base (default 10 s, as the kubelet). */
  backoffBaseMs?: number;
  /** Lease renewal period (default 10 s). */
  leaseEveryMs?: number;
  /** Addresses of the node pod CIDRs left to the lab's own pods (default 16). */
  reservedIPs?: number;
  /** Extra environment for every container (KUBERNETES_SERVICE_HOST/PORT). */
  env?: Record<string, string>;
  /** --cluster-dns: the nameservers of ClusterFirst pods (none: pods keep the node's resolv.conf). */
  clusterDNS?: string[];
  /** --cluster-domain (default cluster.local). */
  clusterDomain?: string;
  /** Serve the kubelet API (logs, exec) on 127.0.0.1:node.kubeletPort with this certificate. */
  tls?: { certFile: string; keyFile: string; clientCAFile?: string };
  /** Run the kube-proxy stand-in with these cluster pod CIDRs (traffic from elsewhere is masqueraded). */
  proxyClusterCIDRs?: string[];
  log: Logger;
}

const LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";

export class Kubelet {
  private readonly workers = new Map<string, PodWorker>();
  private informer: Informer<Pod> | undefined;
  private timers: ReturnType<typeof setInterval>[] = [];
  private readonly used = new Set<string>();
  private readonly ctx: KubeletContext;
  private readySince = nowSeconds();
  /** The node's kube-proxy stand-in (when proxyClusterCIDRs is given). */
  proxy: KubeProxy | undefined;
  private api: { port: number; stop(): void } | undefined;

  constructor(readonly o: KubeletOptions) {
    const prefix = o.podNsPrefix ?? `${o.nodeNs}-`;
    this.ctx = {
      client: o.client,
      node: o.node.name,
      nodeNs: o.nodeNs,
      hostIP: o.node.addresses[0]!,
      podCIDRs: o.node.podCIDRs,
      prefix,
      root: o.root,
      bun: o.bun ?? process.execPath,
      backoffBaseMs: o.backoffBaseMs ?? 10_000,
      baseEnv: {
        PATH: process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        HOME: "/root",
        ...o.env,
      },
      allocate: () => {
        const ips = allocatePodIPs(o.node.podCIDRs, this.used, o.reservedIPs ?? 16);
        for (const ip of ips) this.used.add(ip);
        return ips;
      },
      release: (ips) => {
        for (const ip of ips) this.used.delete(ip);
      },
      clusterDNS: o.clusterDNS ?? [],
      clusterDomain: o.clusterDomain ?? "cluster.local",
      hostResolvConf: existsSync("/etc/resolv.conf") ? readFileSync("/etc/resolv.conf", "utf8") : "",
      log: o.log,
    };
  }

  get name(): string {
    return this.o.node.name;
  }

  /** The worker of a pod on this node (the kubelet API's logs and exec). */
  worker(namespace: string, name: string): PodWorker | undefined {
    return [...this.workers.values()].find((w) => w.name === `${namespace}/${name}`);
  }

  async start(): Promise<void> {
    mkdirSync(this.o.root, { recursive: true });
    await this.sweep();
    if (this.o.tls) this.api = serveKubeletApi(this, { port: this.o.node.kubeletPort, ...this.o.tls });
    await this.register();
    await this.renewLease();
    this.timers.push(
      setInterval(() => void this.renewLease(), this.o.leaseEveryMs ?? 10_000),
      setInterval(() => void this.postStatus(), 60_000),
    );
    const inf = new Informer<Pod>({
      client: this.o.client,
      path: "/api/v1/pods",
      fieldSelector: `spec.nodeName=${this.o.node.name}`,
      name: `kubelet-${this.o.node.name}`,
      logger: this.o.log,
    });
    inf
      .on("add", (p) => this.sync(p))
      .on("update", (p) => this.sync(p))
      .on("delete", (p) => this.gone(p));
    this.informer = inf;
    inf.start();
    await inf.waitSynced();
    if (this.o.proxyClusterCIDRs) {
      this.proxy = new KubeProxy({
        client: this.o.client,
        nodeNs: this.o.nodeNs,
        clusterCIDRs: this.o.proxyClusterCIDRs,
        log: this.o.log,
      });
      await this.proxy.start();
    }
  }

  /** Sandboxes of a previous run of this kubelet (it died without stopping its pods). */
  private async sweep(): Promise<void> {
    const prefix = `${this.ctx.prefix}p`;
    for (const ns of (await listNetns()).filter((n) => n.startsWith(prefix)))
      await removeSandbox(ns, this.o.nodeNs);
  }

  private async register(): Promise<void> {
    try {
      await this.o.client.create("/api/v1/nodes", nodeObject(this.o.node));
    } catch (e) {
      if (!(e instanceof KubeApiError && e.status === 409)) throw e;
      const { metadata } = nodeObject(this.o.node) as { metadata: { labels: Record<string, string> } };
      await this.o.client.patch(
        `/api/v1/nodes/${this.o.node.name}`,
        { metadata: { labels: metadata.labels } },
        "merge",
      );
    }
    this.readySince = nowSeconds();
    await this.postStatus();
  }

  /**
   * Write the Node's status (every minute; the Lease is the heartbeat). A JSON merge patch, not a
   * strategic one: NodeAddress merges by `type`, so a dual-stack node's two InternalIPs collided and
   * every update after the first was refused ("status.addresses[1]: Duplicate value"). Returns
   * whether the API server took it.
   */
  async postStatus(): Promise<boolean> {
    return await this.o.client
      .patch(`/api/v1/nodes/${this.o.node.name}/status`, nodeStatus(this.o.node, this.readySince), "merge")
      .then(() => true)
      .catch((e: unknown) => {
        this.o.log.warn({ err: (e as Error).message }, "node status update failed");
        return false;
      });
  }

  private async renewLease(): Promise<void> {
    const name = this.o.node.name;
    await this.o.client
      .apply(`${LEASES}/${name}`, leaseObject(name), "kosmos-lab-kubelet")
      .catch((e: unknown) => this.o.log.warn({ err: (e as Error).message }, "lease renewal failed"));
  }

  private sync(p: Pod): void {
    const uid = p.metadata.uid!;
    const w = this.workers.get(uid);
    if (w) {
      w.update(p);
      if (p.metadata.deletionTimestamp) void this.finish(w, p.metadata.deletionGracePeriodSeconds, true);
      return;
    }
    const phase = p.status?.phase;
    if (p.metadata.deletionTimestamp === undefined && (phase === "Succeeded" || phase === "Failed")) return;
    const nw = new PodWorker(this.ctx, p);
    this.workers.set(uid, nw);
    void nw
      .start()
      .catch((e: unknown) =>
        this.o.log.error({ pod: nw.name, err: (e as Error).message }, "pod start failed"),
      );
    if (p.metadata.deletionTimestamp) void this.finish(nw, p.metadata.deletionGracePeriodSeconds, true);
  }

  /** The pod object is gone (deleted by someone else with grace 0): stop what runs at once. */
  private gone(p: Pod): void {
    const w = this.workers.get(p.metadata.uid!);
    if (w) void this.finish(w, 0, false);
  }

  private async finish(w: PodWorker, grace: number | undefined, finalize: boolean): Promise<void> {
    await w.terminate(grace, finalize);
    this.workers.delete(w.uid);
  }

  /** Stop the kubelet; `stopPods`: stop its pods too (lab down), else they are left as a crash leaves them. */
  async stop(o: { stopPods?: boolean } = {}): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.informer?.stop();
    await this.proxy?.stop();
    this.api?.stop();
    if (o.stopPods) await this.proxy?.remove();
    if (o.stopPods) await Promise.all([...this.workers.values()].map((w) => w.terminate(0, false)));
    else for (const w of this.workers.values()) w.abandon();
  }

  get pods(): number {
    return this.workers.size;
  }

  /** Current status: for `lab status` and /metrics. */
  summary(): { node: string; pods: string[] } {
    return { node: this.o.node.name, pods: [...this.workers.values()].map((w) => w.name) };
  }
}
