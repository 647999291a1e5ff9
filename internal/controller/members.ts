/**
 * The member clusters the controller watches: per Cluster, a client from its kubeconfig (a Secret or
 * the inline upstream field) and an informer on its Nodes. A connection is rebuilt only when the
 * kubeconfig changes; a kubeconfig that is missing, malformed or unreachable is reported (see
 * `MemberProblem`) instead of crashing or spinning.
 */
import { Informer, isNotFound, KubeClient, type KubeObject, kubeConfigFromYaml } from "../kube/index.ts";
import type { Logger } from "../observability/index.ts";
import type { MemberNode } from "./mapping.ts";
import type { ClusterObject } from "./types.ts";

export type NodeObject = KubeObject & MemberNode;

export interface Member {
  name: string;
  /** The kubeconfig YAML the connection was made from. */
  source: string;
  client: KubeClient;
  nodes: Informer<NodeObject>;
  /** The service CIDR learned from the Service API's error (cached: it costs a create). */
  serviceProbe?: string[];
}

/** Why a member cannot be watched: a condition reason and a message for the Cluster's status. */
export interface MemberProblem {
  reason: "NoKubeconfig" | "InvalidKubeconfig";
  message: string;
}

type Got = { yaml: string } | MemberProblem;

/** A member's kubeconfig YAML: from its Secret (kubeconfigSecretRef) or the inline upstream field. */
export async function memberKubeconfig(host: KubeClient, c: ClusterObject, namespace: string): Promise<Got> {
  const ref = c.spec.kubeconfigSecretRef;
  if (ref) {
    const ns = ref.namespace ?? namespace;
    const key = ref.key ?? "kubeconfig";
    try {
      const s = await host.get<{ data?: Record<string, string> }>(
        `/api/v1/namespaces/${ns}/secrets/${encodeURIComponent(ref.name)}`,
      );
      const data = s.data?.[key];
      if (!data) return { reason: "NoKubeconfig", message: `Secret ${ns}/${ref.name} has no key ${key}` };
      return { yaml: Buffer.from(data, "base64").toString("utf8") };
    } catch (e) {
      if (isNotFound(e)) return { reason: "NoKubeconfig", message: `Secret ${ns}/${ref.name} not found` };
      throw e;
    }
  }
  if (c.spec.kubeconfig) return { yaml: Buffer.from(c.spec.kubeconfig, "base64").toString("utf8") };
  return { reason: "NoKubeconfig", message: "no kubeconfig (spec.kubeconfigSecretRef or spec.kubeconfig)" };
}

export class Members {
  private readonly members = new Map<string, Member>();

  constructor(
    private readonly host: KubeClient,
    private readonly o: {
      namespace: string;
      logger: Logger;
      onNodes: (cluster: string) => void;
      minBackoffMs?: number;
      maxBackoffMs?: number;
    },
  ) {}

  get(name: string): Member | undefined {
    return this.members.get(name);
  }

  names(): string[] {
    return [...this.members.keys()];
  }

  /** The member's connection, (re)made when its kubeconfig changed; a problem when there is none. */
  async ensure(c: ClusterObject): Promise<Member | MemberProblem> {
    const name = c.metadata.name;
    const got = await memberKubeconfig(this.host, c, this.o.namespace);
    if (!("yaml" in got)) {
      await this.stop(name);
      return got;
    }
    const existing = this.members.get(name);
    if (existing && existing.source === got.yaml) return existing;
    await this.stop(name);
    let client: KubeClient;
    try {
      client = new KubeClient(kubeConfigFromYaml(got.yaml));
    } catch (e) {
      return {
        reason: "InvalidKubeconfig",
        message: `the kubeconfig cannot be used: ${(e as Error).message}`,
      };
    }
    const nodes = new Informer<NodeObject>({
      client,
      path: "/api/v1/nodes",
      name: `nodes@${name}`,
      logger: this.o.logger,
      minBackoffMs: this.o.minBackoffMs,
      maxBackoffMs: this.o.maxBackoffMs,
    });
    const changed = (): void => this.o.onNodes(name);
    // Heartbeats rewrite a Node's status every few seconds: only what ClusterNodes are made of counts.
    const relevant = (n: NodeObject, old?: NodeObject): void => {
      if (!old || nodeShape(n) !== nodeShape(old)) changed();
    };
    nodes.on("add", changed).on("update", relevant).on("delete", changed);
    nodes.onHealth(changed); // unreachable ↔ back: the Cluster's status says so
    nodes.start();
    const m: Member = { name, source: got.yaml, client, nodes };
    this.members.set(name, m);
    this.o.logger.info({ cluster: name, server: client.server.origin }, "watching member cluster");
    return m;
  }

  async stop(name: string): Promise<void> {
    const m = this.members.get(name);
    this.members.delete(name);
    if (!m) return;
    await m.nodes.stop();
    m.client.close();
  }

  async stopAll(): Promise<void> {
    for (const n of this.names()) await this.stop(n);
  }
}

/** The parts of a Node a ClusterNode is derived from. */
export function nodeShape(n: NodeObject): string {
  return JSON.stringify([
    n.metadata.labels ?? {},
    n.metadata.annotations ?? {},
    n.spec?.podCIDR,
    n.spec?.podCIDRs,
    n.status?.addresses,
  ]);
}
