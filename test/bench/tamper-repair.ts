/**
 * Tamper-repair latency and idle cost of the kernel watcher (docs/operations.md, "Tamper repair").
 * Not part of `bun run bench` (it needs root and takes ~3 minutes): `bun test/bench/tamper-repair.ts`.
 *
 * One ControlLoop with the real Reconciler in a test namespace (two-node P2P plan), default 10 s
 * resync. (a) With the watcher and (b) resync only: delete the owned pod route N times and time
 * until it is back (polled every 10 ms). Idle CPU: the test process's CPU (the loop runs in it) plus
 * the monitors' CPU (/proc) over an idle window, with and without the watcher, interleaved.
 */
import type { ControlLoop } from "../../internal/agent/loop.ts";
import { KernelWatcher } from "../../internal/dataplane/watch.ts";
import { openStore } from "../../internal/store/index.ts";
import { loopOn, makePair, NODES, PAIR_TOPOLOGY } from "../dataplane/fixtures.ts";
import { execHost, type Netns, NetnsScope } from "../helpers/netns.ts";
import { cpuMs } from "./lib.ts";

const N = Number(process.env.N ?? 10);
const IDLE_MS = Number(process.env.IDLE_MS ?? 20_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function withLoop<T>(a: Netns, watch: boolean, fn: (loop: ControlLoop) => Promise<T>): Promise<T> {
  const store = await openStore(":memory:", { node: "n1" });
  store.seed(PAIR_TOPOLOGY);
  const loop = await loopOn(a, store, {
    resyncMs: 10_000,
    kernelWatch: watch ? (onEvent) => new KernelWatcher({ onEvent, prefix: a.prefix() }) : undefined,
  });
  loop.start();
  try {
    while (!loop.status.applied) await sleep(20);
    await sleep(2000);
    return await fn(loop);
  } finally {
    await loop.stop();
    store.close();
  }
}

async function repairTimes(a: Netns, loop: ControlLoop): Promise<number[]> {
  const table = String(loop.status.plan?.table);
  const out: number[] = [];
  for (let i = 0; i < N; i++) {
    await a.exec(["ip", "route", "del", NODES[2].pod4, "table", table]);
    const t0 = performance.now();
    for (;;) {
      const r = await a.exec(["ip", "route", "show", "table", table, "proto", "75"], { allowFail: true });
      if (r.stdout.includes(NODES[2].pod4)) break;
      await sleep(10);
    }
    out.push(performance.now() - t0);
    await sleep(700 + Math.random() * 600);
  }
  return out;
}

async function idleCpu(a: Netns): Promise<number> {
  const pids = (await execHost(["ip", "netns", "pids", a.name])).stdout
    .split("\n")
    .filter(Boolean)
    .map(Number);
  const c0 = process.cpuUsage();
  const k0 = pids.reduce((s, p) => s + cpuMs(p), 0);
  await sleep(IDLE_MS);
  const c1 = process.cpuUsage(c0);
  const k1 = pids.reduce((s, p) => s + cpuMs(p), 0);
  return ((c1.user + c1.system) / 1000 + (k1 - k0)) / (IDLE_MS / 1000);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};
const fmt = (xs: number[]) =>
  `median ${median(xs).toFixed(0)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)}, n=${xs.length})`;

const scope = new NetnsScope();
try {
  const { a } = await makePair(scope);
  const watched = await withLoop(a, true, (l) => repairTimes(a, l));
  console.log(`repair with watcher:  ${fmt(watched)}`);
  const resync = await withLoop(a, false, (l) => repairTimes(a, l));
  console.log(`repair resync only:   ${fmt(resync)}`);
  const idle: Record<string, number[]> = { watch: [], resync: [] };
  for (let round = 0; round < 2; round++) {
    for (const mode of round % 2 === 0 ? ["resync", "watch"] : ["watch", "resync"]) {
      idle[mode]?.push(await withLoop(a, mode === "watch", () => idleCpu(a)));
    }
  }
  console.log(
    `idle CPU (loop process + monitors, ${IDLE_MS / 1000} s windows, 10 s resync): watcher ${idle.watch?.map((x) => x.toFixed(1)).join(", ")} ms/s; resync only ${idle.resync?.map((x) => x.toFixed(1)).join(", ")} ms/s`,
  );
} finally {
  await scope.cleanup();
}
