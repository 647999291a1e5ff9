#!/usr/bin/env bun
/** kosmos-agent: the per-node daemon. Flags and environment -> AgentConfig -> Agent. No logic here. */
import { Command, Option } from "commander";
import { AGENT_VERSION, Agent, webCredentials } from "../internal/agent/index.ts";

const collect = (v: string, prev: string[]) => [...prev, v];

const program = new Command("kosmos-agent")
  .description(
    "Kosmos node agent: keeps a SQLite replica of the topology, gossips it, programs this node's kernel",
  )
  .version(AGENT_VERSION)
  .addOption(new Option("--node <name>", "this node's name").env("KOSMOS_NODE_NAME").makeOptionMandatory())
  .addOption(
    new Option("--data-dir <dir>", "state directory (replica, TLS, socket)")
      .env("KOSMOS_DATA_DIR")
      .default("/var/lib/kosmos"),
  )
  .addOption(new Option("--db <file>", "SQLite replica file (default <data-dir>/kosmos.db)"))
  .addOption(
    new Option("--listen <host:port>", "TLS API listener ('' to disable TCP)")
      .env("KOSMOS_LISTEN")
      .default("0.0.0.0:5678"),
  )
  .addOption(new Option("--advertise <url>", "URL peers reach this agent at").env("KOSMOS_ADVERTISE_URL"))
  .addOption(
    new Option("--admin-socket <path>", "plain-HTTP admin unix socket (default <data-dir>/agent.sock)"),
  )
  .addOption(new Option("--token <token>", "bearer token accepted by the API").env("KOSMOS_TOKEN"))
  .addOption(
    new Option(
      "--auth-file <file>",
      "credentials file ({tokens: [...], basic: [{user, password}]}); WEB_USER/WEB_PASS add a Basic user",
    ),
  )
  .addOption(
    new Option("--secret-file <file>", "installation secret (gossip HMAC, IPsec keys)").env(
      "KOSMOS_SECRET_FILE",
    ),
  )
  .addOption(new Option("--seed <url>", "gossip seed agent URL (repeatable)").argParser(collect).default([]))
  .addOption(
    new Option("--upload-root <dir>", "directory uploads may write into (repeatable)")
      .argParser(collect)
      .default([]),
  )
  .addOption(new Option("--resync <ms>", "periodic resync interval").argParser(Number).default(10_000))
  .option("--no-watch-kernel", "do not watch the kernel for tampering (repair waits for the resync)")
  .addOption(new Option("--log-level <level>", "pino level").env("KOSMOS_LOG_LEVEL").default("info"))
  .option("--uninstall-on-exit", "remove everything the agent owns from the kernel when stopping", false)
  .option("--uninstall", "remove everything the agent owns from the kernel, then exit", false)
  .addOption(
    new Option(
      "--dns-listen <host:port>",
      "serve clusterset.local (multi-cluster services) on this node-local address, e.g. 169.254.20.11:53",
    ).env("KOSMOS_DNS_LISTEN"),
  )
  .addOption(
    new Option(
      "--dns-upstream <host:port>",
      "where other names are forwarded (repeatable; default: nameservers of /etc/resolv.conf)",
    )
      .argParser(collect)
      .default([]),
  );

program.parse();
const o = program.opts<{
  node: string;
  dataDir: string;
  db?: string;
  listen: string;
  advertise?: string;
  adminSocket?: string;
  token?: string;
  authFile?: string;
  secretFile?: string;
  seed: string[];
  uploadRoot: string[];
  resync: number;
  watchKernel: boolean;
  logLevel: string;
  uninstallOnExit: boolean;
  uninstall: boolean;
  dnsListen?: string;
  dnsUpstream: string[];
}>();

const idx = o.listen.lastIndexOf(":");
const listenHost = o.listen ? o.listen.slice(0, idx).replace(/^\[|\]$/g, "") : "";
const listenPort = o.listen ? Number(o.listen.slice(idx + 1)) : 0;

let basicAuth: ReturnType<typeof webCredentials>;
try {
  basicAuth = webCredentials(process.env);
} catch (e) {
  console.error(`kosmos-agent: ${(e as Error).message}`);
  process.exit(2);
}

const agent = new Agent({
  node: o.node,
  stateDir: o.dataDir,
  db: o.db,
  listenHost,
  listenPort,
  advertiseUrl: o.advertise,
  adminSocket: o.adminSocket,
  token: o.token,
  authFile: o.authFile,
  basicAuth,
  secretFile: o.secretFile,
  seeds: o.seed,
  uploadRoots: o.uploadRoot,
  resyncMs: o.resync,
  watchKernel: o.watchKernel,
  logLevel: o.logLevel,
  uninstallOnExit: o.uninstallOnExit,
});

if (o.uninstall) {
  const report = await agent.uninstallOnly();
  console.log(JSON.stringify({ removed: report.applied, errors: report.errors }));
  process.exit(report.errors.length ? 1 : 0);
}

try {
  await agent.start();
} catch (e) {
  agent.logger.fatal({ err: e }, "agent failed to start");
  // and one plain line for whoever started it (config errors carry a hint)
  const hint = (e as { hint?: unknown }).hint;
  console.error(
    `kosmos-agent: ${(e as Error).message}${typeof hint === "string" && hint ? `\nhint: ${hint}` : ""}`,
  );
  process.exit(1);
}
await Bun.write(`${o.dataDir}/agent.pid`, `${process.pid}\n`);
// Multi-cluster services DNS (docs/services.md): answered from this agent's replica. Loaded only
// when asked for: an agent without --dns-listen does not pay for the DNS code (~1-2 MB of RSS).
const dnsModule = o.dnsListen ? await import("../internal/dns/index.ts") : undefined;
const dns =
  o.dnsListen && dnsModule
    ? await dnsModule.startAgentDns(
        { node: o.node, store: agent.store, liveness: () => agent.livenessView() },
        {
          listen: o.dnsListen,
          ...(o.dnsUpstream.length
            ? { upstreams: o.dnsUpstream.map((u) => dnsModule.parseHostPort(u)) }
            : {}),
          logger: agent.logger.child({ component: "dns" }),
        },
      )
    : undefined;

let stopping = false;
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, async () => {
    if (stopping) return;
    stopping = true;
    agent.logger.info({ signal: sig }, "stopping");
    await dns?.stop();
    await agent.stop();
    process.exit(0);
  });
}
