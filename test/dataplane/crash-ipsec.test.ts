import { describe, expect, test } from "bun:test";
import { detectCapabilities, Reconciler, type Runner } from "../../internal/dataplane/index.ts";
import type { HostState } from "../../internal/dataplane/index.ts";
import { netnsSuite } from "../helpers/netns-suite.ts";
import { canonical, makePair, NODES, p2pState, snapshot } from "./fixtures.ts";

const { root, scope } = await netnsSuite({ sweep: false });

class Killed extends Error {
  readonly code = "KILLED";
  readonly hint = "simulated agent crash";
}

/** Commands that only read the kernel (the reconciler's listings); everything else changes it. */
const isRead = (argv: string[], input: string | undefined): boolean =>
  input === undefined &&
  (argv.includes("show") || argv.includes("list") || (argv[0] === "sysctl" && !argv.includes("-w")));

/** Counts the mutating commands an apply runs (the crash points a crashing runner can hit). */
function countingRunner(inner: Runner): Runner & { mutating: string[] } {
  const mutating: string[] = [];
  return {
    mutating,
    async run(argv, opts) {
      if (!isRead(argv, opts?.input)) mutating.push(argv.join(" "));
      return inner.run(argv, opts);
    },
  };
}

/**
 * A runner that "crashes" the agent after `budget` mutating commands: the command at which the
 * crash happens gets only the first half of its batch input (a kill in the middle of `ip -batch`),
 * then every further call throws.
 */
function crashingRunner(inner: Runner, budget: number): Runner {
  let left = budget;
  return {
    async run(argv, opts) {
      if (isRead(argv, opts?.input)) return inner.run(argv, opts);
      if (left < 0) throw new Killed("agent killed");
      if (left === 0) {
        left--;
        const lines = (opts?.input ?? "").split("\n").filter(Boolean);
        const half = lines.slice(0, Math.floor(lines.length / 2));
        if (half.length > 0 && argv[0] !== "nft") await inner.run(argv, { input: half.join("\n") + "\n" });
        throw new Killed("agent killed mid-batch");
      }
      left--;
      return inner.run(argv, opts);
    },
  };
}

/** Reconcile with a crashing runner: true when the injected kill ended it; any other error fails. */
async function reconcileUntilKilled(r: Reconciler, desired: HostState): Promise<boolean> {
  try {
    await r.reconcile(desired);
    return false;
  } catch (e) {
    if (e instanceof Killed) return true;
    throw e;
  }
}

describe.skipIf(!root)("crash safety and IPsec", () => {
  test("a kill at any point of an apply converges on the next reconcile", async () => {
    const { a, aIf } = await makePair(scope);
    const desired = p2pState(NODES[1], NODES[2], aIf, { dual: true });
    // Reference: the state a clean reconcile produces.
    const clean = new Reconciler({ runner: a.runner() });
    await clean.reconcile(desired);
    const reference = await snapshot(a);
    await clean.uninstall();
    // Also start from a changed state (different VNI/MTU) so kills hit recreate/update paths.
    const old = structuredClone(desired);
    old.devices[0]!.vni = 99;
    old.devices[1]!.mtu = 1300;
    old.routes.push({ dst: "10.77.0.0/16", via: NODES[2].overlay4, dev: "vx-bridge", family: 4, table: 200 });
    old.nft.noMasqueradeDst.v4.push("10.99.0.0/16");
    // The crash points: every mutating command of an apply from `old` to `desired`.
    await new Reconciler({ runner: a.runner() }).reconcile(old);
    const counting = countingRunner(a.runner());
    await new Reconciler({ runner: counting, verify: false }).reconcile(desired);
    const points = counting.mutating.length;
    expect(points, counting.mutating.join("\n")).toBeGreaterThanOrEqual(3);
    await clean.uninstall();
    // A kill before each of them (budget < points) and none at all (budget = points).
    for (let budget = 0; budget <= points; budget++) {
      await new Reconciler({ runner: a.runner() }).reconcile(old);
      const crashing = new Reconciler({ runner: crashingRunner(a.runner(), budget) });
      const crashed = await reconcileUntilKilled(crashing, desired);
      expect({ budget, crashed }).toEqual({ budget, crashed: budget < points });
      const restarted = new Reconciler({ runner: a.runner() });
      const r = await restarted.reconcile(desired);
      expect({ budget, errors: r.errors, residual: r.residual }).toEqual({ budget, errors: [], residual: 0 });
      // Same objects as a clean install (listing order / ifindex of recreated links may differ).
      expect(canonical(await snapshot(a))).toEqual(canonical(reference));
      expect((await restarted.reconcile(desired)).changes).toBe(0);
      await restarted.uninstall();
    }
  }, 240_000); // ~100 s on a 2-core machine under heavy load

  test("xfrm: policies installed, states degraded with the kernel message, uninstall removes them", async () => {
    const { a, aIf } = await makePair(scope);
    const caps = await detectCapabilities(a.runner());
    const s = p2pState(NODES[1], NODES[2], aIf);
    const reqid = 0x4b000010;
    s.xfrm.policies.push(
      {
        src: "10.1.0.0/24",
        dst: "10.2.0.0/24",
        dir: "out",
        tmplSrc: NODES[1].underlay4,
        tmplDst: NODES[2].underlay4,
        reqid,
        priority: 1000,
        family: 4,
      },
      {
        src: "10.2.0.0/24",
        dst: "10.1.0.0/24",
        dir: "in",
        tmplSrc: NODES[2].underlay4,
        tmplDst: NODES[1].underlay4,
        reqid,
        priority: 1000,
        family: 4,
      },
      {
        src: "10.2.0.0/24",
        dst: "10.1.0.0/24",
        dir: "fwd",
        tmplSrc: NODES[2].underlay4,
        tmplDst: NODES[1].underlay4,
        reqid,
        priority: 1000,
        family: 4,
      },
    );
    s.xfrm.states.push({
      src: NODES[1].underlay4,
      dst: NODES[2].underlay4,
      spi: 0x4b001,
      reqid,
      aeadKeyHex: "0x" + "ab".repeat(20),
      icvBits: 128,
      family: 4,
    });
    const r = new Reconciler({ runner: a.runner() });
    const rep = await r.reconcile(s);
    const pol = (await a.exec(["ip", "xfrm", "policy", "list"])).stdout;
    expect(pol.match(/reqid 1258291216 /g)?.length).toBe(3);
    if (caps.xfrmEsp.ok) {
      expect(rep.ipsec.status).toBe("ok");
    } else {
      expect(rep.ipsec.status).toBe("degraded");
      expect(rep.ipsec.message).toMatch(/not found/);
      expect(rep.errors.map((e) => e.change)).toEqual(["xfrm-state-add"]);
      // the failing command is reported (logs, /v1/state) without its key
      expect(rep.errors[0]?.command).toContain("aead rfc4106(gcm(aes)) 0x… 128");
      expect(JSON.stringify(rep)).not.toContain("ab".repeat(20));
    }
    await r.uninstall();
    expect((await a.exec(["ip", "xfrm", "policy", "list"])).stdout).toBe("");
    expect((await a.exec(["ip", "xfrm", "state", "list"])).stdout).toBe("");
  });

  test("capability detection reports each feature and leaves nothing behind", async () => {
    const { a } = await makePair(scope);
    const before = await snapshot(a);
    const caps = await detectCapabilities(a.runner());
    expect(caps.vxlan.ok).toBe(true);
    expect(caps.nftables.ok).toBe(true);
    expect(caps.nftables.version).toMatch(/^\d+\.\d+/);
    expect(caps.xfrmPolicy.ok).toBe(true);
    expect(caps.ipv6.ok).toBe(true);
    expect(caps.ruleProtocol.ok).toBe(true);
    expect(typeof caps.xfrmEsp.ok).toBe("boolean");
    expect(caps.xfrmEsp.message.length).toBeGreaterThan(10);
    expect(await snapshot(a)).toEqual(before);
  });
});
