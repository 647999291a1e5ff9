import type { Runner } from "../sys/index.ts";
import { KOSMOS_NFT_TABLE, KOSMOS_ROUTE_PROTO, type VxlanDevice } from "./hoststate.ts";
import { renderNftDelete } from "./nft.ts";
import { canonicalNftListing } from "./nft-services.ts";
import { canonCidr, ZERO_MAC } from "./normalize.ts";
import { redactKeys } from "./redact.ts";
import type { ApplyError, ApplyReport, Change, ChangeKind } from "./types.ts";

/** One command of an apply: an argv, optionally with batch lines fed on stdin. */
export interface Step {
  argv: string[];
  /** Batch lines (for `ip -batch -` / `bridge -batch -`), each tagged with the change it serves. */
  lines?: Array<{ text: string; kind: ChangeKind }>;
  /** Whole-input script (nft) and the change kind it serves. */
  script?: { text: string; kind: ChangeKind };
  /** A single (non-batch) command serving one change. */
  single?: { text: string; kind: ChangeKind };
  /** xfrm batch: `ip` aborts it at the first error, so apply retries it line by line. */
  xfrm?: boolean;
}

const P = String(KOSMOS_ROUTE_PROTO);

function deviceAddLines(d: VxlanDevice): string[] {
  const parent = d.parent ? ` dev ${d.parent}` : "";
  return [
    `link add ${d.name} address ${d.mac} mtu ${d.mtu} type vxlan id ${d.vni} dstport ${d.port} local ${d.local}${parent} nolearning`,
    `addr replace ${canonCidr(d.address)} dev ${d.name}`,
    `link set ${d.name} up`,
  ];
}

/**
 * Pure: order changes into a few batched commands. Order (crash-safe: every step is idempotent and
 * the next pass re-reads the kernel, so a kill at any point converges):
 *   1. sysctls   2. ip batch: devices (recreate/add/update), neighbours, routes, v4 rules, then
 *   deletions of routes/rules/neighbours   3. ip -6 batch: v6 rules   4. bridge batch: fdb adds, dels
 *   5. nft -f (atomic table replacement)   6. ip batch: xfrm policies (fail closed) then states
 *   7. ip batch: deletion of devices no longer wanted (last, they take their objects along).
 */
export function planSteps(changes: Change[]): Step[] {
  const b: Buckets = {
    sys: [],
    devOrder: [],
    neigh: [],
    routes: [],
    ip: [],
    ipDel: [],
    ip6: [],
    br: [],
    brDel: [],
    xfrm: [],
    xfrmDel: [],
    links: [],
  };
  for (const c of changes) bucketChange(c, b);
  return stepsOf(b);
}

type Line = { text: string; kind: ChangeKind };

/** The lines of each command of an apply, filled change by change (planSteps). */
interface Buckets {
  sys: string[];
  devOrder: Line[];
  neigh: Line[];
  routes: Line[];
  ip: Line[];
  ipDel: Line[];
  ip6: Line[];
  br: Line[];
  brDel: Line[];
  xfrm: Line[];
  xfrmDel: Line[];
  links: Line[];
  nft?: Step["script"];
}

function bucketChange(c: Change, b: Buckets): void {
  switch (c.kind) {
    case "sysctl-set":
      b.sys.push(`${c.sysctl.key}=${c.sysctl.value}`);
      break;
    case "nft-apply":
      b.nft = { text: c.script, kind: c.kind };
      break;
    case "nft-delete":
      b.nft = { text: renderNftDelete(), kind: c.kind };
      break;
    case "device-add":
    case "device-recreate":
    case "device-update":
    case "device-del":
      bucketDevice(c, b);
      break;
    case "neigh-replace":
    case "neigh-del":
    case "route-replace":
    case "route-del":
    case "rule-add":
    case "rule-del":
      bucketIpObject(c, b);
      break;
    case "fdb-add":
    case "fdb-del":
      bucketFdb(c, b);
      break;
    case "xfrm-policy-add":
    case "xfrm-policy-del":
    case "xfrm-state-add":
    case "xfrm-state-del":
      bucketXfrm(c, b);
      break;
  }
}

/** Device changes: recreate/add/update lines first in the main ip batch; deletions in the last batch. */
function bucketDevice(c: Extract<Change, { kind: `device-${string}` }>, b: Buckets): void {
  switch (c.kind) {
    case "device-add":
      for (const t of deviceAddLines(c.device)) b.devOrder.push({ text: t, kind: c.kind });
      break;
    case "device-recreate":
      b.devOrder.push({ text: `link del ${c.device.name}`, kind: c.kind });
      for (const t of deviceAddLines(c.device)) b.devOrder.push({ text: t, kind: c.kind });
      break;
    case "device-update": {
      const d = c.device;
      if (c.set.mtu) b.devOrder.push({ text: `link set ${d.name} mtu ${d.mtu}`, kind: c.kind });
      if (c.set.mac) b.devOrder.push({ text: `link set ${d.name} address ${d.mac}`, kind: c.kind });
      if (c.set.nolearning)
        b.devOrder.push({ text: `link set ${d.name} type vxlan nolearning`, kind: c.kind });
      for (const a of c.delAddresses) b.devOrder.push({ text: `addr del ${a} dev ${d.name}`, kind: c.kind });
      if (c.set.address)
        b.devOrder.push({ text: `addr replace ${canonCidr(d.address)} dev ${d.name}`, kind: c.kind });
      if (c.set.up) b.devOrder.push({ text: `link set ${d.name} up`, kind: c.kind });
      break;
    }
    case "device-del":
      b.links.push({ text: `link del ${c.name}`, kind: c.kind });
      break;
  }
}

/** Neighbour, route and rule changes: replaces in the main ip batch, deletions after them, v6 rules in their own. */
function bucketIpObject(
  c: Extract<Change, { kind: `${"neigh" | "route" | "rule"}-${string}` }>,
  b: Buckets,
): void {
  switch (c.kind) {
    case "neigh-replace":
      b.neigh.push({
        text: `neigh replace ${c.neighbor.ip} lladdr ${c.neighbor.mac} dev ${c.neighbor.dev} nud permanent`,
        kind: c.kind,
      });
      break;
    case "neigh-del":
      b.ipDel.push({ text: `neigh del ${c.neighbor.ip} dev ${c.neighbor.dev}`, kind: c.kind });
      break;
    case "route-replace": {
      const r = c.route;
      const src = r.src ? ` src ${r.src}` : "";
      b.routes.push({
        text: `route replace ${canonCidr(r.dst)} via ${r.via} dev ${r.dev} table ${r.table} proto ${P}${src}`,
        kind: c.kind,
      });
      break;
    }
    case "route-del": {
      const r = c.route;
      b.ipDel.push({ text: `route del ${r.dst} table ${r.table} proto ${P}`, kind: c.kind });
      break;
    }
    case "rule-add":
    case "rule-del": {
      const verb = c.kind === "rule-add" ? "add" : "del";
      const line = {
        text: `rule ${verb} priority ${c.rule.priority} table ${c.rule.table} protocol ${P}`,
        kind: c.kind,
      };
      if (c.rule.family === 6) b.ip6.push(line);
      else if (verb === "add") b.ip.push(line);
      else b.ipDel.push(line);
      break;
    }
  }
}

/** fdb changes: the bridge batch, adds before deletes. */
function bucketFdb(c: Extract<Change, { kind: `fdb-${string}` }>, b: Buckets): void {
  switch (c.kind) {
    case "fdb-add": {
      const e = c.entry;
      const verb = e.mac === ZERO_MAC ? "append" : "replace";
      b.br.push({ text: `fdb ${verb} ${e.mac} dev ${e.dev} dst ${e.dst} self permanent`, kind: c.kind });
      break;
    }
    case "fdb-del": {
      const e = c.entry;
      b.brDel.push({ text: `fdb del ${e.mac} dev ${e.dev} dst ${e.dst} self`, kind: c.kind });
      break;
    }
  }
}

/** xfrm changes: policies and states, deletes kept apart (they run first). */
function bucketXfrm(c: Extract<Change, { kind: `xfrm-${string}` }>, b: Buckets): void {
  switch (c.kind) {
    case "xfrm-policy-add": {
      const p = c.policy;
      b.xfrm.unshift({
        text: `xfrm policy update src ${p.src} dst ${p.dst} dir ${p.dir} priority ${p.priority} tmpl src ${p.tmplSrc} dst ${p.tmplDst} proto esp reqid ${p.reqid} mode tunnel`,
        kind: c.kind,
      });
      break;
    }
    case "xfrm-policy-del": {
      const p = c.policy;
      b.xfrmDel.push({ text: `xfrm policy delete src ${p.src} dst ${p.dst} dir ${p.dir}`, kind: c.kind });
      break;
    }
    case "xfrm-state-add": {
      const s = c.state;
      b.xfrm.push({
        text: `xfrm state add src ${s.src} dst ${s.dst} proto esp spi 0x${s.spi.toString(16)} reqid ${s.reqid} mode tunnel aead rfc4106(gcm(aes)) ${s.aeadKeyHex} ${s.icvBits}`,
        kind: c.kind,
      });
      break;
    }
    case "xfrm-state-del": {
      const s = c.state;
      b.xfrmDel.unshift({
        text: `xfrm state delete src ${s.src} dst ${s.dst} proto esp spi 0x${s.spi.toString(16)}`,
        kind: c.kind,
      });
      break;
    }
  }
}

/** The commands, in the order planSteps documents. */
function stepsOf(b: Buckets): Step[] {
  const steps: Step[] = [];
  if (b.sys.length > 0) steps.push({ argv: ["sysctl", "-w", ...b.sys] });
  const main = [...b.devOrder, ...b.neigh, ...b.routes, ...b.ip, ...b.ipDel];
  if (main.length > 0) steps.push({ argv: ["ip", "-force", "-batch", "-"], lines: main });
  if (b.ip6.length > 0) steps.push({ argv: ["ip", "-6", "-force", "-batch", "-"], lines: b.ip6 });
  const bridge = [...b.br, ...b.brDel];
  if (bridge.length > 0) steps.push({ argv: ["bridge", "-force", "-batch", "-"], lines: bridge });
  if (b.nft) steps.push({ argv: ["nft", "-f", "-"], script: b.nft });
  // xfrm: `ip xfrm` exits on the first error even with -force, so policies go in a batch that is
  // retried line by line on failure (see apply), and each state is its own command (few; their
  // failure is the expected "no ESP" degradation). Deletes first so an SPI can be re-created.
  const pol = [
    ...b.xfrmDel.filter((l) => l.kind === "xfrm-policy-del"),
    ...b.xfrm.filter((l) => l.kind === "xfrm-policy-add"),
  ];
  if (pol.length > 0) steps.push({ argv: ["ip", "-force", "-batch", "-"], lines: pol, xfrm: true });
  for (const l of [
    ...b.xfrmDel.filter((x) => x.kind === "xfrm-state-del"),
    ...b.xfrm.filter((x) => x.kind === "xfrm-state-add"),
  ]) {
    steps.push({ argv: ["ip", ...l.text.split(" ")], single: l });
  }
  if (b.links.length > 0) steps.push({ argv: ["ip", "-force", "-batch", "-"], lines: b.links });
  return steps;
}

/** Parse `ip/bridge -batch -force` stderr ("<message>\nCommand failed -:N") into per-line errors. */
export function batchErrors(stderr: string): Array<{ line: number; message: string }> {
  const out: Array<{ line: number; message: string }> = [];
  let pending: string[] = [];
  for (const raw of stderr.split("\n")) {
    const m = /^Command failed -:(\d+)/.exec(raw.trim());
    if (m?.[1]) {
      out.push({ line: Number(m[1]), message: pending.join(" ").trim() || "failed" });
      pending = [];
    } else if (raw.trim()) pending.push(raw.trim());
  }
  if (pending.length > 0) out.push({ line: 0, message: pending.join(" ") });
  return out;
}

export interface ApplyOptions {
  /** Monotonic clock in ms (default performance.now). */
  now?: () => number;
  /**
   * After an nft-apply, list the table back into `report.nftListing` (default true). The
   * Reconciler turns it off when a verifying re-read follows: that read lists the same table, and
   * at 1,000 imported services one listing costs about as much as the `nft -f` itself.
   */
  readBackNft?: boolean;
}

/** Apply changes with a handful of batched commands; never throws on kernel errors (they are reported). */
export async function apply(
  runner: Runner,
  changes: Change[],
  opts: ApplyOptions = {},
): Promise<ApplyReport> {
  const now = opts.now ?? (() => performance.now());
  const t0 = now();
  const counts: Partial<Record<ChangeKind, number>> = {};
  for (const c of changes) counts[c.kind] = (counts[c.kind] ?? 0) + 1;
  const errors: ApplyError[] = [];
  const sysctlSkipped: ApplyReport["sysctlSkipped"] = [];
  let nftListing: string | undefined;
  let nftOk = false;
  const hasStates = changes.some((c) => c.kind === "xfrm-state-add");
  let ipsec: ApplyReport["ipsec"] = { status: hasStates ? "ok" : "unused" };

  for (const step of planSteps(changes)) {
    const input = step.lines ? step.lines.map((l) => l.text).join("\n") + "\n" : step.script?.text;
    const r = await runner.run(step.argv, input === undefined ? {} : { input });
    const cmd = step.argv.join(" ");
    if (step.argv[0] === "sysctl") {
      for (const line of r.stderr.split("\n").filter((l) => l.trim())) {
        const key = step.argv
          .slice(2)
          .map((kv) => kv.split("=")[0] ?? "")
          .find((k) => k && line.includes(k));
        sysctlSkipped.push({ key: key ?? "?", message: line.trim() });
      }
      continue;
    }
    if (step.script) {
      if (r.code !== 0) errors.push({ command: cmd, message: r.stderr.trim(), change: step.script.kind });
      else nftOk = step.script.kind === "nft-apply";
      continue;
    }
    if (r.code === 0) continue;
    if (step.single) {
      const message = r.stderr.trim() || `exit ${r.code}`;
      errors.push({ command: cmd, message, change: step.single.kind });
      if (step.single.kind === "xfrm-state-add" && ipsec.status !== "degraded") {
        ipsec = { status: "degraded", message: `ESP state not installed: ${message}` };
      }
      continue;
    }
    const lines = step.lines ?? [];
    if (step.xfrm) {
      for (const l of lines) {
        const one = await runner.run(["ip", ...l.text.split(" ")]);
        const gone =
          l.kind === "xfrm-policy-del" && /No such file|No such process|not found/i.test(one.stderr);
        if (one.code !== 0 && !gone)
          errors.push({ command: `ip ${l.text}`, message: one.stderr.trim(), change: l.kind });
      }
      continue;
    }
    const errs = batchErrors(r.stderr);
    if (errs.length === 0) errors.push({ command: cmd, message: r.stderr.trim() || `exit ${r.code}` });
    for (const e of errs) {
      const l = lines[e.line - 1];
      const err: ApplyError = { command: l ? `${cmd}: ${l.text}` : cmd, message: e.message };
      if (l) err.change = l.kind;
      errors.push(err);
      if (l?.kind === "xfrm-state-add" && ipsec.status !== "degraded") {
        ipsec = { status: "degraded", message: `ESP state not installed: ${e.message}` };
      }
    }
  }
  if (nftOk && opts.readBackNft !== false) {
    const l = await runner.run(["nft", "list", "table", "inet", KOSMOS_NFT_TABLE]);
    if (l.code === 0) nftListing = canonicalNftListing(l.stdout);
  }
  const report: ApplyReport = {
    counts,
    applied: changes.length,
    // failing commands are logged and served (/v1/state): never with the ESP keys they carried
    errors: errors.map((e) => ({ ...e, command: redactKeys(e.command) })),
    ipsec,
    sysctlSkipped,
    durationMs: now() - t0,
  };
  if (nftListing !== undefined) report.nftListing = nftListing;
  return report;
}
