/** Pure parsers: text/JSON printed by `ip`, `bridge`, `nft`, `ip xfrm`, `sysctl` → typed values. */
import type { Family, FdbEntry, PolicyRule, XfrmPolicy, XfrmState } from "./hoststate.ts";
import { canonicalNftListing } from "./nft-services.ts";
import { KOSMOS_ROUTE_PROTO } from "./hoststate.ts";
import type { ActualDevice, ActualNeighbor, ActualNft, ActualRoute } from "./types.ts";
import { canonAddr, canonCidr, canonMac } from "./normalize.ts";

type Json = Record<string, unknown>;

function jsonArray(text: string): Json[] {
  const t = text.trim();
  if (!t) return [];
  const v: unknown = JSON.parse(t);
  return Array.isArray(v) ? (v as Json[]) : [];
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === "number" ? v : undefined);

/** `ip -d -j link show` + `ip -j addr show` → devices whose names are in `names`. */
export function parseLinks(linkJson: string, addrJson: string, names: readonly string[]): ActualDevice[] {
  const addrs = new Map<string, string[]>();
  for (const a of jsonArray(addrJson)) {
    const name = str(a.ifname);
    if (!name) continue;
    const list: string[] = [];
    for (const ai of (a.addr_info as Json[] | undefined) ?? []) {
      if (str(ai.scope) === "link" || str(ai.scope) === "host") continue;
      const local = str(ai.local);
      if (local) list.push(`${canonAddr(local)}/${num(ai.prefixlen) ?? 0}`);
    }
    addrs.set(name, list.sort());
  }
  const out: ActualDevice[] = [];
  for (const l of jsonArray(linkJson)) {
    const name = str(l.ifname);
    if (!name || !names.includes(name)) continue;
    const info = (l.linkinfo as Json | undefined) ?? {};
    const data = (info.info_data as Json | undefined) ?? {};
    const kind = str(info.info_kind) ?? "unknown";
    const flags = (l.flags as string[] | undefined) ?? [];
    const dev: ActualDevice = {
      name,
      kind,
      mtu: num(l.mtu) ?? 0,
      mac: canonMac(str(l.address) ?? ""),
      up: flags.includes("UP"),
      addresses: addrs.get(name) ?? [],
    };
    if (kind === "vxlan") {
      const vni = num(data.id);
      const port = num(data.port);
      const local = str(data.local) ?? str(data.local6);
      const parent = str(data.link);
      if (vni !== undefined) dev.vni = vni;
      if (port !== undefined) dev.port = port;
      if (local) dev.local = canonAddr(local);
      if (parent) dev.parent = parent;
      if (typeof data.learning === "boolean") dev.learning = data.learning;
    }
    out.push(dev);
  }
  return out;
}

/** `ip [-6] -j route show table all proto 75` → routes. */
export function parseRoutes(json: string, family: Family): ActualRoute[] {
  return jsonArray(json).flatMap((r) => {
    const dst = str(r.dst);
    if (!dst || dst === "default") return [];
    const t = str(r.table) ?? (num(r.table) !== undefined ? String(r.table) : "main");
    const table = t === "main" ? 254 : t === "local" ? 255 : t === "default" ? 253 : Number(t);
    const route: ActualRoute = { dst: canonCidr(dst), family, table };
    const via = str(r.gateway);
    if (via) route.via = canonAddr(via);
    const dev = str(r.dev);
    if (dev) route.dev = dev;
    const src = str(r.prefsrc);
    if (src) route.src = canonAddr(src);
    return [route];
  });
}

/**
 * `ip [-6] -j rule show` → rules owned by Kosmos: those with `protocol 75`, plus any rule whose
 * priority+table equals one of `ownedKeys` ("prio/table") when the kernel lacks rule protocols.
 */
export function parseRules(
  json: string,
  family: Family,
  ownedKeys: ReadonlySet<string> = new Set(),
): PolicyRule[] {
  return jsonArray(json).flatMap((r) => {
    const priority = num(r.priority);
    const t = str(r.table);
    if (priority === undefined || !t) return [];
    const table = t === "main" ? 254 : t === "local" ? 255 : t === "default" ? 253 : Number(t);
    const proto = str(r.protocol);
    const ours = proto === String(KOSMOS_ROUTE_PROTO) || ownedKeys.has(`${priority}/${table}`);
    return ours && !Number.isNaN(table) ? [{ family, priority, table }] : [];
  });
}

/** `bridge -j fdb show dev X` → static entries with a dst (our devices only are queried). */
export function parseFdb(json: string, dev: string): FdbEntry[] {
  return jsonArray(json).flatMap((e) => {
    const mac = str(e.mac);
    const dst = str(e.dst);
    if (!mac || !dst) return [];
    return [{ dev, mac: canonMac(mac), dst: canonAddr(dst) }];
  });
}

/** `ip -j neigh show dev X` (both families) → neighbours. */
export function parseNeigh(json: string, dev: string): ActualNeighbor[] {
  return jsonArray(json).flatMap((n) => {
    const ip = str(n.dst);
    const mac = str(n.lladdr);
    if (!ip) return [];
    const state = (n.state as string[] | undefined) ?? [];
    const family: Family = ip.includes(":") ? 6 : 4;
    return [
      { dev, ip: canonAddr(ip), mac: canonMac(mac ?? ""), family, permanent: state.includes("PERMANENT") },
    ];
  });
}

/** `nft list table inet kosmos` → presence, hash comment, listing. */
export function parseNft(listing: string, code: number): ActualNft {
  if (code !== 0 || !listing.trim()) return { present: false, listing: "" };
  const m = /comment "kosmos:([0-9a-f]+)"/.exec(listing);
  const canon = canonicalNftListing(listing);
  return m?.[1] ? { present: true, hash: m[1], listing: canon } : { present: true, listing: canon };
}

/**
 * `ip xfrm policy` (text; iproute2 6.1 has no JSON for xfrm) → policies whose template reqid is
 * accepted by `owned`.
 */
export function parseXfrmPolicies(text: string, owned: (reqid: number) => boolean): XfrmPolicy[] {
  const out: XfrmPolicy[] = [];
  for (const block of splitBlocks(text)) {
    const sel = /^src (\S+) dst (\S+)/.exec(block);
    const dir = /\bdir (in|out|fwd)\b/.exec(block);
    const prio = /\bpriority (\d+)/.exec(block);
    const tmpl = /tmpl src (\S+) dst (\S+)/.exec(block);
    const reqid = /\breqid (\d+)/.exec(block);
    if (!sel?.[1] || !sel[2] || !dir?.[1] || !tmpl?.[1] || !tmpl[2] || !reqid?.[1]) continue;
    const r = Number(reqid[1]);
    if (!owned(r)) continue;
    out.push({
      src: canonCidr(sel[1]),
      dst: canonCidr(sel[2]),
      dir: dir[1] as XfrmPolicy["dir"],
      tmplSrc: canonAddr(tmpl[1]),
      tmplDst: canonAddr(tmpl[2]),
      reqid: r,
      priority: Number(prio?.[1] ?? 0),
      family: sel[1].includes(":") ? 6 : 4,
    });
  }
  return out;
}

/** `ip xfrm state` (text) → states whose reqid is accepted by `owned` (key material not compared). */
export function parseXfrmStates(text: string, owned: (reqid: number) => boolean): XfrmState[] {
  const out: XfrmState[] = [];
  for (const block of splitBlocks(text)) {
    const sel = /^src (\S+) dst (\S+)/.exec(block);
    const spi = /\bspi (0x[0-9a-f]+)/.exec(block);
    const reqid = /\breqid (\d+)/.exec(block);
    const aead = /aead \S+ (0x[0-9a-f]+) (\d+)/.exec(block);
    if (!sel?.[1] || !sel[2] || !spi?.[1] || !reqid?.[1]) continue;
    const r = Number(reqid[1]);
    if (!owned(r)) continue;
    out.push({
      src: canonAddr(sel[1]),
      dst: canonAddr(sel[2]),
      spi: Number.parseInt(spi[1], 16),
      reqid: r,
      aeadKeyHex: aead?.[1] ?? "",
      icvBits: Number(aead?.[2] ?? 0),
      family: sel[1].includes(":") ? 6 : 4,
    });
  }
  return out;
}

function splitBlocks(text: string): string[] {
  const blocks: string[] = [];
  let cur = "";
  for (const line of text.split("\n")) {
    if (line.startsWith("src ")) {
      if (cur) blocks.push(cur);
      cur = line + "\n";
    } else if (cur) cur += line + "\n";
  }
  if (cur) blocks.push(cur);
  return blocks;
}

/** `sysctl k1 k2` output ("k = v" lines) → map. */
export function parseSysctl(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const i = line.indexOf(" = ");
    if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 3).trim();
  }
  return out;
}
