/**
 * The lab's kube-proxy stand-in for one node (side effects): watches its cluster's Services and
 * EndpointSlices and keeps the node namespace's `inet kosmoslab-proxy` table equal to what
 * proxyrules.ts renders from them (one atomic `nft -f` per change burst; unchanged rules are not
 * rewritten). Stopping it leaves the table (a crashed kube-proxy leaves its rules too); `remove()`
 * deletes it.
 */
import { Informer, type KubeClient } from "../kube/index.ts";
import { inNs } from "../lab/index.ts";
import type { Logger } from "../observability/index.ts";
import { type EndpointSliceLike, PROXY_TABLE, renderProxy, type ServiceLike } from "./proxyrules.ts";

export class KubeProxy {
  private readonly services: Informer<ServiceLike & { metadata: { name: string } }>;
  private readonly slices: Informer<EndpointSliceLike & { metadata: { name: string } }>;
  private applied = "";
  private timer: ReturnType<typeof setTimeout> | undefined;
  private applying: Promise<void> = Promise.resolve();
  /** Rule sets written so far (tests and /metrics). */
  syncs = 0;

  constructor(
    private readonly o: { client: KubeClient; nodeNs: string; clusterCIDRs: string[]; log: Logger },
  ) {
    this.services = new Informer({ client: o.client, path: "/api/v1/services", name: "proxy-services" });
    this.slices = new Informer({
      client: o.client,
      path: "/apis/discovery.k8s.io/v1/endpointslices",
      name: "proxy-endpointslices",
    });
    for (const inf of [this.services, this.slices] as Informer<{ metadata: { name: string } }>[]) {
      inf
        .on("add", () => this.kick())
        .on("update", () => this.kick())
        .on("delete", () => this.kick());
    }
  }

  async start(): Promise<void> {
    this.services.start();
    this.slices.start();
    await Promise.all([this.services.waitSynced(), this.slices.waitSynced()]);
    await this.sync();
  }

  private kick(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.applying = this.applying.then(() => this.sync());
    }, 50);
  }

  /** Resolves once the rules written reflect every change seen so far. */
  async settled(): Promise<void> {
    await this.applying;
  }

  private async sync(): Promise<void> {
    const text = renderProxy(this.services.list(), this.slices.list(), this.o.clusterCIDRs);
    if (text === this.applied) return;
    try {
      await inNs(this.o.nodeNs, ["nft", "-f", "-"], { input: text });
      this.applied = text;
      this.syncs++;
    } catch (e) {
      this.o.log.error({ err: (e as Error).message }, "kube-proxy rules not applied");
    }
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    await Promise.all([this.services.stop(), this.slices.stop()]);
    await this.applying;
  }

  async remove(): Promise<void> {
    await inNs(this.o.nodeNs, ["nft", "delete", "table", "inet", PROXY_TABLE], { allowFail: true });
  }
}
