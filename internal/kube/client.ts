/** Small helpers around @kubernetes/client-node. */
import { KubeConfig } from "@kubernetes/client-node";

/** A KubeConfig loaded from a kubeconfig YAML string. */
export function kubeConfigFromYaml(yaml: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(yaml);
  return kc;
}

/** HTTP status code of an error thrown by client-node (ApiException `code`) or by its Watch (`statusCode`). */
export function errorCode(e: unknown): number | undefined {
  if (typeof e !== "object" || e === null) return undefined;
  const o = e as { code?: unknown; statusCode?: unknown };
  if (typeof o.code === "number") return o.code;
  if (typeof o.statusCode === "number") return o.statusCode;
  return undefined;
}
