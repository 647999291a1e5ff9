/**
 * kosmos-agent: one per node. Wires the replica (SQLite), the control loop (plan -> reconcile),
 * the HTTP API (TLS port + admin unix socket) with the kubenest exec routes, and gossip.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { createBunWebSocket } from "hono/bun";
import {
  type AuthConfig,
  checkToken,
  loadAuthConfig,
  TOKEN_MIN_LENGTH,
  TOKEN_POLICY,
  type RunningServer,
  startServer,
  loadOrCreateTls,
  type TlsMaterial,
} from "../api/index.ts";
import {
  type ApplyReport,
  type Capabilities,
  defaultRunner,
  detectCapabilities,
  Reconciler,
  type Runner,
  type KernelEvent,
  KernelWatcher,
  monitorSpecs,
} from "../dataplane/index.ts";
import { createExecRoutes, recoverWorkflows, SqliteAudit, SqliteJournal } from "../exec/index.ts";
import { Counter, createLogger, createRegistry, type Logger, type Registry } from "../observability/index.ts";
import { type HostState, isAlive } from "../planner/index.ts";
import { openStore, type Store } from "../store/index.ts";
import type { MemberState, Topology } from "../topology/index.ts";
import { type AgentApi, createAgentApp } from "./app.ts";
import { type AgentConfig, type AgentConfigInput, AgentConfigSchema } from "./config.ts";
import { type AgentGossip, startGossip } from "./gossip.ts";
import { ControlLoop } from "./loop.ts";
import { jsExecution } from "./runtime.ts";

export const AGENT_VERSION = "0.1.0";

/** A restarted agent publishes no gateway claim before this (anti-entropy runs every 2 s). */
export const CLAIM_SETTLE_MS = 5_000;

export interface AgentState {
  node: string;
  cluster?: string;
  version: string;
  ready: boolean;
  waiting?: string;
  lastError?: string;
  planHash?: string;
  lastRunAt?: number;
  runs: number;
  /**
   * The control loop schedules passes (false after POST /v1/uninstall: no resync, kernel event or
   * replica change applies anything until the agent restarts).
   */
  reconciling: boolean;
  capabilities: Capabilities;
  ipsec?: ApplyReport["ipsec"];
  gateways: Record<string, string>;
  members: Record<string, MemberState>;
  counts: { clusters: number; nodes: number; routes: number; fdb: number };
  endpoint?: string;
  adminSocket: string;
  certFingerprint: string;
  storeRecovered: boolean;
  warnings: string[];
}

export interface AgentDeps {
  runner?: Runner;
  logger?: Logger;
  /** Membership view provider (gossip); default: every node alive. */
  members?: () => Record<string, MemberState>;
  /**
   * Argv prefix that runs a command in the runner's namespace (e.g. `ip netns exec NS`), for the
   * kernel watcher's monitors. With a custom runner and no prefix the watcher is off (it would
   * watch the wrong namespace); tampering is then repaired by the resync only.
   */
  watchPrefix?: string[];
}

export class Agent {
  readonly cfg: AgentConfig;
  readonly logger: Logger;
  private readonly rootLogger: Logger;
  readonly registry: Registry;
  store!: Store;
  loop!: ControlLoop;
  capabilities!: Capabilities;
  tls!: TlsMaterial;
  private reconciler!: Reconciler;
  private server?: RunningServer;
  private readonly runner: Runner;
  private unsubscribe?: () => void;
  private rejectedTopology!: Counter;
  private memberView: () => Record<string, MemberState>;
  /** What the planner acts on (gossip: membership with the isolation guard); default memberView. */
  private planView?: () => Record<string, MemberState>;
  private electionView?: () => Record<string, MemberState>;
  /** Installation secret (gossip HMAC key material, IPsec key derivation). Never logged or gossiped. */
  secret?: Uint8Array;
  gossip?: AgentGossip;

  constructor(
    cfg: AgentConfigInput,
    private readonly deps: AgentDeps = {},
  ) {
    this.cfg = AgentConfigSchema.parse(cfg);
    // One root without a component; every logger used is a child naming its component exactly once.
    this.rootLogger = deps.logger ?? createLogger({ node: this.cfg.node, level: this.cfg.logLevel });
    this.logger = this.rootLogger.child({ component: "agent" });
    this.registry = createRegistry();
    this.runner = deps.runner ?? defaultRunner();
    this.memberView = deps.members ?? (() => ({}));
  }

  /** The kernel watcher (tamper repair at once), unless disabled or the namespace is unknown. */
  private kernelWatchFactory(): ((onEvent: (ev: KernelEvent) => void) => KernelWatcher) | undefined {
    if (!this.cfg.watchKernel) return undefined;
    if (this.deps.runner && !this.deps.watchPrefix) return undefined;
    const logger = this.rootLogger.child({ component: "watch" });
    const caps = this.capabilities;
    const specs = monitorSpecs({
      nft: caps.nftables.ok,
      xfrm: caps.xfrmPolicy.ok,
      xfrmStates: caps.xfrmEsp.ok,
    });
    return (onEvent) => new KernelWatcher({ onEvent, logger, prefix: this.deps.watchPrefix, specs });
  }

  get adminSocket(): string {
    return this.cfg.adminSocket ?? join(this.cfg.stateDir, "agent.sock");
  }

  /** Replace the membership provider (gossip wires itself in after start). */
  setMembers(view: () => Record<string, MemberState>): void {
    this.memberView = view;
    this.loop?.trigger("membership");
  }

  async start(): Promise<void> {
    const { cfg, logger } = this;
    // credentials first: a weak token stops the agent before it touches anything
    this.auth = await this.authConfig();
    await mkdir(cfg.stateDir, { recursive: true, mode: 0o700 });
    this.store = await openStore(cfg.db ?? join(cfg.stateDir, "kosmos.db"), { node: cfg.node, logger });
    if (this.store.recovered) {
      logger.warn(
        { recovered: this.store.recovered },
        "replica was unreadable: moved aside, rebuilding from peers",
      );
    }
    this.store.setMeta("node", cfg.node);
    if (cfg.secretFile) this.secret = new Uint8Array(await readFile(cfg.secretFile));
    this.capabilities = await detectCapabilities(this.runner);
    for (const [name, cap] of Object.entries(this.capabilities)) {
      const level = cap.ok ? "info" : name === "xfrmEsp" ? "warn" : "error";
      logger[level](
        { capability: name, ok: cap.ok, message: cap.message },
        `capability ${name}: ${cap.ok ? "ok" : "missing"}`,
      );
    }
    this.rejectedTopology = new Counter({
      name: "kosmos_topology_rejected_total",
      help: "Topology pushes refused by validation",
      registers: [this.registry],
    });
    this.reconciler = new Reconciler({
      runner: this.runner,
      logger: this.rootLogger.child({ component: "dataplane" }),
    });
    this.loop = new ControlLoop({
      node: cfg.node,
      store: this.store,
      reconciler: this.reconciler,
      capabilities: this.capabilities,
      logger: this.rootLogger.child({ component: "loop" }),
      registry: this.registry,
      members: () => (this.planView ?? this.memberView)(),
      electionMembers: () => (this.electionView ?? this.planView ?? this.memberView)(),
      gatewayClaims: () => this.store.gatewayClaims(),
      onApplied: (p) => this.updateGatewayClaim(p),
      ipsecSecret: this.secret,
      debounceMs: cfg.debounceMs,
      resyncMs: cfg.resyncMs,
      kernelWatch: this.kernelWatchFactory(),
    });
    this.unsubscribe = this.store.onChange(() => this.loop.trigger("replica"));

    this.tls = await loadOrCreateTls({
      certFile: cfg.tlsCert,
      keyFile: cfg.tlsKey,
      stateDir: cfg.stateDir,
      commonName: cfg.node,
      hosts: cfg.listenHost && cfg.listenHost !== "0.0.0.0" ? [cfg.listenHost] : [],
    });
    await this.serve();
    this.gossip = this.startGossip();
    if (this.gossip) {
      const { views } = this.gossip;
      this.memberView = () => views.members();
      this.planView = () => views.planMembers();
      this.electionView = () => views.electionMembers();
    }
    this.publishStatus();
    this.loop.start();
    const journal = new SqliteJournal(this.store.db);
    void recoverWorkflows({
      journal,
      roots: cfg.uploadRoots,
      onEvent: (ev) => logger.info({ ev }, "workflow recovery"),
    }).catch((e) => logger.error({ err: e }, "workflow recovery failed"));
    logger.info(
      {
        endpoint: this.server?.url,
        adminSocket: this.adminSocket,
        fingerprint: this.tls.fingerprint,
        // "interpreter" when started like labs and the DaemonSet start it (internal/agent/runtime.ts)
        js: jsExecution(),
      },
      "agent started",
    );
  }

  private auth: AuthConfig = {};

  /** Gossip over the TLS port, when there is a secret and an address peers can reach. */
  private startGossip(): AgentGossip | undefined {
    if (!this.secret) {
      this.logger.warn(
        "no installation secret (--secret-file): gossip disabled, the agent relies on seeding only",
      );
      return undefined;
    }
    const selfUrl = this.endpoint;
    if (!selfUrl) {
      this.logger.warn("no TCP listener or --advertise URL: gossip disabled");
      return undefined;
    }
    return startGossip({
      node: this.cfg.node,
      secret: this.secret,
      selfUrl,
      seeds: this.cfg.seeds,
      store: this.store,
      logger: this.logger,
      registry: this.registry,
      trigger: (reason, delayMs) => this.loop.trigger(reason, delayMs),
    });
  }

  /** The narrow view the HTTP routes get of this agent (app.ts). */
  private api(): AgentApi {
    return {
      node: this.cfg.node,
      certFingerprint: this.tls.fingerprint,
      status: () => this.loop.status,
      reconcileNow: (reason) => this.loop.runNow(reason),
      state: () => this.state(),
      topology: () => this.store.snapshot(),
      liveMembers: () => this.gossip?.views.memberList(),
      storedMembers: () => this.store.listMembers(),
      ownerDigests: () => this.store.digest(),
      seed: (t) => this.seed(t),
      countRejectedTopology: () => this.rejectedTopology.inc(),
      uninstall: () => this.uninstall(),
    };
  }

  /**
   * Credentials from --auth-file, --token/KOSMOS_TOKEN and WEB_USER/WEB_PASS. Every token meets
   * the one strength rule (api/token.ts) or the agent does not start; the start-up log says what
   * was accepted and the rule. Short Basic passwords are accepted (upstream installs choose them)
   * with a warning: they can only be guessed online, against the rate limiter.
   */
  private async authConfig(): Promise<AuthConfig> {
    const cfg: AuthConfig = this.cfg.authFile ? await loadAuthConfig(this.cfg.authFile) : {};
    if (this.cfg.token !== undefined) {
      checkToken(this.cfg.token, "--token / KOSMOS_TOKEN");
      cfg.tokens = [...(cfg.tokens ?? []), this.cfg.token];
    }
    if (this.cfg.basicAuth) cfg.basic = [...(cfg.basic ?? []), this.cfg.basicAuth];
    const tokens = cfg.tokens?.length ?? 0;
    const basic = cfg.basic ?? [];
    this.logger.info(
      { tokens, basicUsers: basic.map((b) => b.user), tokenPolicy: TOKEN_POLICY },
      `auth: ${tokens} bearer token(s), each checked: at least ${TOKEN_MIN_LENGTH} characters; ${basic.length} Basic user(s)`,
    );
    for (const b of basic.filter((u) => [...u.password].length < TOKEN_MIN_LENGTH))
      this.logger.warn(
        { user: b.user },
        `Basic user ${b.user} has a password shorter than ${TOKEN_MIN_LENGTH} characters: it can be guessed online (5 tries per minute per address)`,
      );
    return cfg;
  }

  private async serve(): Promise<void> {
    const { cfg, logger } = this;
    const { websocket } = createBunWebSocket();
    const app = createAgentApp({
      api: this.api(),
      registry: this.registry,
      auth: this.auth,
      fingerprint: this.tls.fingerprint,
      logger,
      mounts: [
        createExecRoutes({
          audit: new SqliteAudit(this.store.db),
          journal: new SqliteJournal(this.store.db),
          roots: cfg.uploadRoots,
          logger: this.rootLogger.child({ component: "exec" }),
          registry: this.registry,
        }),
      ],
      // Mounted before gossip starts (it needs the listener's URL); frames wait for it.
      gossip: async (c, next) => {
        if (!this.gossip) return c.json({ code: "GOSSIP_OFF", message: "gossip is not running" }, 503);
        return this.gossip.route(c, next);
      },
    });
    this.server = await startServer({
      app,
      websocket,
      tcp: cfg.listenHost
        ? { hostname: cfg.listenHost, port: cfg.listenPort, tls: { cert: this.tls.cert, key: this.tls.key } }
        : undefined,
      unixSocket: this.adminSocket,
      logger: this.rootLogger.child({ component: "api" }),
    });
  }

  get endpoint(): string | undefined {
    return this.cfg.advertiseUrl ?? this.server?.url;
  }

  private claim: { gatewayFor?: string; gatewaySince?: number } = {};
  private readonly startedAt = Date.now();

  /** Publish (or withdraw) this node's gateway claim so every agent agrees on the active gateway. */
  private updateGatewayClaim(p: HostState): void {
    const elected = p.gateways[p.cluster] === this.cfg.node;
    // A freshly started agent may not have heard the fleet's newer claims yet (it was down or cut
    // off): claiming at once would win (newest claim) and move the gateway back. Wait for gossip.
    // Unless no other candidate is alive: then there is no newer claim to have missed.
    const settling = Date.now() - this.startedAt < CLAIM_SETTLE_MS && this.otherCandidateAlive(p.cluster);
    if (elected && this.claim.gatewayFor !== p.cluster && !settling) {
      this.claim = { gatewayFor: p.cluster, gatewaySince: Date.now() };
      this.logger.info({ cluster: p.cluster }, "active gateway: claim published");
      this.publishStatus(this.clusterPeers(p.cluster));
    } else if (!elected && this.claim.gatewayFor !== undefined) {
      this.claim = {};
      this.logger.info({ cluster: p.cluster }, "no longer the active gateway: claim withdrawn");
      this.publishStatus(this.clusterPeers(p.cluster));
    }
  }

  /** The other nodes of `cluster` (they route through its gateway, and may reach only their LAN). */
  private clusterPeers(cluster: string): string[] {
    return this.store
      .snapshot()
      .nodes.filter((n) => n.cluster === cluster && n.name !== this.cfg.node)
      .map((n) => n.name);
  }

  /** Another gateway candidate of `cluster` is alive or suspect in the election view. */
  private otherCandidateAlive(cluster: string): boolean {
    const view = (this.electionView ?? this.memberView)();
    return this.store
      .snapshot()
      .nodes.some(
        (n) =>
          n.cluster === cluster && n.gatewayCandidate && n.name !== this.cfg.node && isAlive(view, n.name),
      );
  }

  /** Write this node's status row and gossip it; `direct`: members to push it to at once as well. */
  private publishStatus(direct: readonly string[] = []): void {
    try {
      const row = this.store.writeLocal("node_status", this.cfg.node, {
        ...this.claim,
        name: this.cfg.node,
        endpoint: this.endpoint,
        certFingerprint: this.tls.fingerprint,
        agentVersion: AGENT_VERSION,
        startedAt: Date.now(),
      });
      if (row) this.gossip?.publish([row], direct);
    } catch (e) {
      this.logger.warn({ err: e }, "could not publish node status");
    }
  }

  /** Seed (controller-owned) topology: replaces the controller's rows; returns how many changed. */
  /** Raw SWIM liveness (what elections use): consumers that must drop dead nodes at once (DNS). */
  livenessView(): Record<string, MemberState> {
    return (this.electionView ?? this.planView ?? this.memberView)();
  }

  seed(topology: Topology): number {
    const rows = this.store.seed(topology);
    this.gossip?.publish(rows);
    return rows.length;
  }

  /** Graceful leave: tell peers (gossip "left"), then remove everything this agent owns. */
  async uninstall(): Promise<ApplyReport> {
    await this.gossip?.leave();
    await this.loop.stop();
    const report = await this.reconciler.uninstall();
    this.logger.info({ removed: report.applied, errors: report.errors.length }, "uninstalled kernel state");
    return report;
  }

  /** `kosmos-agent --uninstall`: remove everything Kosmos owns from this node's kernel, no server. */
  async uninstallOnly(): Promise<ApplyReport> {
    const reconciler = new Reconciler({
      runner: this.runner,
      logger: this.rootLogger.child({ component: "dataplane" }),
    });
    return reconciler.uninstall();
  }

  state(): AgentState {
    const s = this.loop.status;
    const topo = this.store.snapshot();
    return {
      node: this.cfg.node,
      cluster: topo.nodes.find((n) => n.name === this.cfg.node)?.cluster,
      version: AGENT_VERSION,
      ready: s.applied,
      waiting: s.waiting,
      lastError: s.lastError,
      planHash: s.planHash,
      lastRunAt: s.lastRunAt,
      runs: s.runs,
      reconciling: !this.loop.stopped,
      capabilities: this.capabilities,
      ipsec: s.lastReport?.ipsec,
      gateways: s.plan?.gateways ?? {},
      members: this.memberView(),
      counts: {
        clusters: topo.clusters.length,
        nodes: topo.nodes.length,
        routes: s.plan?.routes.length ?? 0,
        fdb: s.plan?.fdb.length ?? 0,
      },
      endpoint: this.endpoint,
      adminSocket: this.adminSocket,
      certFingerprint: this.tls.fingerprint,
      storeRecovered: this.store.recovered !== null,
      warnings: s.plan?.warnings ?? [],
    };
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.gossip?.stop();
    await this.loop?.stop();
    if (this.cfg.uninstallOnExit && this.reconciler) await this.reconciler.uninstall();
    await this.server?.stop();
    this.store?.close();
    this.logger.info("agent stopped");
  }
}
