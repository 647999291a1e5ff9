/** Kubernetes Events on root pods, each (pod, reason, message) sent once. */
import { setTimeout as sleep } from "node:timers/promises";
import { type KubeClient, objectKey } from "../kube/index.ts";
import type { Logger } from "../observability/index.ts";
import type { PodEnv } from "./pods.ts";
import type { PodObject } from "./types.ts";

export function eventRecorder(root: KubeClient, log: Logger): PodEnv["event"] {
  const sent = new Set<string>();
  return (p: PodObject, type: "Normal" | "Warning", reason: string, message: string): void => {
    const k = `${p.metadata.uid}/${reason}/${message}`;
    if (sent.has(k)) return;
    sent.add(k);
    if (sent.size > 10_000) sent.clear();
    const t = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    log.info({ pod: objectKey(p), reason, message }, "event");
    // Sent once, so a failed write is retried here (as client-go's event broadcaster does): the
    // reconcile that reported it may never run again (an unconvertible pod is not retried).
    void withRetries(() =>
      root.create(`/api/v1/namespaces/${p.metadata.namespace}/events`, {
        apiVersion: "v1",
        kind: "Event",
        metadata: { generateName: `${p.metadata.name}.`, namespace: p.metadata.namespace },
        involvedObject: {
          apiVersion: "v1",
          kind: "Pod",
          name: p.metadata.name,
          namespace: p.metadata.namespace,
          uid: p.metadata.uid,
        },
        reason,
        message,
        type,
        source: { component: "kosmos-clustertree" },
        firstTimestamp: t,
        lastTimestamp: t,
        count: 1,
      }),
    ).catch((e) =>
      log.warn({ err: (e as Error).message, pod: objectKey(p), reason }, "could not record an event"),
    );
  };
}

/** `fn` tried up to 6 times, 0.5 s → 8 s apart (about 15 s in all). */
async function withRetries<T>(fn: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (i >= 5) throw e;
      await sleep(500 * 2 ** i);
    }
  }
}

/** A Kubernetes Event on a (virtual) Node, as a kubelet records NodeNotReady and the like. */
export async function nodeEvent(
  root: KubeClient,
  log: Logger,
  node: { name: string; uid?: string },
  type: "Normal" | "Warning",
  reason: string,
  message: string,
): Promise<void> {
  const t = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  log.info({ node: node.name, reason, message }, "event");
  await root
    .create("/api/v1/namespaces/default/events", {
      apiVersion: "v1",
      kind: "Event",
      metadata: { generateName: `${node.name}.`, namespace: "default" },
      involvedObject: { apiVersion: "v1", kind: "Node", name: node.name, uid: node.uid },
      reason,
      message,
      type,
      source: { component: "kosmos-clustertree", host: node.name },
      firstTimestamp: t,
      lastTimestamp: t,
      count: 1,
    })
    .catch((e) => log.warn({ err: (e as Error).message }, "could not record an event"));
}
