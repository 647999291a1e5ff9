/** Errors of the Kubernetes API, with the server's Status when it sent one. */
import { KosmosError } from "../errors/index.ts";

/** The API server's `Status` object (metav1.Status). */
export interface KubeStatus {
  kind?: "Status";
  status?: "Failure" | "Success";
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    kind?: string;
    causes?: { field?: string; message?: string; reason?: string }[];
  };
}

export class KubeApiError extends KosmosError<"KOSMOS_KUBE_API"> {
  override name = "KubeApiError";
  /** The connection failed (refused, reset, timed out): nothing was answered. */
  readonly unreachable: boolean;

  constructor(
    /** HTTP status; 0 when the request never got an answer. */
    readonly status: number,
    message: string,
    readonly apiStatus?: KubeStatus,
    o: { cause?: unknown; unreachable?: boolean } = {},
  ) {
    super("KOSMOS_KUBE_API", message, kubeHint(status, o.unreachable ?? false), { cause: o.cause });
    this.unreachable = o.unreachable ?? false;
  }

  get reason(): string | undefined {
    return this.apiStatus?.reason;
  }
}

function kubeHint(status: number, unreachable: boolean): string {
  if (unreachable) return "is the API server running and reachable at the kubeconfig's server URL?";
  if (status === 401) return "the credentials were refused: check the kubeconfig's token or certificate";
  if (status === 403)
    return "RBAC refused this: check the ClusterRole bound to this identity (manifests/rbac.yaml)";
  if (status === 409) return "someone changed the object first, or it exists: retry";
  return "see the message from the API server";
}

/** HTTP status of any error from the Kubernetes clients here (raw or client-node), if it has one. */
export function errorStatus(e: unknown): number | undefined {
  if (e instanceof KubeApiError) return e.status;
  if (typeof e !== "object" || e === null) return undefined;
  const o = e as { code?: unknown; statusCode?: unknown };
  if (typeof o.code === "number") return o.code;
  if (typeof o.statusCode === "number") return o.statusCode;
  return undefined;
}

export const isNotFound = (e: unknown): boolean => errorStatus(e) === 404;
export const isConflict = (e: unknown): boolean => errorStatus(e) === 409;
export const isGone = (e: unknown): boolean => errorStatus(e) === 410;
