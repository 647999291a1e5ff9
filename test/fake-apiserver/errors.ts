/** Kubernetes `Status` objects, shaped exactly as kube-apiserver returns them. */

export interface StatusCause {
  reason?: string;
  message: string;
  field?: string;
}

export interface StatusObject {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Failure" | "Success";
  message: string;
  reason: string;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    causes?: StatusCause[];
    retryAfterSeconds?: number;
  };
  code: number;
}

/** An API error that the fake server renders as a Status body with the HTTP code. */
export class ApiError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly details: StatusObject["details"];
  constructor(code: number, reason: string, message: string, details?: StatusObject["details"]) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.reason = reason;
    this.details = details;
  }
  toStatus(): StatusObject {
    const s: StatusObject = {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: this.message,
      reason: this.reason,
      code: this.code,
    };
    if (this.details) s.details = this.details;
    return s;
  }
}

/** "clusters.kosmos.io" or "nodes" (core group has no suffix), as the apiserver names resources. */
export function qualifiedResource(resource: string, group: string): string {
  return group ? `${resource}.${group}` : resource;
}

export const notFound = (resource: string, group: string, _kind: string, name: string): ApiError =>
  new ApiError(404, "NotFound", `${qualifiedResource(resource, group)} "${name}" not found`, {
    name,
    group,
    kind: resource,
  });

export const alreadyExists = (resource: string, group: string, name: string): ApiError =>
  new ApiError(409, "AlreadyExists", `${qualifiedResource(resource, group)} "${name}" already exists`, {
    name,
    group,
    kind: resource,
  });

export const conflict = (resource: string, group: string, name: string): ApiError =>
  new ApiError(
    409,
    "Conflict",
    `Operation cannot be fulfilled on ${qualifiedResource(resource, group)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { name, group, kind: resource },
  );

export const invalid = (kind: string, group: string, name: string, causes: StatusCause[]): ApiError =>
  new ApiError(
    422,
    "Invalid",
    `${group ? `${kind}.${group}` : kind} "${name}" is invalid: ${causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message)).join(", ")}`,
    { name, group, kind, causes },
  );

export const expired = (requested: number, oldest: number): ApiError =>
  new ApiError(410, "Expired", `too old resource version: ${requested} (${oldest})`);

export const badRequest = (message: string): ApiError => new ApiError(400, "BadRequest", message);
