/**
 * The agent's HTTP API (one Hono app served on the TLS port and the admin unix socket):
 * health, metrics, state/plan inspection, topology seeding, forced reconcile, uninstall,
 * plus the kubenest exec routes and the gossip websocket, mounted by the Agent.
 */
import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import {
  type AuthConfig,
  authMiddleware,
  DEFAULT_EXEMPT,
  IDENTITY_PATH,
  IdentityError,
  IdentityResponder,
  type ServerBindings,
} from "../api/index.ts";
import type { ApplyReport } from "../dataplane/index.ts";
import type { MemberInfo } from "../gossip/index.ts";
import type { Logger, Registry } from "../observability/index.ts";
import type { Member, OwnerDigest } from "../store/index.ts";
import { type Topology, TopologyError, validateTopology } from "../topology/index.ts";
import { type LoopStatus, redactPlanKeys } from "./loop.ts";
import { GOSSIP_PATH } from "./membership.ts";

export type AgentEnv = { Bindings: ServerBindings; Variables: { principal: string } };

export const MAX_TOPOLOGY_BYTES = 32 * 1024 * 1024;

/** What the routes need of an agent (the Agent provides it; tests can provide their own). */
export interface AgentApi {
  readonly node: string;
  readonly certFingerprint: string;
  /** The control loop's status (ready, waiting, plan). */
  status(): LoopStatus;
  /** Run one plan+reconcile pass now. */
  reconcileNow(reason: string): Promise<LoopStatus>;
  /** GET /v1/state (a JSON value). */
  state(): object;
  topology(): Topology;
  /** The live gossip member table; undefined without gossip. */
  liveMembers(): MemberInfo[] | undefined;
  /** The replica's member rows (written on state changes). */
  storedMembers(): Member[];
  ownerDigests(): OwnerDigest[];
  /** Seed a validated topology; returns how many rows changed. */
  seed(topology: Topology): number;
  countRejectedTopology(): void;
  uninstall(): Promise<ApplyReport>;
}

/**
 * The whole agent app as served on the TLS port and the admin socket: authentication, the identity
 * exchange, the agent routes, `mounts` (the exec routes) and the gossip websocket at GOSSIP_PATH.
 */
export function createAgentApp(o: {
  api: AgentApi;
  registry: Registry;
  auth: AuthConfig;
  /** SHA-256 of the agent's certificate (the identity exchange proves it). */
  fingerprint: string;
  logger: Logger;
  // biome-ignore lint/suspicious/noExplicitAny: any Hono sub-app (its own Env) is mounted at "/"
  mounts?: Array<Hono<any>>;
  gossip?: MiddlewareHandler<AgentEnv>;
}): Hono<AgentEnv> {
  const app = new Hono<AgentEnv>();
  // Gossip frames carry their own HMAC (cluster secret) and replay protection: no bearer token.
  // The identity exchange is public but each one is a guess at a token: it is rate-limited like
  // a failed authentication (api/identity.ts).
  app.use(
    "*",
    authMiddleware(o.auth, {
      exempt: [...DEFAULT_EXEMPT, GOSSIP_PATH, IDENTITY_PATH],
      charged: [{ method: "POST", path: IDENTITY_PATH }],
    }),
  );
  const identity = new IdentityResponder(o.api.node, o.fingerprint, o.auth.tokens ?? []);
  app.get(IDENTITY_PATH, (c) => c.json(identity.describe()));
  app.post(IDENTITY_PATH, async (c) => {
    try {
      return c.json(identity.answer(await c.req.json().catch(() => null)));
    } catch (e) {
      if (!(e instanceof IdentityError)) throw e;
      return c.json({ code: e.code, message: e.message, hint: e.hint }, 400);
    }
  });
  app.route("/", createAgentRoutes(o.api, o.registry));
  for (const m of o.mounts ?? []) app.route("/", m);
  if (o.gossip) app.use(GOSSIP_PATH, o.gossip);
  app.onError((err, c) => {
    o.logger.error({ err, path: c.req.path }, "request failed");
    return c.json({ code: "INTERNAL", message: err.message }, 500);
  });
  return app;
}

export function createAgentRoutes(agent: AgentApi, registry: Registry): Hono<AgentEnv> {
  const app = new Hono<AgentEnv>();

  app.get("/healthz", (c) => c.text("ok"));
  app.get("/readyz", (c) => {
    const s = agent.status();
    if (s.applied) return c.text("ready");
    return c.text(`not ready: ${s.waiting ?? s.lastError ?? "first reconcile pending"}`, 503);
  });
  app.get("/metrics", async (c) => {
    return c.body(await registry.metrics(), 200, { "Content-Type": registry.contentType });
  });

  app.get("/v1/state", (c) => c.json(agent.state()));
  app.get("/v1/plan", (c) => {
    const p = agent.status().plan;
    // ESP keys stay in the agent (derived per pair; never logged, stored or served)
    if (p) return c.json(redactPlanKeys(p));
    return c.json({ code: "NO_PLAN", message: agent.status().waiting ?? "no plan yet" }, 404);
  });
  app.get("/v1/topology", (c) => c.json(agent.topology()));
  // What `kosmosctl inspect` shows besides the plan: the membership with incarnations and gossip
  // addresses — live from gossip (the replica's member rows are written on state changes only, so
  // their incarnations lag), from the replica without gossip — and the replica's versions per owner.
  app.get("/v1/replica", (c) => {
    const live = agent.liveMembers();
    const members = live
      ? live
          .map((m) => ({
            name: m.name,
            state: m.state,
            incarnation: m.incarnation,
            address: m.addr,
            updatedAt: m.since,
            confirmed: m.confirmed,
          }))
          .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      : agent.storedMembers();
    return c.json({
      node: agent.node,
      certFingerprint: agent.certFingerprint,
      membersFrom: live ? "gossip" : "replica",
      members,
      owners: agent.ownerDigests(),
    });
  });

  app.post(
    "/v1/topology",
    bodyLimit({
      maxSize: MAX_TOPOLOGY_BYTES,
      onError: (c) =>
        c.json(
          {
            code: "TOPOLOGY_TOO_LARGE",
            message: `topology body exceeds ${MAX_TOPOLOGY_BYTES} bytes`,
            hint: "split the seed or raise the limit",
          },
          413,
        ),
    }),
    async (c) => {
      let body: unknown;
      try {
        body = await c.req.json();
      } catch (e) {
        return c.json(
          {
            code: "BAD_JSON",
            message: `body is not valid JSON: ${(e as Error).message}`,
            hint: "send a Topology",
          },
          400,
        );
      }
      try {
        const topology = validateTopology(body);
        const changed = agent.seed(topology);
        return c.json({
          accepted: true,
          changed,
          clusters: topology.clusters.length,
          nodes: topology.nodes.length,
        });
      } catch (e) {
        if (e instanceof TopologyError) {
          agent.countRejectedTopology();
          return c.json({ code: e.code, message: e.message, hint: e.hint, issues: e.issues }, 422);
        }
        throw e;
      }
    },
  );

  app.post("/v1/reconcile", async (c) => {
    const s = await agent.reconcileNow("api");
    return c.json({
      applied: s.applied,
      planHash: s.planHash,
      waiting: s.waiting,
      changes: s.lastReport?.changes ?? 0,
      residual: s.lastReport?.residual ?? 0,
      errors: s.lastReport?.errors ?? [],
      ipsec: s.lastReport?.ipsec,
    });
  });

  app.post("/v1/uninstall", async (c) => {
    const report = await agent.uninstall();
    return c.json({ removed: report.applied, errors: report.errors });
  });

  return app;
}
