/** Loading kubeconfigs (client-node's KubeConfig: files, in-cluster service accounts, exec plugins). */
import { KubeConfig } from "@kubernetes/client-node";
import { KubeClient } from "./rest.ts";

/** A KubeConfig loaded from a kubeconfig YAML string. */
export function kubeConfigFromYaml(yaml: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(yaml);
  return kc;
}

/** A KubeConfig from a file, or the default chain (in-cluster, then $KUBECONFIG / ~/.kube/config). */
export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}

/** A raw client from a kubeconfig YAML string, a loaded KubeConfig or a file path. */
export function kubeClient(from: { yaml: string } | { file?: string } | KubeConfig): KubeClient {
  if (from instanceof KubeConfig) return new KubeClient(from);
  if ("yaml" in from) return new KubeClient(kubeConfigFromYaml(from.yaml));
  return new KubeClient(loadKubeConfig(from.file));
}
