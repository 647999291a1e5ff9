import type { Runner } from "../sys/index.ts";

export interface Capability {
  ok: boolean;
  message: string;
}

export interface Capabilities {
  vxlan: Capability;
  nftables: Capability & { version?: string };
  xfrmPolicy: Capability;
  xfrmEsp: Capability;
  ipv6: Capability;
  /** `ip rule ... protocol N` supported (rules are then identified by protocol 75). */
  ruleProtocol: Capability;
}

let probeSeq = 0;

/**
 * Probe the kernel/tools. Every probe creates a uniquely named throwaway object and removes it;
 * nothing is left behind whatever the outcome. Probes run in the runner's namespace.
 */
export async function detectCapabilities(
  runner: Runner,
  opts: { suffix?: string } = {},
): Promise<Capabilities> {
  const sfx = opts.suffix ?? `${process.pid.toString(36)}${(probeSeq++).toString(36)}`.slice(-6);
  const vxlan = await probeVxlan(runner, `kpv${sfx}`.slice(0, 15));
  const nftables = await probeNftables(runner, `kosmos_probe_${sfx}`);
  const xfrmPolicy = await probeXfrmPolicy(runner);
  const xfrmEsp = await probeXfrmEsp(runner);
  const ipv6 = await probeIpv6(runner);
  const ruleProtocol = await probeRuleProtocol(runner);
  return { vxlan, nftables, xfrmPolicy, xfrmEsp, ipv6, ruleProtocol };
}

/** A throwaway vxlan device `link`. */
async function probeVxlan(runner: Runner, link: string): Promise<Capability> {
  const vx = await runner.run([
    "ip",
    "link",
    "add",
    link,
    "type",
    "vxlan",
    "id",
    "4242",
    "dstport",
    "4789",
    "nolearning",
  ]);
  if (vx.code === 0) await runner.run(["ip", "link", "del", link]);
  return vx.code === 0
    ? { ok: true, message: "vxlan devices can be created" }
    : { ok: false, message: `vxlan unavailable (modprobe vxlan?): ${vx.stderr.trim()}` };
}

/** nft version, and a throwaway inet table `table` with a prefix NAT map. */
async function probeNftables(runner: Runner, table: string): Promise<Capabilities["nftables"]> {
  const ver = await runner.run(["nft", "--version"]);
  const version = /v(\d+\.\d+(?:\.\d+)?)/.exec(ver.stdout)?.[1];
  const nt = await runner.run(["nft", "-f", "-"], {
    input:
      `table inet ${table} {\n map m { type ipv4_addr : interval ipv4_addr; flags interval; elements = { 10.0.0.0/16 : 10.1.0.0/16 } }\n` +
      ` chain c { type nat hook postrouting priority srcnat - 10; policy accept;\n  snat ip prefix to ip saddr map @m\n }\n}\ndelete table inet ${table}\n`,
  });
  await runner.run(["nft", "delete", "table", "inet", table]);
  return nt.code === 0
    ? {
        ok: true,
        message: `nftables ${version ?? "?"} with prefix NAT maps`,
        ...(version ? { version } : {}),
      }
    : {
        ok: false,
        message: `nftables unusable (need nft >= 1.0 with 'snat ip prefix to ... map'): ${(nt.stderr || ver.stderr).trim()}`,
        ...(version ? { version } : {}),
      };
}

/** A throwaway xfrm policy. */
async function probeXfrmPolicy(runner: Runner): Promise<Capability> {
  // xfrm policy probe: a selector no traffic uses (TEST-NET-3 /32 pair), priority and reqid reserved.
  const sel = ["src", "203.0.113.254/32", "dst", "203.0.113.253/32"];
  const pol = await runner.run([
    "ip",
    "xfrm",
    "policy",
    "add",
    ...sel,
    "dir",
    "out",
    "priority",
    "4242",
    "tmpl",
    "src",
    "203.0.113.254",
    "dst",
    "203.0.113.253",
    "proto",
    "esp",
    "reqid",
    "4242",
    "mode",
    "tunnel",
  ]);
  if (pol.code === 0) await runner.run(["ip", "xfrm", "policy", "delete", ...sel, "dir", "out"]);
  return pol.code === 0
    ? { ok: true, message: "xfrm policies supported" }
    : { ok: false, message: `xfrm policies unavailable: ${pol.stderr.trim()}` };
}

/** A throwaway ESP state (rfc4106 gcm-aes). */
async function probeXfrmEsp(runner: Runner): Promise<Capability> {
  const spi = "0x4b00fffe";
  const st = await runner.run([
    "ip",
    "xfrm",
    "state",
    "add",
    "src",
    "203.0.113.254",
    "dst",
    "203.0.113.253",
    "proto",
    "esp",
    "spi",
    spi,
    "reqid",
    "4242",
    "mode",
    "tunnel",
    "aead",
    "rfc4106(gcm(aes))",
    "0x" + "00".repeat(20),
    "128",
  ]);
  if (st.code === 0) {
    await runner.run([
      "ip",
      "xfrm",
      "state",
      "delete",
      "src",
      "203.0.113.254",
      "dst",
      "203.0.113.253",
      "proto",
      "esp",
      "spi",
      spi,
    ]);
  }
  return st.code === 0
    ? { ok: true, message: "ESP states (rfc4106 gcm-aes) supported" }
    : {
        ok: false,
        message: `ESP states unavailable (IPsec degraded; policies still fail closed): ${st.stderr.trim()}`,
      };
}

/** IPv6 enabled (sysctl). */
async function probeIpv6(runner: Runner): Promise<Capability> {
  const v6 = await runner.run(["sysctl", "-n", "net.ipv6.conf.all.disable_ipv6"]);
  return v6.code === 0 && v6.stdout.trim() === "0"
    ? { ok: true, message: "IPv6 enabled" }
    : {
        ok: false,
        message:
          v6.code === 0 ? "IPv6 disabled (net.ipv6.conf.all.disable_ipv6=1)" : "no IPv6 in this kernel",
      };
}

/** A throwaway `ip rule ... protocol 75`. */
async function probeRuleProtocol(runner: Runner): Promise<Capability> {
  const prio = "32042";
  const ru = await runner.run(["ip", "rule", "add", "priority", prio, "table", "4242", "protocol", "75"]);
  if (ru.code === 0)
    await runner.run(["ip", "rule", "del", "priority", prio, "table", "4242", "protocol", "75"]);
  return ru.code === 0
    ? { ok: true, message: "rule protocol supported: rules identified by protocol 75" }
    : {
        ok: false,
        message: `rule protocol unsupported (rules identified by priority+table): ${ru.stderr.trim()}`,
      };
}
