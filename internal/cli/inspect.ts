/** `kosmosctl inspect`: members, replica versions and this node's plan, from a SQLite file or a live agent. */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command, Option } from "commander";
import { AgentClient, type AgentTarget } from "../exec/index.ts";
import { plan as planNode } from "../planner/index.ts";
import { type OwnerDigest, openStore, snapshotReplica } from "../store/index.ts";
import { type OutputFormat, parseOutput, printData, renderTable } from "./output.ts";

interface InspectData {
  node: string;
  members: Array<{
    name: string;
    state: string;
    incarnation: number;
    address?: string;
    updatedAt?: number;
    /** live view: heard from (false: known from the replica only, incarnation not known yet) */
    confirmed?: boolean;
  }>;
  owners: Array<{ owner: string; rows: number; maxVersion: number; hash: string }>;
  clusters: Array<{ name: string; networkType: string; ipFamily: string; podCIDRs: string[] }>;
  nodes: number;
  plan?: { routes: Array<{ dst: string; via: string; dev: string }>; devices: string[]; warnings: string[] };
  applied?: { planHash: string; appliedAt: string };
  /** A live agent's certificate (what `--fingerprint` pins). */
  certFingerprint?: string;
}

/**
 * Read a consistent snapshot of a live agent's replica without writing to it: `VACUUM INTO` a temp
 * copy through a read-only connection, then open the copy (openStore may migrate or repair files).
 */
async function snapshotDb(file: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  if (!existsSync(file)) throw Object.assign(new Error(`no such file: ${file}`), { hint: "the agent's replica is <data-dir>/kosmos.db" });
  const dir = await mkdtemp(join(tmpdir(), "kosmos-inspect-"));
  const copy = join(dir, "snapshot.db");
  try {
    await snapshotReplica(file, copy);
  } catch (e) {
    throw Object.assign(new Error(`cannot read ${file}: ${(e as Error).message}`), { hint: "is it a Kosmos replica?" });
  }
  return { path: copy, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

async function fromDb(file: string, nodeOverride?: string): Promise<InspectData> {
  const snap = await snapshotDb(file);
  const store = await openStore(snap.path, { node: nodeOverride ?? "kosmosctl-inspect" });
  try {
    const node = nodeOverride ?? store.getMeta("node") ?? "";
    const topo = store.snapshot();
    let p: InspectData["plan"];
    try {
      const members = Object.fromEntries(store.listMembers().map((m) => [m.name, m.state]));
      const hs = planNode({ topology: topo, self: node, members });
      p = {
        routes: hs.routes.map((r) => ({ dst: r.dst, via: r.via, dev: r.dev })),
        devices: hs.devices.map((d) => `${d.name} ${d.address}`),
        warnings: hs.warnings,
      };
    } catch {
      p = undefined;
    }
    const applied = store.loadApplied();
    return {
      node,
      members: store.listMembers(),
      owners: store.digest().map((d) => ({ owner: d.owner, rows: d.count, maxVersion: d.maxVersion, hash: d.hash })),
      clusters: topo.clusters.map((c) => ({ name: c.name, networkType: c.networkType, ipFamily: c.ipFamily, podCIDRs: c.podCIDRs })),
      nodes: topo.nodes.length,
      plan: p,
      applied: applied ? { planHash: applied.planHash, appliedAt: new Date(applied.appliedAt).toISOString() } : undefined,
    };
  } finally {
    store.close();
    await snap.cleanup();
  }
}

/**
 * A live agent through the exec client: the admin socket, or TLS where the agent first proves its
 * certificate with the token (api/identity.ts) or matches `fingerprint`; the token is only sent
 * over a connection to that certificate.
 */
async function fromAgent(target: AgentTarget): Promise<InspectData> {
  const client = new AgentClient(target);
  const get = async (path: string): Promise<unknown> => {
    const r = await client.request(path);
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
    return r.json();
  };
  const replica = (await get("/v1/replica")) as {
    node: string;
    certFingerprint: string;
    members: InspectData["members"];
    owners: OwnerDigest[];
  };
  const topo = (await get("/v1/topology")) as { clusters: InspectData["clusters"]; nodes: unknown[] };
  let p: InspectData["plan"];
  try {
    const hs = (await get("/v1/plan")) as {
      routes: Array<{ dst: string; via: string; dev: string }>;
      devices: Array<{ name: string; address: string }>;
      warnings: string[];
    };
    p = { routes: hs.routes, devices: hs.devices.map((d) => `${d.name} ${d.address}`), warnings: hs.warnings };
  } catch {
    p = undefined;
  }
  return {
    node: replica.node,
    members: replica.members,
    owners: replica.owners.map((d) => ({ owner: d.owner, rows: d.count, maxVersion: d.maxVersion, hash: d.hash })),
    clusters: topo.clusters.map((c) => ({ name: c.name, networkType: c.networkType, ipFamily: c.ipFamily, podCIDRs: c.podCIDRs })),
    nodes: topo.nodes.length,
    plan: p,
    certFingerprint: replica.certFingerprint,
  };
}

interface InspectOptions {
  db?: string;
  agent?: string;
  node?: string;
  token?: string;
  fingerprint?: string;
  output: OutputFormat;
}

export function inspectCommand(): Command {
  return new Command("inspect")
    .description("show an agent's replica: members, per-owner versions, clusters, and the plan for its node")
    .option("--db <file>", "the agent's SQLite replica (read directly)")
    .option("--agent <url>", "a live agent: https://host:port or unix:/path.sock")
    .option("--node <name>", "plan for this node instead of the replica's own")
    .addOption(new Option("--token <token>", "bearer token").env("KOSMOS_TOKEN"))
    .option("--fingerprint <sha256>", "pin the agent certificate (default: the agent proves it with the token)")
    .addOption(new Option("-o, --output <format>", "table | json | yaml").default("table").argParser(parseOutput))
    .action(async (o: InspectOptions) => {
      if (!o.db && !o.agent) throw Object.assign(new Error("give --db FILE or --agent URL"), { hint: "kosmosctl inspect --db /var/lib/kosmos/kosmos.db" });
      const data = o.db
        ? await fromDb(o.db, o.node)
        : await fromAgent({ url: o.agent as string, token: o.token, fingerprint: o.fingerprint });
      printData(o.output, data, () => {
        const parts: string[] = [`node: ${data.node}   clusters: ${data.clusters.length}   nodes: ${data.nodes}`];
        if (data.applied) parts.push(`last applied plan ${data.applied.planHash} at ${data.applied.appliedAt}`);
        if (data.certFingerprint) parts.push(`certificate sha256 ${data.certFingerprint}`);
        parts.push(
          renderTable(["MEMBER", "STATE", "INCARNATION", "ADDRESS"], data.members.map((m) => [m.name, m.state, m.incarnation, m.address ?? ""])),
        );
        if (data.owners.length)
          parts.push(renderTable(["OWNER", "ROWS", "MAX VERSION", "DIGEST"], data.owners.map((d) => [d.owner, d.rows, d.maxVersion, d.hash])));
        if (data.plan) {
          parts.push(`devices: ${data.plan.devices.join(", ") || "(none)"}`);
          parts.push(renderTable(["ROUTE", "VIA", "DEV"], data.plan.routes.map((r) => [r.dst, r.via, r.dev])));
          for (const w of data.plan.warnings) parts.push(`warning: ${w}`);
        }
        return parts.join("\n");
      });
    });
}
