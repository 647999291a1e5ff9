/**
 * Authorization of the kubelet API, as a real kubelet with `--authorization-mode=Webhook` does it: the
 * client certificate's CN is the user and its O fields the groups; each request is a
 * SubjectAccessReview against the root API server for `nodes/<subresource>` of the virtual node,
 * with the verb from the HTTP method. Path → subresource is the kubelet's: /stats → stats, /metrics →
 * metrics, /logs → log, /spec → spec, everything else (containerLogs, exec, run, attach,
 * portForward) → proxy. Answers are cached as the kubelet does (allowed 5 min, denied 30 s).
 */
import type { KubeClient } from "../kube/index.ts";

export interface KubeletUser {
  name: string;
  groups: string[];
}

export interface KubeletAttributes {
  verb: string;
  resource: "nodes";
  subresource: string;
  name: string;
}

/** The kubelet's mapping of a request to node attributes (pure). */
export function kubeletAttributes(method: string, path: string, node: string): KubeletAttributes {
  const verb =
    { GET: "get", HEAD: "get", POST: "create", PUT: "update", PATCH: "patch", DELETE: "delete" }[
      method.toUpperCase()
    ] ?? "get";
  const p = path.split("?")[0] ?? "/";
  const sub = (["stats", "metrics", "logs", "spec", "checkpoint"] as const).find(
    (s) => p === `/${s}` || p.startsWith(`/${s}/`),
  );
  const subresource = sub === "logs" ? "log" : (sub ?? "proxy");
  return { verb, resource: "nodes", subresource, name: node };
}

/** The user of a verified client certificate (CN, O), as the API server reads it. */
export function userOfCert(subject: Record<string, string | string[]> | undefined): KubeletUser | undefined {
  const cn = subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  if (!name) return undefined;
  const o = subject?.O;
  return { name, groups: [...(o === undefined ? [] : Array.isArray(o) ? o : [o]), "system:authenticated"] };
}

export type Authorizer = (
  u: KubeletUser,
  a: KubeletAttributes,
) => Promise<{ allowed: boolean; reason: string }>;

/** SubjectAccessReviews against the root API server, cached (allowed 5 min, denied 30 s). */
export function webhookAuthorizer(root: KubeClient, now: () => number = Date.now): Authorizer {
  const cache = new Map<string, { allowed: boolean; reason: string; until: number }>();
  return async (u, a) => {
    const key = JSON.stringify([u.name, u.groups, a]);
    const hit = cache.get(key);
    if (hit && hit.until > now()) return hit;
    const r = await root.create<{
      status?: { allowed?: boolean; reason?: string; evaluationError?: string };
    }>("/apis/authorization.k8s.io/v1/subjectaccessreviews", {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SubjectAccessReview",
      spec: { user: u.name, groups: u.groups, resourceAttributes: a },
    });
    const allowed = r.status?.allowed === true;
    const out = {
      allowed,
      reason: r.status?.reason ?? r.status?.evaluationError ?? "",
      until: now() + (allowed ? 300_000 : 30_000),
    };
    if (cache.size > 10_000) cache.clear();
    cache.set(key, out);
    return out;
  };
}

/** The kubelet's 403 text. */
export const forbiddenText = (u: KubeletUser, a: KubeletAttributes): string =>
  `Forbidden (user=${u.name}, verb=${a.verb}, resource=${a.resource}, subresource=${a.subresource})`;
