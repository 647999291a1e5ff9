/** Waiting for Kosmos' workloads to roll out (`kubectl rollout status` semantics), with a progress bar. */
import { KosmosError } from "../errors/index.ts";
import type { V1DaemonSet, V1Deployment } from "@kubernetes/client-node";
import { SingleBar } from "cli-progress";
import { isNotFound, type KubeClient } from "../kube/index.ts";
import { KOSMOS_NS } from "./k8s-objects.ts";

export interface Rollout {
  what: string;
  desired: number;
  /** Pods counted as done (available controllers; scheduled-and-updated or ready agents). */
  done: number;
  complete: boolean;
  /** Why it cannot complete (e.g. ProgressDeadlineExceeded); set = give up. */
  failed?: string;
}

/** kubectl rollout status semantics for a Deployment (pure). */
export function deploymentRollout(d: V1Deployment | undefined): Rollout {
  const what = `deployment/${d?.metadata?.name ?? "?"}`;
  if (!d) return { what, desired: 1, done: 0, complete: false };
  const desired = d.spec?.replicas ?? 1;
  const st = d.status ?? {};
  const observed = (st.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1);
  const updated = st.updatedReplicas ?? 0;
  const available = Math.min(st.availableReplicas ?? 0, updated);
  const stuck = (st.conditions ?? []).find(
    (c) => c.type === "Progressing" && c.reason === "ProgressDeadlineExceeded",
  );
  return {
    what,
    desired,
    done: observed ? available : 0,
    complete: observed && updated >= desired && (st.replicas ?? 0) <= updated && available >= updated,
    ...(stuck ? { failed: `${what}: ${stuck.message ?? "progress deadline exceeded"}` } : {}),
  };
}

/** DaemonSet rollout (pure): pods of the current template on every node; with `ready`, also available. */
export function daemonSetRollout(ds: V1DaemonSet | undefined, wait: "scheduled" | "ready"): Rollout {
  const what = `daemonset/${ds?.metadata?.name ?? "?"}`;
  if (!ds?.status) return { what, desired: 0, done: 0, complete: false };
  const st = ds.status;
  const observed = (st.observedGeneration ?? 0) >= (ds.metadata?.generation ?? 1);
  const desired = st.desiredNumberScheduled ?? 0;
  const updated = st.updatedNumberScheduled ?? 0;
  const done = wait === "ready" ? Math.min(updated, st.numberAvailable ?? 0) : updated;
  return { what, desired, done: observed ? done : 0, complete: observed && done >= desired };
}

export class RolloutTimeoutError extends KosmosError<"KOSMOS_ROLLOUT_TIMEOUT"> {
  constructor(message: string, hint: string) {
    super("KOSMOS_ROLLOUT_TIMEOUT", message, hint);
  }
}

/** Wait for the controller Deployment and the agent DaemonSet; `onProgress` after every look. */
export async function waitRollout(
  client: KubeClient,
  o: {
    timeoutMs: number;
    agents: "scheduled" | "ready";
    /** Also wait for the controller Deployment (default true; false on member clusters). */
    controller?: boolean;
    intervalMs?: number;
    onProgress?: (r: Rollout[]) => void;
  },
): Promise<Rollout[]> {
  const deadline = Date.now() + o.timeoutMs;
  const read = async <T>(path: string): Promise<T | undefined> => {
    try {
      return await client.get<T>(`/apis/apps/v1/namespaces/${KOSMOS_NS}/${path}`);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  };
  for (;;) {
    const withController = o.controller !== false;
    const d = withController ? await read<V1Deployment>("deployments/kosmos-controller") : undefined;
    const ds = await read<V1DaemonSet>("daemonsets/kosmos-agent");
    const agentRollout = daemonSetRollout(ds, o.agents);
    agentRollout.what = "daemonset/kosmos-agent";
    const rs = withController
      ? [{ ...deploymentRollout(d), what: "deployment/kosmos-controller" }, agentRollout]
      : [agentRollout];
    o.onProgress?.(rs);
    const failed = rs.find((r) => r.failed);
    if (failed)
      throw new RolloutTimeoutError(
        `rollout failed: ${failed.failed}`,
        "kubectl -n kosmos-system describe deployment kosmos-controller",
      );
    if (rs.every((r) => r.complete)) return rs;
    if (Date.now() >= deadline) {
      const what = rs.map((r) => `${r.what} ${r.done}/${r.desired}${r.complete ? " done" : ""}`).join(", ");
      throw new RolloutTimeoutError(
        `timed out after ${Math.round(o.timeoutMs / 1000)}s waiting for the rollout: ${what}`,
        "kubectl -n kosmos-system get pods -o wide; kubectl -n kosmos-system describe pods (image pull? node selector? agent logs?)",
      );
    }
    await Bun.sleep(Math.min(o.intervalMs ?? 1000, Math.max(0, deadline - Date.now())));
  }
}

export async function waitWithBar(
  client: KubeClient,
  o: { timeoutMs: number; agents: "scheduled" | "ready"; controller?: boolean },
): Promise<void> {
  const bar = new SingleBar(
    {
      format: "rollout {bar} {value}/{total} pods | {detail}",
      hideCursor: true,
      noTTYOutput: true,
      notTTYSchedule: 2000,
    },
    undefined,
  );
  bar.start(1, 0, { detail: "" });
  try {
    await waitRollout(client, {
      ...o,
      onProgress: (rs) => {
        bar.setTotal(
          Math.max(
            1,
            rs.reduce((a, r) => a + r.desired, 0),
          ),
        );
        bar.update(
          rs.reduce((a, r) => a + Math.min(r.done, r.desired), 0),
          { detail: rs.map((r) => `${r.what.split("/")[1]} ${r.done}/${r.desired}`).join(", ") },
        );
      },
    });
  } finally {
    bar.stop();
  }
}
