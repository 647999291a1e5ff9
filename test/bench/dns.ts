/**
 * DNS bench: queries/s and p50/p99 latency of the agent's clusterset.local server on loopback UDP,
 * 1,000 imported services, 20,000 queries with 64 in flight — against dnsmasq (issue 15's baseline)
 * answering the same 1,000 names from a hosts file, with the same client in the same run. Each
 * server runs in its own process (the agent's: this file with `--serve`), the client here; the two
 * are measured alternately, 3 rounds each, and the median round is reported. dnsmasq comes from
 * the Debian package dnsmasq-base: when it is missing the bench installs it with apt-get (and says
 * so); without it the rows carry no baseline. Also: the pure resolver alone (what the socket and
 * the event loop cost on top). A module of `bun run bench`; standalone: `bun test/bench/dns.ts`
 * (prints JSON).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import * as dnsPacket from "dns-packet";
import { buildZone, handleQuery, startDnsServer } from "../../internal/dns/index.ts";
import type { Topology } from "../../internal/topology/index.ts";
import type { BenchResult } from "./lib.ts";

const N = 1000;
const TOTAL = 20_000;
const INFLIGHT = 64;
const ROUNDS = 3;

const nameOf = (i: number) => `s${i % N}.demo.svc.clusterset.local`;
const ipOf = (i: number) => `241.0.${i >> 8}.${i & 255}`;

function topology(): Topology {
  return {
    clusters: [],
    nodes: [],
    serviceImports: Array.from({ length: N }, (_, i) => ({
      name: `demo/s${i}`,
      namespace: "demo",
      service: `s${i}`,
      type: "ClusterSetIP" as const,
      ips: [ipOf(i)],
      ports: [{ name: "http", port: 80, protocol: "TCP" as const }],
      sessionAffinity: "None" as const,
      clusters: ["c1"],
    })),
    serviceEndpoints: [],
  };
}

const query = (i: number) =>
  dnsPacket.encode({
    type: "query",
    id: i & 0xffff,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: "A", name: nameOf(i) }],
  });

interface Load {
  qps: number;
  p50ms: number;
  p99ms: number;
  /** Replies whose answer was not the name's address (must be 0). */
  wrong: number;
}

/** TOTAL queries to 127.0.0.1:port, INFLIGHT at a time; every reply's A record is checked. */
async function load(port: number): Promise<Load> {
  const sent = new Map<number, { at: number; i: number }>();
  const lat: number[] = [];
  let next = 0;
  let wrong = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  type Sock = import("bun").udp.Socket<"buffer">;
  const send = (s: Sock): void => {
    const i = next++;
    sent.set(i & 0xffff, { at: performance.now(), i });
    s.send(query(i), port, "127.0.0.1");
  };
  const sock: Sock = await Bun.udpSocket<"buffer">({
    socket: {
      data(s, d) {
        const p = dnsPacket.decode(Buffer.from(d));
        const q = sent.get(p.id ?? -1);
        if (q === undefined) return;
        lat.push(performance.now() - q.at);
        sent.delete(p.id ?? -1);
        const a = p.answers?.[0];
        if (a?.type !== "A" || a.data !== ipOf(q.i % N)) wrong++;
        if (lat.length >= TOTAL) done();
        else if (next < TOTAL) send(s as Sock);
      },
    },
  });
  try {
    const t0 = performance.now();
    for (let i = 0; i < INFLIGHT; i++) send(sock);
    await finished;
    const secs = (performance.now() - t0) / 1000;
    lat.sort((a, b) => a - b);
    return {
      qps: Math.round(TOTAL / secs),
      p50ms: +lat[Math.floor(lat.length * 0.5)]!.toFixed(3),
      p99ms: +lat[Math.floor(lat.length * 0.99)]!.toFixed(3),
      wrong,
    };
  } finally {
    sock.close();
  }
}

/** A free UDP port on 127.0.0.1 (bound, read, released). */
async function freePort(): Promise<number> {
  const s = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
  const p = s.port;
  s.close();
  return p;
}

/** Until a server on `port` answers the first name (a started process is not yet a listening one). */
async function answering(port: number, proc: ReturnType<typeof Bun.spawn>): Promise<void> {
  for (let k = 0; k < 200; k++) {
    if (proc.exitCode !== null) throw new Error(`DNS server exited ${proc.exitCode}`);
    const r = await Promise.race([load1(port), Bun.sleep(100).then(() => false)]);
    if (r) return;
  }
  throw new Error(`no DNS answer on 127.0.0.1:${port} in 20 s`);
}

async function load1(port: number): Promise<boolean> {
  const got = Promise.withResolvers<boolean>();
  const s = await Bun.udpSocket<"buffer">({ socket: { data: () => got.resolve(true) } });
  s.send(query(0), port, "127.0.0.1");
  const ok = await Promise.race([got.promise, Bun.sleep(90).then(() => false)]);
  s.close();
  return ok;
}

/** The dnsmasq binary, installed with apt-get when missing (undefined when that fails). */
function dnsmasq(): string | undefined {
  const found = Bun.which("dnsmasq") ?? Bun.which("dnsmasq", { PATH: "/usr/sbin:/sbin" });
  if (found) return found;
  process.stderr.write("dns bench: dnsmasq is missing; installing Debian's dnsmasq-base with apt-get\n");
  const r = Bun.spawnSync(["apt-get", "install", "-y", "-q", "dnsmasq-base"], {
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    stdout: "ignore",
    stderr: "pipe",
  });
  if (r.exitCode !== 0) process.stderr.write(`dns bench: apt-get failed: ${r.stderr.toString().trim()}\n`);
  return Bun.which("dnsmasq", { PATH: "/usr/sbin:/sbin:/usr/bin" }) ?? undefined;
}

interface Server {
  port: number;
  stop(): Promise<void>;
}

async function stopProcess(proc: ReturnType<typeof Bun.spawn>): Promise<void> {
  proc.kill();
  await proc.exited;
}

async function startAgentServer(): Promise<Server> {
  const port = await freePort();
  const proc = Bun.spawn([process.execPath, import.meta.path, "--serve", String(port)], {
    stdout: "ignore",
    stderr: "inherit",
  });
  await answering(port, proc);
  return { port, stop: () => stopProcess(proc) };
}

async function startDnsmasq(bin: string, dir: string): Promise<Server> {
  const hosts = join(dir, "hosts");
  writeFileSync(hosts, Array.from({ length: N }, (_, i) => `${ipOf(i)} ${nameOf(i)}\n`).join(""));
  const port = await freePort();
  const proc = Bun.spawn(
    [
      bin,
      "--keep-in-foreground",
      "--conf-file=/dev/null",
      "--pid-file=",
      "--user=root",
      `--port=${port}`,
      "--listen-address=127.0.0.1",
      "--bind-interfaces",
      "--no-resolv",
      "--no-hosts",
      `--addn-hosts=${hosts}`,
    ],
    { stdout: "ignore", stderr: "inherit" },
  );
  await answering(port, proc);
  return { port, stop: () => stopProcess(proc) };
}

const median = (xs: Load[]): Load => [...xs].sort((a, b) => a.qps - b.qps)[Math.floor(xs.length / 2)]!;

interface DnsFigures {
  services: number;
  pureResolveQps: number;
  agent: Load;
  dnsmasq?: Load;
  loadavg: number[];
}

export async function measure(): Promise<DnsFigures> {
  const zone = buildZone(topology(), "c1");
  const msgs = Array.from({ length: 1000 }, (_, i) => query(i));
  const t0 = performance.now();
  for (let r = 0; r < 20; r++) for (const m of msgs) handleQuery(m, zone, "udp");
  const pureQps = 20_000 / ((performance.now() - t0) / 1000);

  const bin = dnsmasq();
  const dir = mkdtempSync(join(tmpdir(), "kosmos-dns-bench-"));
  const agent = await startAgentServer();
  const base = bin
    ? await startDnsmasq(bin, dir).catch((e: Error) => {
        process.stderr.write(`dns bench: dnsmasq: ${e.message}\n`);
        return undefined;
      })
    : undefined;
  const rounds: { agent: Load[]; dnsmasq: Load[] } = { agent: [], dnsmasq: [] };
  try {
    for (let r = 0; r < ROUNDS; r++) {
      rounds.agent.push(await load(agent.port));
      if (base) rounds.dnsmasq.push(await load(base.port));
    }
  } finally {
    await agent.stop();
    await base?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    services: N,
    pureResolveQps: Math.round(pureQps),
    agent: median(rounds.agent),
    ...(base ? { dnsmasq: median(rounds.dnsmasq) } : {}),
    loadavg: loadavg().map((x) => +x.toFixed(1)),
  };
}

export async function run(): Promise<BenchResult[]> {
  const f = await measure();
  const base = (v: number | undefined) =>
    v === undefined ? {} : { baseline: { name: "dnsmasq, same names from a hosts file", value: v } };
  const wrong = f.agent.wrong + (f.dnsmasq?.wrong ?? 0);
  return [
    {
      name: `DNS queries/s over loopback UDP (${f.services} names, ${INFLIGHT} in flight, median of ${ROUNDS}; load ${f.loadavg[0]})`,
      value: f.agent.qps,
      unit: "q/s",
      ...base(f.dnsmasq?.qps),
      ...(wrong ? { ok: false, target: "every answer right" } : {}),
    },
    { name: "DNS query latency p50 (UDP)", value: f.agent.p50ms, unit: "ms", ...base(f.dnsmasq?.p50ms) },
    { name: "DNS query latency p99 (UDP)", value: f.agent.p99ms, unit: "ms", ...base(f.dnsmasq?.p99ms) },
    { name: "DNS pure resolver, no socket", value: f.pureResolveQps, unit: "q/s" },
  ];
}

if (import.meta.main) {
  const i = process.argv.indexOf("--serve");
  if (i >= 0) {
    const zone = buildZone(topology(), "c1");
    await startDnsServer({
      address: "127.0.0.1",
      port: Number(process.argv[i + 1]),
      zone: () => zone,
      rateLimit: { qps: 1e9, burst: 1e9 },
    });
  } else console.log(JSON.stringify(await measure()));
}
