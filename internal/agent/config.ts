/** Agent configuration from flags and environment (cmd/kosmos-agent.ts parses argv into this). */
import { z } from "zod";

export const AgentConfigSchema = z.object({
  /** This node's name (in Kubernetes: the downward API spec.nodeName). */
  node: z.string().min(1),
  /** Directory for the SQLite replica, TLS material and logs. */
  stateDir: z.string().min(1),
  /** SQLite replica file (default <stateDir>/kosmos.db). */
  db: z.string().optional(),
  /** TLS listener; empty host disables TCP (unix socket only). */
  listenHost: z.string().default("0.0.0.0"),
  listenPort: z.number().int().min(0).max(65535).default(5678),
  /** Plain-HTTP admin socket (root only), default <stateDir>/agent.sock. */
  adminSocket: z.string().optional(),
  /** Bearer tokens / basic users file (JSON or YAML `{tokens: [...], basic: [{user,password}]}`). */
  authFile: z.string().optional(),
  /** Bearer token (alternative to authFile; also used to push topology). */
  token: z.string().optional(),
  /**
   * Basic credentials from upstream node-agent's environment (`WEB_USER`/`WEB_PASS`, which its
   * install scripts write to agent.env), accepted besides those of authFile.
   */
  basicAuth: z.object({ user: z.string().min(1), password: z.string().min(1) }).optional(),
  /** Installation secret (gossip HMAC, IPsec key derivation); file path. */
  secretFile: z.string().optional(),
  /** Directories uploads may write into. */
  uploadRoots: z.array(z.string()).default([]),
  /** Periodic resync (tamper repair) interval. */
  resyncMs: z.number().int().min(200).default(10_000),
  /**
   * Watch the kernel (`ip monitor`, `bridge monitor fdb`, `nft monitor`) and repair tampering of
   * owned objects at once; the periodic resync stays the safety net.
   */
  watchKernel: z.boolean().default(true),
  /** Debounce between a replica change and the re-plan. */
  debounceMs: z.number().int().min(0).default(50),
  /** Gossip seeds (agent URLs, https://host:port). */
  seeds: z.array(z.string()).default([]),
  /** URL peers reach this agent at (published in node_status). */
  advertiseUrl: z.string().optional(),
  /** TLS cert/key files (generated under stateDir when absent). */
  tlsCert: z.string().optional(),
  tlsKey: z.string().optional(),
  logLevel: z.string().default("info"),
  /** Remove everything the agent owns from the kernel when stopping (default: keep the network up). */
  uninstallOnExit: z.boolean().default(false),
});
export type AgentConfig = z.infer<typeof AgentConfigSchema>;
export type AgentConfigInput = z.input<typeof AgentConfigSchema>;

/** Upstream node-agent's Basic credentials from the environment: both of WEB_USER and WEB_PASS, or neither. */
export function webCredentials(
  env: Record<string, string | undefined>,
): { user: string; password: string } | undefined {
  const user = env.WEB_USER ?? "";
  const password = env.WEB_PASS ?? "";
  if (!user && !password) return undefined;
  if (!user || !password)
    throw new Error(
      `${user ? "WEB_PASS" : "WEB_USER"} is not set but ${user ? "WEB_USER" : "WEB_PASS"} is: set both (upstream node-agent's agent.env) or neither`,
    );
  return { user, password };
}
