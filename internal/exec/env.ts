import type { Context } from "hono";

/** What the exec routes read from the app: the principal set by the auth middleware, the client address. */
export type ExecEnv = {
  Bindings: { remoteAddress?: string; transport?: string };
  Variables: { principal: string };
};

export function sessionInfo(
  c: Context<ExecEnv>,
  endpoint: string,
): { principal: string; endpoint: string; remote: string } {
  return {
    principal: c.get("principal") ?? "anonymous",
    endpoint,
    remote: (c.env as ExecEnv["Bindings"] | undefined)?.remoteAddress ?? "unknown",
  };
}

export function tooMany(c: Context<ExecEnv>, max: number): Response {
  return c.json(
    {
      code: "TOO_MANY_SESSIONS",
      message: `session limit reached (${max} concurrent)`,
      hint: "retry later or raise limits.maxSessions",
    },
    429,
    { "Retry-After": "1" },
  );
}
