/**
 * What the lab kubelet will do for one pod (pure): for every container the program (images.ts), its
 * environment (env.ts), its mounts (volume → mountPath), its probes; for the pod its volumes' files
 * (volumes.ts), network (its own namespace, or the node's with hostNetwork), restart policy and grace
 * period. Everything the API server sent that the lab cannot honour is listed in `unsupported`, so the
 * kubelet can say so in an event instead of silently running something else.
 */
import { KosmosError } from "../errors/index.ts";
import type { DnsConfigLike } from "./dns.ts";
import { type EnvFromSpec, type EnvVarSpec, type PodFacts, resolveEnv } from "./env.ts";
import { programFor } from "./images.ts";
import { type PlannedVolume, planVolume, type VolumeLookups, type VolumeSpec } from "./volumes.ts";

export interface ProbeSpec {
  exec?: { command: string[] };
  httpGet?: { path?: string; port: number | string; scheme?: "HTTP" | "HTTPS"; host?: string };
  tcpSocket?: { port: number | string; host?: string };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
  successThreshold?: number;
}

export interface ContainerSpec {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: EnvVarSpec[];
  envFrom?: EnvFromSpec[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
  readinessProbe?: ProbeSpec;
  livenessProbe?: ProbeSpec;
  startupProbe?: ProbeSpec;
}

export interface PodSpecLike {
  containers: ContainerSpec[];
  initContainers?: ContainerSpec[];
  volumes?: VolumeSpec[];
  hostNetwork?: boolean;
  restartPolicy?: "Always" | "OnFailure" | "Never";
  terminationGracePeriodSeconds?: number;
  dnsPolicy?: string;
  dnsConfig?: DnsConfigLike;
}

/** A probe with Kubernetes' defaults filled in and named ports resolved. */
export interface Probe {
  action:
    | { exec: string[] }
    | { http: { scheme: "HTTP" | "HTTPS"; host?: string; port: number; path: string } }
    | { tcp: { host?: string; port: number } };
  initialDelayMs: number;
  periodMs: number;
  timeoutMs: number;
  failureThreshold: number;
  successThreshold: number;
}

export interface ContainerPlan {
  name: string;
  image: string;
  argv: string[];
  env: Record<string, string>;
  workingDir?: string;
  mounts: { volume: string; mountPath: string; readOnly: boolean }[];
  ports: number[];
  readiness?: Probe;
  liveness?: Probe;
}

export interface PodPlan {
  hostNetwork: boolean;
  restartPolicy: "Always" | "OnFailure" | "Never";
  gracePeriodSeconds: number;
  volumes: PlannedVolume[];
  containers: ContainerPlan[];
  /** What the pod asks for that the lab does not do (an event says so). */
  unsupported: string[];
}

/** A pod spec the kubelet cannot plan (its message says which field). */
export class PodPlanError extends KosmosError<"POD_PLAN_INVALID"> {
  override name = "PodPlanError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("POD_PLAN_INVALID", message, "", options);
  }
}

function portNumber(c: ContainerSpec, port: number | string): number {
  if (typeof port === "number") return port;
  const named = c.ports?.find((p) => p.name === port)?.containerPort;
  if (named === undefined)
    throw new PodPlanError(`container ${c.name}: probe port "${port}" is not a declared port`);
  return named;
}

export function planProbe(c: ContainerSpec, p: ProbeSpec | undefined): Probe | undefined {
  if (!p) return undefined;
  let action: Probe["action"];
  if (p.exec) action = { exec: p.exec.command };
  else if (p.httpGet)
    action = {
      http: {
        scheme: p.httpGet.scheme ?? "HTTP",
        host: p.httpGet.host,
        port: portNumber(c, p.httpGet.port),
        path: p.httpGet.path ?? "/",
      },
    };
  else if (p.tcpSocket) action = { tcp: { host: p.tcpSocket.host, port: portNumber(c, p.tcpSocket.port) } };
  else throw new PodPlanError(`container ${c.name}: a probe needs exec, httpGet or tcpSocket`);
  return {
    action,
    initialDelayMs: (p.initialDelaySeconds ?? 0) * 1000,
    periodMs: (p.periodSeconds ?? 10) * 1000,
    timeoutMs: (p.timeoutSeconds ?? 1) * 1000,
    failureThreshold: p.failureThreshold ?? 3,
    successThreshold: p.successThreshold ?? 1,
  };
}

/** Plan a pod. Throws EnvError / MountError / PodPlanError with the field that cannot be honoured. */
export function planPod(spec: PodSpecLike, pod: PodFacts, look: VolumeLookups, bun: string): PodPlan {
  const unsupported: string[] = [];
  if ((spec.initContainers ?? []).length > 0) unsupported.push("initContainers (not run)");
  const volumes = (spec.volumes ?? []).map((v) => planVolume(v, pod, look));
  const names = new Set(volumes.map((v) => v.name));
  const containers = spec.containers.map((c): ContainerPlan => {
    if (c.startupProbe) unsupported.push(`container ${c.name}: startupProbe (treated as started)`);
    for (const m of c.volumeMounts ?? []) {
      if (!names.has(m.name))
        throw new PodPlanError(`container ${c.name}: volumeMount ${m.name} names no volume`);
      if (m.subPath)
        unsupported.push(`container ${c.name}: subPath on ${m.mountPath} (whole volume mounted)`);
    }
    const ports = (c.ports ?? []).filter((p) => (p.protocol ?? "TCP") === "TCP").map((p) => p.containerPort);
    return {
      name: c.name,
      image: c.image,
      argv: programFor({ image: c.image, command: c.command, args: c.args, ports, podName: pod.name, bun }),
      env: Object.fromEntries(resolveEnv(c, pod, look)),
      ...(c.workingDir ? { workingDir: c.workingDir } : {}),
      mounts: (c.volumeMounts ?? []).map((m) => ({
        volume: m.name,
        mountPath: m.mountPath,
        readOnly: m.readOnly ?? false,
      })),
      ports,
      ...(c.readinessProbe ? { readiness: planProbe(c, c.readinessProbe) } : {}),
      ...(c.livenessProbe ? { liveness: planProbe(c, c.livenessProbe) } : {}),
    };
  });
  return {
    hostNetwork: spec.hostNetwork ?? false,
    restartPolicy: spec.restartPolicy ?? "Always",
    gracePeriodSeconds: spec.terminationGracePeriodSeconds ?? 30,
    volumes,
    containers,
    unsupported,
  };
}
