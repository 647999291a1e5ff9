/**
 * What a pod spec refers to that the kubelet must fetch before planning it (pure): ConfigMaps and
 * Secrets (env, envFrom, volumes, projected sources) and whether it mounts a ServiceAccount token.
 */
import type { PodSpecLike } from "./podplan.ts";

export interface PodRefs {
  configMaps: string[];
  secrets: string[];
  /** Audiences of projected ServiceAccount tokens ("" = the API server's default). */
  tokenAudiences: string[];
}

export function podRefs(spec: PodSpecLike): PodRefs {
  const cms = new Set<string>();
  const secrets = new Set<string>();
  const auds = new Set<string>();
  for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
    for (const f of c.envFrom ?? []) {
      if (f.configMapRef) cms.add(f.configMapRef.name);
      if (f.secretRef) secrets.add(f.secretRef.name);
    }
    for (const e of c.env ?? []) {
      if (e.valueFrom?.configMapKeyRef) cms.add(e.valueFrom.configMapKeyRef.name);
      if (e.valueFrom?.secretKeyRef) secrets.add(e.valueFrom.secretKeyRef.name);
    }
  }
  for (const v of spec.volumes ?? []) {
    if (v.configMap) cms.add(v.configMap.name);
    if (v.secret) secrets.add(v.secret.secretName);
    for (const s of v.projected?.sources ?? []) {
      if (s.configMap) cms.add(s.configMap.name);
      if (s.secret) secrets.add(s.secret.name);
      if (s.serviceAccountToken) auds.add(s.serviceAccountToken.audience ?? "");
    }
  }
  return { configMaps: [...cms], secrets: [...secrets], tokenAudiences: [...auds] };
}
