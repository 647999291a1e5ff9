import { existsSync } from "node:fs";
/** Loading kubeconfigs (client-node's KubeConfig: files, in-cluster service accounts, exec plugins). */
import { KubeConfig } from "@kubernetes/client-node";
import { KubeClient } from "./rest.ts";

/** A KubeConfig loaded from a kubeconfig YAML string. */
export function kubeConfigFromYaml(yaml: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(yaml);
  return kc;
}

/**
 * A KubeConfig from a file, or the default chain: kubectl's ($KUBECONFIG, ~/.kube/config, then
 * in-cluster), or with `inClusterFirst` controller-runtime's ($KUBECONFIG, in-cluster, ~/.kube/config)
 * — what a process in a pod wants when the node's filesystem has a ~/.kube/config (the lab's pods).
 */
export function loadKubeConfig(file?: string, o: { inClusterFirst?: boolean } = {}): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else if (o.inClusterFirst && !process.env.KUBECONFIG && inCluster()) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

/** In a pod: the kubelet's KUBERNETES_SERVICE_HOST and a mounted ServiceAccount token. */
function inCluster(): boolean {
  return (
    Boolean(process.env.KUBERNETES_SERVICE_HOST) &&
    existsSync("/var/run/secrets/kubernetes.io/serviceaccount/token")
  );
}

/** A raw client from a kubeconfig YAML string, a loaded KubeConfig or a file path. */
export function kubeClient(from: { yaml: string } | { file?: string } | KubeConfig): KubeClient {
  if (from instanceof KubeConfig) return new KubeClient(from);
  if ("yaml" in from) return new KubeClient(kubeConfigFromYaml(from.yaml));
  return new KubeClient(loadKubeConfig(from.file));
}
