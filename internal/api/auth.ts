/**
 * Authentication middleware: HTTP Basic (upstream node-agent compat) and bearer tokens, compared in
 * constant time (SHA-256 of both sides, then timingSafeEqual, over every configured credential),
 * with per-client failure rate limiting. Requests arriving over the admin unix socket are the
 * principal "unix" (the socket's file mode is the auth); the transport comes from the server's
 * fetch wrapper (c.env), which a TCP client cannot influence.
 */
import { KosmosError } from "../errors/index.ts";
import { createHash, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { MiddlewareHandler } from "hono";
import { z } from "zod";
import type { ServerBindings } from "./server.ts";
import { TOKEN_POLICY, tokenWeakness } from "./token.ts";

/** A bearer token that meets the one strength rule (token.ts); the message never shows the token. */
const StrongToken = z.string().superRefine((t, ctx) => {
  const weak = tokenWeakness(t);
  if (weak) ctx.addIssue({ code: "custom", message: `the token ${weak}` });
});

export const AuthConfigSchema = z.object({
  basic: z.array(z.object({ user: z.string().min(1), password: z.string().min(1) })).optional(),
  tokens: z.array(StrongToken).optional(),
});
export type AuthConfig = z.infer<typeof AuthConfigSchema>;

export class AuthConfigError extends KosmosError<"AUTH_CONFIG_INVALID"> {
  override name = "AuthConfigError";
  constructor(message: string, hint: string) {
    super("AUTH_CONFIG_INVALID", message, hint);
  }
}

/**
 * Refuse a token given on its own (a flag or an environment variable) that a file would refuse:
 * throws AuthConfigError naming `source`, never showing the token.
 */
export function checkToken(token: string, source: string): void {
  const weak = tokenWeakness(token);
  if (weak) throw new AuthConfigError(`the token given by ${source} ${weak}`, TOKEN_POLICY);
}

/** Load an AuthConfig from a JSON or YAML file. */
export async function loadAuthConfig(path: string): Promise<AuthConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new AuthConfigError(`cannot read ${path}: ${(err as Error).message}`, "check the --auth-file path");
  }
  // yaml is loaded here only: an agent without --auth-file never evaluates it.
  const { parse } = await import("yaml");
  const parsed = AuthConfigSchema.safeParse(parse(text));
  if (!parsed.success) {
    throw new AuthConfigError(
      `invalid auth config ${path}: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}`,
      `expected {basic: [{user, password}], tokens: [string]}; ${TOKEN_POLICY}`,
    );
  }
  return parsed.data;
}

export type AuthVariables = { principal: string };

export interface RateLimitOptions {
  /** failures allowed per client inside the window before it is blocked (default 5) */
  maxFailures: number;
  windowMs: number;
  blockMs: number;
}

export interface AuthOptions {
  /** Paths served without auth (default /healthz /readyz /metrics). */
  exempt?: string[];
  /**
   * Requests served without auth that are nevertheless a guess at a credential (the identity
   * exchange, identity.ts): each counts as one failed authentication of the client address and is
   * refused (429) while the address is blocked; a later successful authentication clears them.
   */
  charged?: { method: string; path: string }[];
  rateLimit?: Partial<RateLimitOptions>;
  now?: () => number;
}

const sha = (s: string | Uint8Array): Buffer => createHash("sha256").update(s).digest();

function constantTimeIncludes(candidate: string, hashes: Buffer[]): boolean {
  const h = sha(candidate);
  let found = false;
  for (const expected of hashes) {
    // no early exit: every configured credential is compared
    if (timingSafeEqual(h, expected)) found = true;
  }
  return found;
}

/** Pure credential check: returns the principal, or null. */
export function createVerifier(cfg: AuthConfig): (authorization: string | undefined) => string | null {
  const basic = (cfg.basic ?? []).map((b) => ({ user: b.user, hash: sha(`${b.user}:${b.password}`) }));
  const basicHashes = basic.map((b) => b.hash);
  const tokens = (cfg.tokens ?? []).map((t) => sha(t));
  return (authorization) => {
    if (!authorization) return null;
    const space = authorization.indexOf(" ");
    if (space < 0) return null;
    const scheme = authorization.slice(0, space).toLowerCase();
    const value = authorization.slice(space + 1).trim();
    if (scheme === "bearer") {
      if (tokens.length === 0 || !constantTimeIncludes(value, tokens)) return null;
      return `token:${sha(value).toString("hex").slice(0, 8)}`;
    }
    if (scheme === "basic") {
      const decoded = Buffer.from(value, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon < 0 || basicHashes.length === 0) return null;
      if (!constantTimeIncludes(decoded, basicHashes)) return null;
      return `basic:${decoded.slice(0, colon)}`;
    }
    return null;
  };
}

/** Sliding failure counter per client key; pure apart from the clock passed in. */
export class FailureLimiter {
  private readonly entries = new Map<string, { failures: number[]; blockedUntil: number }>();
  constructor(
    private readonly opts: RateLimitOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until the client may try again, or 0 when not blocked. */
  retryAfter(key: string): number {
    const e = this.entries.get(key);
    if (!e) return 0;
    const left = e.blockedUntil - this.now();
    return left > 0 ? Math.ceil(left / 1000) : 0;
  }

  fail(key: string): void {
    const t = this.now();
    const e = this.entries.get(key) ?? { failures: [], blockedUntil: 0 };
    e.failures = e.failures.filter((f) => t - f < this.opts.windowMs);
    e.failures.push(t);
    if (e.failures.length >= this.opts.maxFailures) {
      e.blockedUntil = t + this.opts.blockMs;
      e.failures = [];
    }
    this.entries.set(key, e);
    if (this.entries.size > 10_000) this.sweep(t);
  }

  succeed(key: string): void {
    this.entries.delete(key);
  }

  private sweep(t: number): void {
    for (const [k, e] of this.entries) {
      if (e.blockedUntil < t && e.failures.every((f) => t - f >= this.opts.windowMs)) this.entries.delete(k);
    }
  }
}

export const DEFAULT_EXEMPT = ["/healthz", "/readyz", "/metrics"];

/** Hono middleware; sets `c.var.principal`. */
export function authMiddleware(
  cfg: AuthConfig,
  opts: AuthOptions = {},
): MiddlewareHandler<{ Bindings: ServerBindings; Variables: AuthVariables }> {
  const verify = createVerifier(cfg);
  const exempt = new Set(opts.exempt ?? DEFAULT_EXEMPT);
  const charged = new Set((opts.charged ?? []).map((r) => `${r.method.toUpperCase()} ${r.path}`));
  const limiter = new FailureLimiter(
    { maxFailures: 5, windowMs: 60_000, blockMs: 60_000, ...opts.rateLimit },
    opts.now ?? Date.now,
  );
  return async (c, next) => {
    const isCharged = charged.has(`${c.req.method} ${c.req.path}`);
    if (!isCharged && exempt.has(c.req.path)) return next();
    const env = c.env as ServerBindings | undefined;
    if (env?.transport === "unix") {
      c.set("principal", "unix");
      return next();
    }
    const client = env?.remoteAddress ?? "unknown";
    const wait = limiter.retryAfter(client);
    if (wait > 0) {
      return c.json(
        { code: "RATE_LIMITED", message: "too many failed authentications", hint: `retry after ${wait}s` },
        429,
        {
          "Retry-After": String(wait),
        },
      );
    }
    if (isCharged) {
      limiter.fail(client);
      return next();
    }
    const principal = verify(c.req.header("authorization"));
    if (!principal) {
      limiter.fail(client);
      return c.json(
        {
          code: "UNAUTHORIZED",
          message: "missing or invalid credentials",
          hint: "send Basic or Bearer credentials",
        },
        401,
        { "WWW-Authenticate": 'Basic realm="kosmos-node-agent", Bearer' },
      );
    }
    limiter.succeed(client);
    c.set("principal", principal);
    return next();
  };
}
