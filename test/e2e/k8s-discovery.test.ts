/**
 * Agent discovery end to end: real host + member API servers (upstream kube-apiserver from
 * KUBEBUILDER_ASSETS, one etcd); the member Nodes' InternalIPs are loopback addresses 127.0.0.1x where
 * fake agents (HTTP servers recording pushes) listen on one common port. The controller gets no agent
 * list: it finds the agents through the ClusterNodes it maintains, seeds up to `perCluster` of them
 * (gateway candidates first) and rotates to another one when an agent is down. The TLS tests (pinning,
 * identity proofs, a real agent) need no control plane and run without the assets too.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Agent } from "../../internal/agent/agent.ts";
import { AgentClient, type ExecError } from "../../internal/exec/index.ts";
import { IDENTITY_PATH, IdentityResponder } from "../../internal/api/identity.ts";
import { loadOrCreateTls } from "../../internal/api/tls.ts";
import {
  type ClusterNodeObject,
  discoverAgents,
  FINGERPRINT_ANNOTATION,
  fetchPusher,
  forgetProvenPins,
  PushError,
  proveAgentCertificate,
  startController,
} from "../../internal/controller/index.ts";
import { ControlPlane, type Etcd, findAssets, startEtcd } from "../../internal/controlplane/index.ts";
import { applyObjects, type KubeClient, loadKosmosCrds } from "../../internal/kube/index.ts";
import type { Topology } from "../../internal/topology/index.ts";
import { clientOf, kubeSkip } from "../helpers/k8s.ts";

const REPO = resolve(import.meta.dir, "../..");
const TOKEN = "disc-token-0123456789abcdef";
const IPS = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"];

interface FakeAgent {
  ip: string;
  got: Topology[];
  server?: ReturnType<typeof Bun.serve>;
}

const skip = kubeSkip();
let dir: string | undefined;
let etcd: Etcd | undefined;
let host: ControlPlane | undefined;
let member: ControlPlane | undefined;
let hostClient: KubeClient | undefined;
let memberClient: KubeClient | undefined;
let port = 0;
const agents: FakeAgent[] = IPS.map((ip) => ({ ip, got: [] }));

function serve(a: FakeAgent): void {
  a.server = Bun.serve({
    hostname: a.ip,
    port,
    fetch: async (req) => {
      if (req.headers.get("authorization") !== `Bearer ${TOKEN}`) return new Response("no", { status: 401 });
      if (new URL(req.url).pathname !== "/v1/topology") return new Response("nf", { status: 404 });
      a.got.push((await req.json()) as Topology);
      return new Response(null, { status: 204 });
    },
  });
}

async function until<T>(
  f: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 60_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    await Bun.sleep(10);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Serve the fake agents on one port free on every address (retry on conflicts). */
function serveAgents(): void {
  for (let attempt = 0; ; attempt++) {
    try {
      const first = Bun.serve({ hostname: IPS[0], port: 0, fetch: () => new Response("") });
      port = first.port ?? 0;
      first.stop(true);
      for (const a of agents) serve(a);
      return;
    } catch (e) {
      for (const a of agents) a.server?.stop(true);
      if (attempt > 5) throw e;
    }
  }
}

/** Host and member API servers on one etcd; the member's Nodes, its kubeconfig Secret and its Cluster. */
async function startClusters(): Promise<void> {
  const assets = findAssets();
  dir = await mkdtemp(join(tmpdir(), "kosmos-disc-k8s-"));
  etcd = await startEtcd(assets, join(dir, "etcd"));
  const shared = etcd;
  [host, member] = await Promise.all(
    ["host", "member"].map((name) =>
      ControlPlane.start({ name, etcd: shared, assets, dir: join(dir!, name), serviceCIDR: "10.96.0.0/12" }),
    ),
  );
  hostClient = clientOf(host!);
  memberClient = clientOf(member!);
  await applyObjects(hostClient, loadKosmosCrds());
  await hostClient.create("/api/v1/namespaces", { metadata: { name: "kosmos-system" } });
  await hostClient.create("/api/v1/namespaces/kosmos-system/secrets", {
    metadata: { name: "kosmos-member-m" },
    data: { kubeconfig: Buffer.from(member!.kubeconfig()).toString("base64") },
  });
  for (const [i, ip] of IPS.entries()) {
    // n4 is the only gateway candidate: it must be preferred although it sorts last. n2 has no pod
    // CIDR yet (a real API server lets a Node's podCIDRs change only from none to some): the first
    // test gives it one, a topology change that must reach two agents.
    await memberClient.create("/api/v1/nodes", {
      metadata: { name: `n${i + 1}`, labels: i === 3 ? { "kosmos.io/gateway": "true" } : {} },
      spec: i === 1 ? {} : { podCIDRs: [`10.244.${i}.0/24`] },
      status: { addresses: [{ type: "InternalIP", address: ip }] },
    });
  }
  await hostClient.create("/apis/kosmos.io/v1alpha1/clusters", {
    apiVersion: "kosmos.io/v1alpha1",
    kind: "Cluster",
    metadata: { name: "m" },
    spec: {
      kubeconfigSecretRef: { name: "kosmos-member-m" },
      clusterLinkOptions: { networkType: "gateway", cni: "flannel" },
    },
  });
}

afterAll(async () => {
  for (const a of agents) a.server?.stop(true);
  hostClient?.close();
  memberClient?.close();
  await member?.stop();
  await host?.stop();
  await etcd?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

const full = (t: Topology | undefined): boolean =>
  t !== undefined && t.nodes.length === 4 && (t.clusters[0]?.serviceCIDRs.length ?? 0) > 0;

describe.skipIf(skip)("controller agent discovery through ClusterNodes of a real API server", () => {
  beforeAll(async () => {
    serveAgents();
    await startClusters();
  }, 180_000);

  test("seeds 2 of 4 agents (gateway first), rotates to the next candidate when one is down", async () => {
    const ctl = await startController({
      kubeconfig: host!.kubeconfig(),
      agents: [],
      discovery: { token: TOKEN, port, scheme: "http", perCluster: 2 },
      leaderElection: false,
      minBackoffMs: 20,
      maxBackoffMs: 200,
    });
    let stopped = false;
    try {
      await until(() => full(agents[3]!.got.at(-1)) && full(agents[0]!.got.at(-1)), "n4 and n1 seeded");
      await ctl.seeder.settled();
      const st = ctl.seeder.status();
      expect(
        st.agents
          .filter((a) => a.active)
          .map((a) => a.url)
          .sort(),
      ).toEqual([`http://127.0.0.11:${port}`, `http://127.0.0.14:${port}`]);
      expect(st.agents.map((a) => a.url).sort()).toEqual(IPS.map((ip) => `http://${ip}:${port}`));
      expect(st.agents.every((a) => a.group === "m")).toBe(true);

      // From now on: n1's agent is down. A topology change (n2's pod CIDR) must still reach two agents:
      // the push to n1 fails and n2, the next candidate, takes over; n3 is never contacted.
      for (const a of agents) a.got.length = 0;
      agents[0]!.server!.stop(true);
      stopped = true;
      await memberClient!.patch(
        "/api/v1/nodes/n2",
        { spec: { podCIDR: "10.244.9.0/24", podCIDRs: ["10.244.9.0/24"] } },
        "merge",
      );
      const changed = (t: Topology | undefined) =>
        t?.nodes.find((n) => n.name === "m-n2")?.podCIDRs[0] === "10.244.9.0/24";
      await until(() => changed(agents[3]!.got.at(-1)), "n4 got the change");
      await until(() => changed(agents[1]!.got.at(-1)), "rotation to n2");
      await ctl.seeder.settled();
      expect(agents[2]!.got.length).toBe(0);
      const after = ctl.seeder.status().agents;
      const down = after.find((a) => a.url.includes("127.0.0.11"));
      expect(down).toMatchObject({ active: false });
      expect(down?.failures).toBeGreaterThan(0);
      expect(down?.lastError).toContain("cannot reach agent");
      expect(after.find((a) => a.url.includes("127.0.0.12"))?.active).toBe(true);
    } finally {
      await ctl.stop();
      if (stopped) serve(agents[0]!);
    }
  }, 120_000);

  test("the real kosmos-controller binary with KOSMOS_AGENTS empty discovers and seeds the agents", async () => {
    for (const a of agents) a.got.length = 0;
    const kcFile = await host!.kubeconfigFile("kosmos-controller.kubeconfig");
    const log = join(host!.dir, "kosmos-controller.log");
    const fd = openSync(log, "a");
    const p = Bun.spawn(
      [
        process.execPath,
        join(REPO, "cmd/kosmos-controller.ts"),
        "--kubeconfig",
        kcFile,
        "--no-leader-elect",
        "--listen",
        "127.0.0.1:0",
      ],
      {
        env: {
          ...process.env,
          KOSMOS_AGENTS: "",
          KOSMOS_TOKEN: TOKEN,
          KOSMOS_AGENT_PORT: String(port),
          KOSMOS_AGENT_SCHEME: "http",
        },
        stdout: fd,
        stderr: fd,
      },
    );
    closeSync(fd);
    try {
      // Default per cluster: 3, the gateway candidate n4 first, then n1, n2 (n2's pod CIDR set above).
      await until(
        () => [0, 1, 3].every((i) => full(agents[i]!.got.at(-1))) || (p.exitCode !== null && "exited"),
        "n4, n1, n2 seeded with the whole topology",
      );
      expect(p.exitCode).toBeNull();
    } catch (e) {
      console.error(`kosmos-controller log:\n${await readFile(log, "utf8")}`);
      throw e;
    } finally {
      p.kill();
      await p.exited;
    }
  }, 120_000);
});

describe("pushing to agents over https (no control plane needed)", () => {
  test("https with the agent's self-signed certificate: pinned, or proven with the token; impostors and wrong pins get nothing", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kosmos-disc-tls-"));
    // an agent-like server: the identity exchange (api/identity.ts) as `identity` answers it, then the push
    const agentLike = (ip: string, tls: { cert: string; key: string }, identity: IdentityResponder) => {
      const got: string[] = [];
      const server = Bun.serve({
        hostname: ip,
        port: 0,
        tls: { cert: tls.cert, key: tls.key },
        fetch: async (req) => {
          if (new URL(req.url).pathname === IDENTITY_PATH)
            return Response.json(identity.answer(await req.json()));
          if (req.headers.get("authorization") !== `Bearer ${TOKEN}`)
            return new Response("no", { status: 401 });
          got.push(await req.text());
          return new Response(null, { status: 204 });
        },
      });
      return { server, got };
    };
    try {
      const tls = await loadOrCreateTls({
        stateDir: join(dir, "a"),
        commonName: "m-n1",
        hosts: ["127.0.0.15"],
      });
      const real = agentLike("127.0.0.15", tls, new IdentityResponder("m-n1", tls.fingerprint, [TOKEN]));
      // an impostor with its own certificate that relays the real agent's identity answers
      const other = await loadOrCreateTls({
        stateDir: join(dir, "b"),
        commonName: "m-n1",
        hosts: ["127.0.0.16"],
      });
      const relay = agentLike("127.0.0.16", other, new IdentityResponder("m-n1", tls.fingerprint, [TOKEN]));
      // an agent whose token is not ours: it cannot prove its certificate to us
      const stranger = agentLike(
        "127.0.0.17",
        other,
        new IdentityResponder("m-n1", other.fingerprint, ["another-token-0123456789"]),
      );
      forgetProvenPins();
      try {
        const node = (ip: string, fp?: string): ClusterNodeObject => ({
          metadata: { name: "m-n1", ...(fp ? { annotations: { [FINGERPRINT_ANNOTATION]: fp } } : {}) },
          spec: { clusterName: "m", nodeName: "n1", ip },
        });
        const topo = { clusters: [], nodes: [] } as unknown as Topology;
        const ep = (ip: string, port: number, fp?: string) =>
          discoverAgents([node(ip, fp)], { token: TOKEN, port })["m"]![0]!;
        const r = real.server.port as number;
        await fetchPusher(ep("127.0.0.15", r), topo); // proven with the token, then pinned
        await fetchPusher(ep("127.0.0.15", r), topo); // remembered
        await fetchPusher(ep("127.0.0.15", r, tls.fingerprint), topo); // pinned by annotation
        expect(real.got.length).toBe(3);
        const wrongPin = await fetchPusher(ep("127.0.0.15", r, "00".repeat(32)), topo).catch(
          (e: unknown) => e,
        );
        expect((wrongPin as PushError).code).toBe("KOSMOS_PUSH_TLS_PIN");
        for (const impostor of [relay, stranger]) {
          const err = await fetchPusher(
            ep(impostor.server.hostname as string, impostor.server.port as number),
            topo,
          ).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(PushError);
          expect((err as PushError).code).toBe("KOSMOS_PUSH_TLS_IDENTITY");
          expect(impostor.got).toEqual([]); // the token never left the controller
        }
        // an agent without an identity document (older) is refused too, with a hint to pin it
        const old = Bun.serve({
          hostname: "127.0.0.18",
          port: 0,
          tls: { cert: tls.cert, key: tls.key },
          fetch: () => new Response("no", { status: 401 }),
        });
        try {
          const err = await fetchPusher(ep("127.0.0.18", old.port as number), topo).catch((e: unknown) => e);
          expect((err as PushError).code).toBe("KOSMOS_PUSH_TLS_IDENTITY");
          expect((err as PushError).hint).toContain(FINGERPRINT_ANNOTATION);
        } finally {
          old.stop(true);
        }
        // verification explicitly off still works (operator's choice)
        await fetchPusher(
          { url: `https://127.0.0.16:${relay.server.port}`, token: TOKEN, tls: { insecureSkipVerify: true } },
          topo,
        );
        expect(relay.got.length).toBe(1);
      } finally {
        for (const s of [real, relay, stranger]) s.server.stop(true);
        forgetProvenPins();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a real agent proves its certificate with the token (controller push, kosmosctl exec client); a wrong token learns nothing and sends nothing", async () => {
    // never seeded: an agent without a topology touches nothing on this machine
    const dir = await mkdtemp(join(tmpdir(), "kosmos-disc-agent-"));
    const agent = new Agent(
      {
        node: "m-n1",
        stateDir: dir,
        listenHost: "127.0.0.19",
        listenPort: 0,
        token: TOKEN,
        logLevel: "silent",
      },
      {},
    );
    await agent.start();
    try {
      const url = agent.endpoint as string;
      expect(url).toStartWith("https://127.0.0.19:");
      expect(await proveAgentCertificate({ url, token: TOKEN })).toBe(agent.tls.fingerprint);
      const wrong = await proveAgentCertificate({ url, token: "wrong-token-0123456789abcdef" }).catch(
        (e: unknown) => e,
      );
      expect((wrong as PushError).code).toBe("KOSMOS_PUSH_TLS_IDENTITY");
      // the identity document is public, everything else still needs the token
      expect(
        (await fetch(`${url}${IDENTITY_PATH}`, { tls: { rejectUnauthorized: false } } as RequestInit)).status,
      ).toBe(200);
      expect(
        (await fetch(`${url}/v1/state`, { tls: { rejectUnauthorized: false } } as RequestInit)).status,
      ).toBe(401);
      // the exec client: token only, no --fingerprint: proven, then pinned
      const r = await new AgentClient({ url, token: TOKEN }).exec(["echo", "proven"]);
      expect(r.stdout).toBe("proven\n");
      const bad = await new AgentClient({ url, token: "wrong-token-0123456789abcdef" })
        .exec(["echo", "x"])
        .catch((e: unknown) => e);
      expect((bad as ExecError).code).toBe("IDENTITY_UNPROVEN");
    } finally {
      await agent.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
