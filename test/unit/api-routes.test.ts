/**
 * The agent's HTTP app (createAgentApp: authentication, identity exchange, agent routes) in
 * process, through app.request(): refusals, malformed bodies, health, readiness and metrics.
 * The agent behind it is an AgentApi that records what the routes asked of it.
 */
import { describe, expect, test } from "bun:test";
import { type AgentApi, createAgentApp, MAX_TOPOLOGY_BYTES } from "../../internal/agent/index.ts";
import type { ServerBindings } from "../../internal/api/index.ts";
import { emptyHostState } from "../../internal/dataplane/index.ts";
import type { LoopStatus } from "../../internal/agent/index.ts";
import { createRegistry, silentLogger } from "../../internal/observability/index.ts";
import type { Topology } from "../../internal/topology/index.ts";

const TOKEN = "api-routes-test-token-0123456789abcdef";

function fakeAgent(status: Partial<LoopStatus> = {}) {
  const seeded: Topology[] = [];
  let rejected = 0;
  const api: AgentApi = {
    node: "n1",
    certFingerprint: "ab".repeat(32),
    status: () => ({ applied: false, runs: 0, ...status }) as LoopStatus,
    reconcileNow: async () => ({ applied: true, runs: 1 }) as LoopStatus,
    state: () => ({ node: "n1" }),
    topology: () => ({ clusters: [], nodes: [] }),
    liveMembers: () => undefined,
    storedMembers: () => [],
    ownerDigests: () => [],
    seed: (t) => {
      seeded.push(t);
      return t.nodes.length;
    },
    countRejectedTopology: () => {
      rejected++;
    },
    uninstall: async () => ({ applied: 0, errors: [], changes: 0, residual: 0 }) as never,
  };
  return { api, seeded, rejected: () => rejected };
}

function app(status?: Partial<LoopStatus>) {
  const agent = fakeAgent(status);
  const registry = createRegistry();
  const a = createAgentApp({
    api: agent.api,
    registry,
    auth: { tokens: [TOKEN] },
    fingerprint: agent.api.certFingerprint,
    logger: silentLogger(),
  });
  const over = (transport: "tcp" | "unix", remote: string) =>
    ({ transport, remoteAddress: remote }) as unknown as ServerBindings;
  const request = (path: string, init: RequestInit = {}, remote = "127.0.0.1") =>
    a.request(`http://agent${path}`, init, over("tcp", remote));
  const authed = (path: string, init: RequestInit = {}) =>
    request(path, { ...init, headers: { ...(init.headers ?? {}), authorization: `Bearer ${TOKEN}` } });
  const unix = (path: string) => a.request(`http://agent${path}`, {}, over("unix", "unix"));
  return { agent, request, authed, unix };
}

const cluster = {
  name: "c1",
  networkType: "p2p",
  ipFamily: "ipv4",
  podCIDRs: ["10.1.0.0/16"],
  serviceCIDRs: ["10.101.0.0/16"],
  globalCIDRs: {},
  bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
  localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
};

describe("agent API: authentication", () => {
  test("no or a wrong token: 401 with a hint; a unix-socket client needs none", async () => {
    const { request } = app();
    const refused: Array<Record<string, string>> = [
      {},
      { authorization: "Bearer not-the-token-0123456789abcdef" },
    ];
    for (const headers of refused) {
      const r = await request("/v1/state", { headers });
      expect(r.status).toBe(401);
      expect(r.headers.get("www-authenticate")).toContain("Bearer");
      expect(await r.json()).toEqual({
        code: "UNAUTHORIZED",
        message: "missing or invalid credentials",
        hint: "send Basic or Bearer credentials",
      });
    }
    // the admin socket is protected by its file mode: no credentials there
    expect((await app().unix("/v1/state")).status).toBe(200);
  });

  test("repeated failures from one address are rate limited (429 with Retry-After)", async () => {
    const { request } = app();
    for (let i = 0; i < 5; i++) expect((await request("/v1/state", {}, "10.9.9.9")).status).toBe(401);
    const r = await request("/v1/state", { headers: { authorization: `Bearer ${TOKEN}` } }, "10.9.9.9");
    expect(r.status).toBe(429);
    expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(((await r.json()) as { code: string }).code).toBe("RATE_LIMITED");
    // another address is not affected
    expect(
      (await request("/v1/state", { headers: { authorization: `Bearer ${TOKEN}` } }, "10.9.9.8")).status,
    ).toBe(200);
  });

  test("a valid token reaches the routes", async () => {
    const { authed } = app();
    const r = await authed("/v1/state");
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ node: "n1" });
  });
});

describe("agent API: health, readiness, metrics (no credentials needed)", () => {
  test("/healthz is ok; /readyz says why it is not ready, then ready", async () => {
    expect(await (await app().request("/healthz")).text()).toBe("ok");
    const waiting = await app({ applied: false, waiting: "no topology yet" }).request("/readyz");
    expect(waiting.status).toBe(503);
    expect(await waiting.text()).toBe("not ready: no topology yet");
    const pending = await app({ applied: false }).request("/readyz");
    expect(await pending.text()).toBe("not ready: first reconcile pending");
    const ready = await app({ applied: true }).request("/readyz");
    expect(ready.status).toBe(200);
    expect(await ready.text()).toBe("ready");
  });

  test("/metrics is Prometheus text", async () => {
    const r = await app().request("/metrics");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toContain("text/plain");
  });
});

describe("agent API: malformed requests", () => {
  test("POST /v1/topology with a body that is not JSON: 400 BAD_JSON, nothing seeded", async () => {
    const { authed, agent } = app();
    const r = await authed("/v1/topology", { method: "POST", body: "{not json" });
    expect(r.status).toBe(400);
    const body = (await r.json()) as { code: string; message: string; hint: string };
    expect(body.code).toBe("BAD_JSON");
    expect(body.message).toStartWith("body is not valid JSON: ");
    expect(body.hint).toBe("send a Topology");
    expect(agent.seeded).toEqual([]);
  });

  test("an invalid topology: 422 with the issues, counted, nothing seeded", async () => {
    const { authed, agent } = app();
    const bad = { clusters: [{ ...cluster, podCIDRs: ["10.1.0.0/33"] }], nodes: [] };
    const r = await authed("/v1/topology", { method: "POST", body: JSON.stringify(bad) });
    expect(r.status).toBe(422);
    const body = (await r.json()) as { code: string; issues: Array<{ path: string }> };
    expect(body.code).toBe("TOPOLOGY_INVALID");
    expect(body.issues.map((i) => i.path)).toContain("clusters[0].podCIDRs[0]");
    expect(agent.seeded).toEqual([]);
    expect(agent.rejected()).toBe(1);
  });

  test("a topology larger than the limit: 413 before it is parsed", async () => {
    const { authed, agent } = app();
    const r = await authed("/v1/topology", {
      method: "POST",
      body: "x".repeat(MAX_TOPOLOGY_BYTES + 1),
      headers: { "content-length": String(MAX_TOPOLOGY_BYTES + 1) },
    });
    expect(r.status).toBe(413);
    expect(((await r.json()) as { code: string }).code).toBe("TOPOLOGY_TOO_LARGE");
    expect(agent.seeded).toEqual([]);
  });

  test("a valid topology is seeded", async () => {
    const { authed, agent } = app();
    const node = {
      name: "n1",
      cluster: "c1",
      ipv4: "192.0.2.1",
      podCIDRs: ["10.1.1.0/24"],
      gatewayCandidate: false,
    };
    const r = await authed("/v1/topology", {
      method: "POST",
      body: JSON.stringify({ clusters: [cluster], nodes: [node] }),
    });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ accepted: true, changed: 1, clusters: 1, nodes: 1 });
    expect(agent.seeded).toHaveLength(1);
  });

  test("POST /v1/identity with a malformed share: 400 IDENTITY_BAD_REQUEST with a hint", async () => {
    const { request } = app();
    const r = await request("/v1/identity", { method: "POST", body: JSON.stringify({ share: "zz" }) });
    expect(r.status).toBe(400);
    const body = (await r.json()) as { code: string; hint: string };
    expect(body.code).toBe("IDENTITY_BAD_REQUEST");
    expect(body.hint).toContain("X25519");
  });

  test("GET /v1/plan before any plan: 404 NO_PLAN; after, the plan", async () => {
    expect((await app().authed("/v1/plan")).status).toBe(404);
    const plan = { ...emptyHostState("n1", "c1") };
    const r = await app({ applied: true, plan }).authed("/v1/plan");
    expect(r.status).toBe(200);
  });
});
