/**
 * kosmosctl as users run it (cmd/kosmosctl.ts in its own process) in a small lab: `lab up -f`,
 * `lab status`, `lab exec`, `lab probe`, `lab demo` on the running lab, `exec`/`cp` to a node's
 * agent, `inspect` (--db, --agent over the admin socket, --agent over TLS from inside the lab), and
 * `lab down`, which returns only once every process of the lab is gone.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { agentSocket, labDown, labFiles, loadLab, nodeDir } from "../../internal/lab/lab.ts";
import { labNamespaces } from "../../internal/lab/network.ts";
import type { LabPlan } from "../../internal/lab/plan.ts";
import { isRunning, netnsPids } from "../../internal/lab/sh.ts";
import { kosmosctl } from "../helpers/kosmosctl.ts";
import { agentJson, labName } from "./helpers.ts";

const LAB = labName("cli");
const T = 120_000;
const env = { KOSMOS_LAB: LAB, KOSMOS_TOKEN: "" };
const ctl = (args: string[], ns?: string) => kosmosctl(args, { env, ns });
const tmp = await mkdtemp(join(tmpdir(), "kosmos-cli-"));
let plan: LabPlan;
let token: string;

beforeAll(async () => {
  await labDown(LAB);
}, T);

afterAll(async () => {
  await labDown(LAB);
  await rm(tmp, { recursive: true, force: true });
}, T);

const out = (r: { code: number; stdout: string; stderr: string }) =>
  `exit ${r.code}\n${r.stdout}\n${r.stderr}`;

describe("kosmosctl in a lab", () => {
  test(
    "lab up -f: two clusters of two nodes come up, described with their nodes",
    async () => {
      const file = join(tmp, "lab.yaml");
      await writeFile(file, "clusters:\n  - { name: a, nodes: 2 }\n  - { name: b, nodes: 2 }\n");
      const r = await ctl(["lab", "up", "-f", file, "--name", LAB]);
      expect(r.code, out(r)).toBe(0);
      expect(r.stdout).toContain(`lab "${LAB}" is up`);
      ({ plan, token } = await loadLab(LAB));
      for (const n of plan.nodes) expect(r.stdout).toContain(n.name);
      expect(plan.nodes.length).toBe(4);
    },
    T,
  );

  test(
    "lab status: every agent running and ready (json and table)",
    async () => {
      const r = await ctl(["lab", "status", "--name", LAB, "-o", "json"]);
      expect(r.code, out(r)).toBe(0);
      const s = JSON.parse(r.stdout) as { nodes: Array<{ name: string; ready: boolean; agentPid?: number }> };
      expect(s.nodes.map((n) => [n.name, n.ready, typeof n.agentPid])).toEqual(
        plan.nodes.map((n) => [n.name, true, "number"]),
      );
      const table = await ctl(["lab", "status", "--name", LAB]);
      expect(table.code, out(table)).toBe(0);
      expect(table.stdout).toContain("READY");
    },
    T,
  );

  test(
    "lab exec: runs in a pod's namespace and exits with the command's code",
    async () => {
      const dst = plan.nodes.find((n) => n.cluster === "b")!.pods[0]!;
      const ping = await ctl([
        "lab",
        "exec",
        "--name",
        LAB,
        "a/node-1/pod-1",
        "--",
        "ping",
        "-c1",
        "-W2",
        dst.ipv4!,
      ]);
      expect(ping.code, out(ping)).toBe(0);
      expect(ping.stdout).toContain("1 received");
      const seven = await ctl(["lab", "exec", "--name", LAB, "a/node-1", "--", "sh", "-c", "exit 7"]);
      expect(seven.code).toBe(7);
    },
    T,
  );

  test(
    "lab probe and lab demo (running lab): every cross-cluster probe passes",
    async () => {
      const r = await ctl(["lab", "probe", "--name", LAB, "-o", "json"]);
      expect(r.code, out(r)).toBe(0);
      const p = JSON.parse(r.stdout) as { total: number; failed: number };
      expect(p.total).toBe(24); // 4 pods × (2 pods + 1 service of the other cluster) × ping/TCP
      expect(p.failed).toBe(0);
      const d = await ctl(["lab", "demo", "--name", LAB]);
      expect(d.code, out(d)).toBe(0);
      expect(d.stdout).toContain(`using the running lab "${LAB}"`);
      expect(d.stdout).toContain("24/24 cross-cluster probes succeeded");
      expect(d.stdout).toContain("The lab stays up");
    },
    T,
  );

  test(
    "exec and cp through a node's agent (lab name resolution, admin socket)",
    async () => {
      const route = await ctl(["exec", "a-node-1", "--", "ip", "-br", "link", "show", "vx-bridge"]);
      expect(route.code, out(route)).toBe(0);
      expect(route.stdout).toContain("vx-bridge");
      expect((await ctl(["exec", "a-node-1", "--", "sh", "-c", "exit 3"])).code).toBe(3);
      const src = join(tmp, "payload.txt");
      await writeFile(src, "kosmosctl cp\n".repeat(1000));
      const dest = join(nodeDir(LAB, "a-node-1"), "uploads", "payload.txt");
      const cp = await ctl(["cp", src, `a-node-1:${dest}`]);
      expect(cp.code, out(cp)).toBe(0);
      expect(cp.stdout).toContain(`${dest} 13000 bytes`);
      expect(await readFile(dest, "utf8")).toBe(await readFile(src, "utf8"));
    },
    T,
  );

  test(
    "inspect --db and --agent (admin socket; TLS with the token, from inside the lab)",
    async () => {
      const node = plan.nodes.find((n) => n.name === "a-node-1")!;
      const state = (await agentJson<{ certFingerprint: string }>(LAB, node.name, "/v1/state")).body;
      type Inspect = {
        node: string;
        members: Array<{ name: string; state: string; incarnation: number; confirmed?: boolean }>;
        owners: Array<{ owner: string; rows: number }>;
        certFingerprint?: string;
      };
      const others = plan.nodes.filter((n) => n.name !== node.name).map((n) => n.name);
      /** `live`: from the agent (gossip's view: every member heard from has an incarnation >= 1). */
      const check = (r: { code: number; stdout: string; stderr: string }, live: boolean): Inspect => {
        expect(r.code, out(r)).toBe(0);
        const d = JSON.parse(r.stdout) as Inspect;
        expect(d.node).toBe(node.name);
        expect(d.members.map((m) => m.name).sort()).toEqual(others);
        if (live) expect(d.members.filter((m) => m.confirmed && !(m.incarnation >= 1))).toEqual([]);
        if (live) expect(d.members.filter((m) => m.confirmed).length).toBeGreaterThan(0);
        expect(d.owners.map((o) => o.owner)).toContain(node.name);
        expect(d.owners.every((o) => o.rows > 0)).toBe(true);
        return d;
      };
      // (--node as in the README: without it, --db names the node "kosmosctl-inspect"; that path is
      // being moved onto the store driver in another change)
      const db = join(nodeDir(LAB, node.name), "kosmos.db");
      check(await ctl(["inspect", "--db", db, "--node", node.name, "-o", "json"]), false);
      const viaSocket = check(
        await ctl(["inspect", "--agent", `unix:${agentSocket(LAB, node.name)}`, "-o", "json"]),
        true,
      );
      expect(viaSocket.certFingerprint).toBe(state.certFingerprint);
      // Over TLS from another node's namespace: the agent proves its certificate with the token.
      const url = `https://${node.ipv4}:5678`;
      const from = plan.nodes.find((n) => n.cluster === "b")!.ns;
      const viaTls = check(
        await ctl(["inspect", "--agent", url, "--token", token, "-o", "json"], from),
        true,
      );
      expect(viaTls.certFingerprint).toBe(state.certFingerprint);
      const wrong = await ctl(
        ["inspect", "--agent", url, "--token", "not-the-lab-token-0123456789", "-o", "json"],
        from,
      );
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toContain("did not prove its certificate");
    },
    T,
  );

  test(
    "lab down: returns once every process of the lab is gone; namespaces and state removed",
    async () => {
      const namespaces = await labNamespaces(plan.prefix);
      expect(namespaces.length).toBeGreaterThan(plan.nodes.length);
      const pids = (await Promise.all(namespaces.map((ns) => netnsPids(ns)))).flat();
      expect(pids.length).toBeGreaterThanOrEqual(plan.nodes.length); // agents, echo servers, monitors
      const r = await ctl(["lab", "down", "--name", LAB]);
      const alive = pids.filter(isRunning); // right when it returned
      expect(r.code, out(r)).toBe(0);
      expect(alive, `still running after lab down returned: ${alive.join(" ")}`).toEqual([]);
      expect(await labNamespaces(plan.prefix)).toEqual([]);
      expect(existsSync(labFiles(LAB).dir)).toBe(false);
    },
    T,
  );
});
