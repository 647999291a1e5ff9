/**
 * A pod's status from its containers' states, as the kubelet computes it (pure): phase from the
 * restart policy and exit codes, the four standard conditions with stable transition times, pod and
 * host IPs, and one containerStatus per container.
 */

export type ContainerState =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | {
      terminated: {
        exitCode: number;
        reason: string;
        startedAt?: string;
        finishedAt: string;
        signal?: number;
      };
    };

export interface ContainerRuntime {
  name: string;
  image: string;
  state: ContainerState;
  lastState?: ContainerState;
  restartCount: number;
  /** Readiness probe verdict (true without a probe once running). */
  ready: boolean;
  started: boolean;
}

export interface PodCondition {
  type: "PodScheduled" | "Initialized" | "ContainersReady" | "Ready";
  status: "True" | "False";
  reason?: string;
  lastTransitionTime: string;
}

export interface PodStatusInput {
  restartPolicy: "Always" | "OnFailure" | "Never";
  containers: ContainerRuntime[];
  hostIP: string;
  podIPs: string[];
  startTime: string;
  /** The previous status' conditions: an unchanged condition keeps its transition time. */
  previous?: PodCondition[];
  now: string;
}

export type PodPhase = "Pending" | "Running" | "Succeeded" | "Failed";

export function podPhase(restartPolicy: PodStatusInput["restartPolicy"], cs: ContainerRuntime[]): PodPhase {
  const states = cs.map((c) => c.state);
  if (states.some((s) => "running" in s)) return "Running";
  if (states.length > 0 && states.every((s) => "terminated" in s)) {
    const codes = states.map((s) => ("terminated" in s ? s.terminated.exitCode : 0));
    if (codes.every((c) => c === 0)) return restartPolicy === "Always" ? "Running" : "Succeeded";
    return restartPolicy === "Never" ? "Failed" : "Running";
  }
  // Some waiting: Pending until a container has started once (then a restart is still Running).
  return cs.some((c) => c.restartCount > 0) ? "Running" : "Pending";
}

export function podStatus(i: PodStatusInput): Record<string, unknown> {
  const phase = podPhase(i.restartPolicy, i.containers);
  const allReady = i.containers.length > 0 && i.containers.every((c) => "running" in c.state && c.ready);
  const cond = (type: PodCondition["type"], ok: boolean, reason?: string): PodCondition => {
    const status = ok ? "True" : "False";
    const prev = i.previous?.find((p) => p.type === type);
    return {
      type,
      status,
      ...(ok || !reason ? {} : { reason }),
      lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : i.now,
    };
  };
  const done = phase === "Succeeded" || phase === "Failed";
  return {
    phase,
    conditions: [
      cond("Initialized", true),
      cond("Ready", allReady, done ? "PodCompleted" : "ContainersNotReady"),
      cond("ContainersReady", allReady, done ? "PodCompleted" : "ContainersNotReady"),
      cond("PodScheduled", true),
    ],
    hostIP: i.hostIP,
    hostIPs: [{ ip: i.hostIP }],
    ...(i.podIPs.length > 0 ? { podIP: i.podIPs[0], podIPs: i.podIPs.map((ip) => ({ ip })) } : {}),
    startTime: i.startTime,
    containerStatuses: i.containers.map((c) => ({
      name: c.name,
      image: c.image,
      imageID: "",
      containerID: `lab://${c.name}`,
      state: c.state,
      ...(c.lastState ? { lastState: c.lastState } : {}),
      ready: "running" in c.state && c.ready,
      started: c.started,
      restartCount: c.restartCount,
    })),
  };
}

/** Delay before restarting a container (the kubelet's CrashLoopBackOff: 10 s doubling to 5 min). */
export function restartBackoffMs(restartCount: number, baseMs = 10_000, maxMs = 300_000): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, restartCount - 1));
}

/** Whether a container that exited with `exitCode` is started again. */
export function shouldRestart(policy: PodStatusInput["restartPolicy"], exitCode: number): boolean {
  return policy === "Always" || (policy === "OnFailure" && exitCode !== 0);
}
