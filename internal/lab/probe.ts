/**
 * Connectivity checks inside a lab: from pod namespaces to pods and services of other clusters,
 * with ping (ICMP) and TCP (the pods' echo servers answer their own id).
 */
import type { LabPlan, LabPodPlan, LabServicePlan } from "./plan.ts";
import { LAB_ECHO_PORT } from "./plan.ts";
import { sh } from "./sh.ts";

export type ProbeProto = "icmp" | "tcp";

export interface ProbeTarget {
  /** pod id or `svc/<cluster>` */
  id: string;
  cluster: string;
  ip: string;
  family: 4 | 6;
  kind: "pod" | "service";
  /** For pods: the id the echo server answers with. */
  expect?: string;
}

export interface ProbeResult {
  src: string;
  srcCluster: string;
  dst: string;
  dstCluster: string;
  ip: string;
  family: 4 | 6;
  proto: ProbeProto;
  ok: boolean;
  detail: string;
  ms: number;
}

function podTargets(pod: LabPodPlan, fromCluster: string): ProbeTarget[] {
  const out: ProbeTarget[] = [];
  const cross = pod.cluster !== fromCluster;
  const v4 = cross && pod.globalIPv4 ? pod.globalIPv4 : pod.ipv4;
  if (v4) out.push({ id: pod.id, cluster: pod.cluster, ip: v4, family: 4, kind: "pod", expect: pod.id });
  if (pod.ipv6) out.push({ id: pod.id, cluster: pod.cluster, ip: pod.ipv6, family: 6, kind: "pod", expect: pod.id });
  return out;
}

function serviceTargets(svc: LabServicePlan): ProbeTarget[] {
  const out: ProbeTarget[] = [];
  if (svc.ipv4) out.push({ id: `svc/${svc.cluster}`, cluster: svc.cluster, ip: svc.ipv4, family: 4, kind: "service" });
  if (svc.ipv6) out.push({ id: `svc/${svc.cluster}`, cluster: svc.cluster, ip: svc.ipv6, family: 6, kind: "service" });
  return out;
}

export interface MatrixOptions {
  /** Only probe across clusters (default true). */
  crossClusterOnly?: boolean;
  protos?: ProbeProto[];
  families?: Array<4 | 6>;
  includeServices?: boolean;
  concurrency?: number;
  /** Restrict sources/destinations to these clusters. */
  srcClusters?: string[];
  dstClusters?: string[];
}

/** Every (source pod, target, protocol) the lab's design says must work. */
export function expectedProbes(plan: LabPlan, opts: MatrixOptions = {}): Array<{ src: LabPodPlan; dst: ProbeTarget; proto: ProbeProto }> {
  const pods = plan.nodes.flatMap((n) => n.pods);
  const protos = opts.protos ?? ["icmp", "tcp"];
  const fams = opts.families ?? [4, 6];
  const out: Array<{ src: LabPodPlan; dst: ProbeTarget; proto: ProbeProto }> = [];
  for (const src of pods) {
    if (opts.srcClusters && !opts.srcClusters.includes(src.cluster)) continue;
    const targets: ProbeTarget[] = [];
    for (const dst of pods) {
      if (dst.id === src.id) continue;
      if ((opts.crossClusterOnly ?? true) && dst.cluster === src.cluster) continue;
      targets.push(...podTargets(dst, src.cluster));
    }
    if (opts.includeServices ?? true) {
      for (const svc of plan.services) {
        if ((opts.crossClusterOnly ?? true) && svc.cluster === src.cluster) continue;
        if (svc.backends4.length + svc.backends6.length === 0) continue;
        targets.push(...serviceTargets(svc));
      }
    }
    for (const t of targets) {
      if (opts.dstClusters && !opts.dstClusters.includes(t.cluster)) continue;
      if (!fams.includes(t.family)) continue;
      // The source needs an address of the family to send from.
      if (t.family === 4 && !src.ipv4) continue;
      if (t.family === 6 && !src.ipv6) continue;
      for (const proto of protos) out.push({ src, dst: t, proto });
    }
  }
  return out;
}

export async function probeOnce(src: LabPodPlan, dst: ProbeTarget, proto: ProbeProto, timeoutSec = 2): Promise<ProbeResult> {
  const t0 = performance.now();
  let ok = false;
  let detail = "";
  if (proto === "icmp") {
    const r = await sh(["ip", "netns", "exec", src.ns, "ping", `-${dst.family}`, "-c1", "-W", String(timeoutSec), "-q", dst.ip], {
      allowFail: true,
    });
    ok = r.code === 0;
    const m = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
    detail = ok ? `rtt ${m?.[1] ?? "?"} ms` : "no reply";
  } else {
    const addr = dst.family === 6 ? `TCP6:[${dst.ip}]:${LAB_ECHO_PORT}` : `TCP4:${dst.ip}:${LAB_ECHO_PORT}`;
    const r = await sh(["ip", "netns", "exec", src.ns, "socat", `-T${timeoutSec}`, "-", `${addr},connect-timeout=${timeoutSec}`], {
      allowFail: true,
      input: "",
    });
    const answer = r.stdout.trim();
    if (dst.kind === "pod") ok = r.code === 0 && answer === dst.expect;
    else ok = r.code === 0 && answer.startsWith(`${dst.cluster}-`);
    detail = ok ? `answered ${answer}` : r.stderr.trim().split("\n").pop()?.replace(/^.*E /, "") || `answered "${answer}"`;
  }
  return {
    src: src.id,
    srcCluster: src.cluster,
    dst: dst.id,
    dstCluster: dst.cluster,
    ip: dst.ip,
    family: dst.family,
    proto,
    ok,
    detail,
    ms: Math.round(performance.now() - t0),
  };
}

/** Run probes with bounded concurrency; `onResult` for progress. */
export async function runProbes(
  probes: Array<{ src: LabPodPlan; dst: ProbeTarget; proto: ProbeProto }>,
  opts: { concurrency?: number; timeoutSec?: number; onResult?: (r: ProbeResult, done: number) => void } = {},
): Promise<ProbeResult[]> {
  const results: ProbeResult[] = new Array(probes.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < probes.length) {
      const i = next++;
      const p = probes[i];
      if (!p) continue;
      const r = await probeOnce(p.src, p.dst, p.proto, opts.timeoutSec ?? 2);
      results[i] = r;
      opts.onResult?.(r, ++done);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 8) }, worker));
  return results;
}

export async function connectivityMatrix(plan: LabPlan, opts: MatrixOptions & { onResult?: (r: ProbeResult, done: number, total: number) => void } = {}) {
  const probes = expectedProbes(plan, opts);
  return runProbes(probes, {
    concurrency: opts.concurrency,
    onResult: (r, d) => opts.onResult?.(r, d, probes.length),
  });
}
