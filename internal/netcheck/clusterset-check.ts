/**
 * `kosmosctl check -p dns` on clusterset names: from every pod, ask the pod's own resolver for every
 * ServiceImport visible to the pod's cluster (A, and AAAA where the import has IPv6) and compare the
 * ANSWER with what it must be. Expected answers come from the cluster's API server when it answers,
 * else from the replica of the pod's node's agent (the names must keep resolving with the API
 * servers down); the report says which source each cluster's pods were checked against.
 */
import { buildZone, type Zone } from "../dns/index.ts";
import type { KubeClient } from "../kube/index.ts";
import type { MemberState, Topology } from "../topology/index.ts";
import { askResolver, type PodReplies, type PodRun } from "./clusterset-probe.ts";
import {
  type ClustersetName,
  type EndpointSliceLike,
  type ExpectedSource,
  encodeQuery,
  expectedFromApi,
  expectedFromZone,
  hexBytes,
  interpretReply,
  type LookupHop,
  type QType,
  queryTypes,
  type ServiceImportLike,
} from "./clusterset.ts";
import { printfEscape } from "./dns.ts";

/** A pod whose resolver is checked: `execPrefix` enters its network and mount namespaces. */
export interface ResolverPod {
  id: string;
  cluster: string;
  /** The pod's node (its agent serves the pod's resolver in the lab; an inventory's exec goes to it). */
  node: string;
  execPrefix: string[];
  /** The address to ask; unset: the first nameserver of the pod's own /etc/resolv.conf. */
  resolver?: string;
}

/** How to run the probe script inside a pod (on this machine, or through its node's agent). */
export type PodExecutor = (pod: ResolverPod) => PodRun;

export type Expected =
  | {
      ok: true;
      source: ExpectedSource;
      names: ClustersetName[];
      /** With an API source: the node's replica (as its DNS serves it, and without its SWIM view). */
      replica?: ReplicaNames;
    }
  | { ok: false; error: string };

export interface LookupResult {
  pod: string;
  cluster: string;
  node: string;
  resolver: string;
  name: string;
  type: QType;
  headless: boolean;
  want: string[];
  got: string[];
  ok: boolean;
  hop?: LookupHop;
  detail: string;
  /** Tries (when more than one). */
  attempts?: number;
}

export interface ClustersetReport {
  version: 1;
  kind: "clusterset-dns";
  inventory: string;
  startedAt: string;
  durationMs: number;
  pods: number;
  lookups: number;
  passed: number;
  failed: number;
  /** `<cluster>` or `<cluster>/<node>` → where its expected answers came from. */
  sources: Record<string, string>;
  /** Pods that could not be checked at all (no resolver, script failed, no expected answers). */
  podErrors: Record<string, string>;
  results: LookupResult[];
}

export interface ClustersetOptions {
  timeoutSec: number;
  /** Failed lookups are asked again this many times (the agent's zone follows the API in ~1 s). */
  retries: number;
  /** Pods checked at once. */
  concurrency: number;
}

export function describeSource(s: ExpectedSource): string {
  return s.kind === "api"
    ? `API server of ${s.cluster}`
    : `replica of ${s.node}'s agent (API server of ${s.cluster}: ${s.why})`;
}

interface Pending {
  key: string;
  id: number;
  name: ClustersetName;
  type: QType;
  stale?: string[];
  withDeadNodes?: string[];
}

function lookupsFor(e: Extract<Expected, { ok: true }>): Pending[] {
  const staleOf = new Map((e.replica?.live ?? []).map((n) => [n.name, n]));
  const allOf = new Map((e.replica?.all ?? []).map((n) => [n.name, n]));
  const out: Pending[] = [];
  for (const n of e.names) {
    for (const type of queryTypes(n)) {
      out.push({
        key: String(out.length),
        id: 1 + Math.floor(Math.random() * 0xfffe),
        name: n,
        type,
        stale: staleOf.get(n.name)?.want[type],
        withDeadNodes: allOf.get(n.name)?.want[type],
      });
    }
  }
  return out;
}

/** Ask one pod's resolver every lookup, trying the failed ones again up to `retries` times. */
async function checkPod(
  pod: ResolverPod,
  e: Extract<Expected, { ok: true }>,
  run: PodRun,
  o: ClustersetOptions,
): Promise<{ results: LookupResult[]; error?: string }> {
  const pending = lookupsFor(e);
  const results = new Map<string, LookupResult>();
  let todo = pending;
  let last: PodReplies | undefined;
  for (let attempt = 1; attempt <= 1 + o.retries && todo.length > 0; attempt++) {
    const queries = todo.map((p) => ({
      key: p.key,
      query: printfEscape(Buffer.from(encodeQuery(p.name.name, p.type, p.id), "hex")),
    }));
    last = await askResolver(run, queries, o.timeoutSec, pod.resolver);
    if (last.error) return { results: [], error: `cannot run the DNS probe in the pod: ${last.error}` };
    if (!last.resolver) return { results: [], error: "its /etc/resolv.conf names no nameserver" };
    for (const p of todo) {
      const r = last.replies.get(p.key);
      const v = interpretReply(
        r?.hex ? hexBytes(r.hex) : undefined,
        r?.detail ?? "no result from the probe",
        {
          id: p.id,
          type: p.type,
          want: p.name.want[p.type],
          stale: p.stale,
          withDeadNodes: p.withDeadNodes,
        },
      );
      results.set(p.key, {
        pod: pod.id,
        cluster: pod.cluster,
        node: pod.node,
        resolver: last.resolver,
        name: p.name.name,
        type: p.type,
        headless: p.name.headless,
        want: p.name.want[p.type],
        got: v.got,
        ok: v.ok,
        ...(v.hop ? { hop: v.hop } : {}),
        detail: v.detail,
        ...(attempt > 1 ? { attempts: attempt } : {}),
      });
    }
    todo = todo.filter((p) => !results.get(p.key)?.ok);
  }
  return { results: pending.map((p) => results.get(p.key)).filter((r): r is LookupResult => !!r) };
}

/** Run the check over `pods`; `expected(cluster, node)` gives each pod's expected answers. */
export async function runClustersetCheck(
  inventory: string,
  pods: ResolverPod[],
  expected: (cluster: string, node: string) => Promise<Expected>,
  exec: PodExecutor,
  o: ClustersetOptions,
): Promise<ClustersetReport> {
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  const results: LookupResult[][] = pods.map(() => []);
  const podErrors: Record<string, string> = {};
  const sources: Record<string, string> = {};
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < pods.length; i = next++) {
      const pod = pods[i] as ResolverPod;
      const e = await expected(pod.cluster, pod.node);
      if (!e.ok) {
        podErrors[pod.id] = e.error;
        continue;
      }
      sources[e.source.kind === "api" ? pod.cluster : `${pod.cluster}/${pod.node}`] = describeSource(
        e.source,
      );
      const r = await checkPod(pod, e, exec(pod), o);
      if (r.error) podErrors[pod.id] = r.error;
      results[i] = r.results;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency, pods.length)) }, worker));
  const flat = results.flat();
  const failed = flat.filter((r) => !r.ok).length;
  return {
    version: 1,
    kind: "clusterset-dns",
    inventory,
    startedAt,
    durationMs: Math.round(performance.now() - t0),
    pods: pods.length,
    lookups: flat.length,
    passed: flat.length - failed,
    failed,
    sources: Object.fromEntries(Object.entries(sources).sort()),
    podErrors,
    results: flat,
  };
}

/** The agent calls the expectations need (AgentExecutor.json). */
export interface AgentJson {
  json<T>(node: string, path: string): Promise<T | undefined>;
}

/** An agent's names: as its DNS serves them (`live`: its SWIM view applied) and without that view. */
export interface ReplicaNames {
  live: ClustersetName[];
  all: ClustersetName[];
}

/** What an agent's DNS serves: its zone, from its /v1/topology and its SWIM view (/v1/state). */
export async function replicaNames(
  agents: AgentJson,
  node: string,
  cluster: string,
): Promise<ReplicaNames | undefined> {
  const [t, st] = await Promise.all([
    agents.json<Topology>(node, "/v1/topology"),
    agents.json<{ members?: Record<string, MemberState> }>(node, "/v1/state"),
  ]);
  if (!t) return undefined;
  const zone: Zone = buildZone(t, cluster, st?.members ?? {});
  return { live: expectedFromZone(zone), all: expectedFromZone(buildZone(t, cluster, {})) };
}

const MCS = "/apis/multicluster.x-k8s.io/v1alpha1/serviceimports";
const SLICES = "/apis/discovery.k8s.io/v1/endpointslices";

/** A cluster's expected names from its API server (throws when it does not answer in `timeoutMs`). */
export async function apiNames(client: KubeClient, timeoutMs = 4000): Promise<ClustersetName[]> {
  const [imports, slices] = await Promise.all([
    client.request<{ items: ServiceImportLike[] }>("GET", MCS, { timeoutMs }),
    client.request<{ items: EndpointSliceLike[] }>("GET", SLICES, {
      timeoutMs,
      query: { labelSelector: "endpointslice.kubernetes.io/managed-by=mcs.kosmos.io" },
    }),
  ]);
  return expectedFromApi(imports.items ?? [], slices.items ?? []);
}

/**
 * Expected answers per (cluster, node), cached: the cluster's API server when `clients` has one and
 * it answers (with the node's replica alongside, to tell a stale answer), else the node's replica.
 * `noClient`: why a cluster has no API client (shown as the reason the replica was used).
 */
export function expectationsFrom(
  clients: Map<string, KubeClient>,
  agents: AgentJson,
  noClient: (cluster: string) => string = () => "none known (network-only lab)",
) {
  const api = new Map<string, Promise<ClustersetName[] | string>>();
  const replica = new Map<string, Promise<ReplicaNames | undefined>>();
  const apiOf = (cluster: string): Promise<ClustersetName[] | string> => {
    let p = api.get(cluster);
    if (!p) {
      const c = clients.get(cluster);
      p = c
        ? apiNames(c).catch((e: Error) => e.message.split("\n")[0] ?? "no answer")
        : Promise.resolve(noClient(cluster));
      api.set(cluster, p);
    }
    return p;
  };
  const replicaOf = (cluster: string, node: string): Promise<ReplicaNames | undefined> => {
    let p = replica.get(node);
    if (!p) {
      p = replicaNames(agents, node, cluster);
      replica.set(node, p);
    }
    return p;
  };
  return async (cluster: string, node: string): Promise<Expected> => {
    const [fromApi, fromReplica] = await Promise.all([apiOf(cluster), replicaOf(cluster, node)]);
    if (typeof fromApi !== "string")
      return { ok: true, source: { kind: "api", cluster }, names: fromApi, replica: fromReplica };
    if (fromReplica)
      return { ok: true, source: { kind: "replica", cluster, node, why: fromApi }, names: fromReplica.live };
    return {
      ok: false,
      error: `no expected answers: the API server of ${cluster} (${fromApi}) and the agent of ${node} do not answer`,
    };
  };
}
