/**
 * `npm run demo` is `kosmosctl lab demo`. Without the Kubernetes assets it says why and falls back to
 * the network-only lab: with no lab up, it brings up the default lab (three clusters: P2P with global
 * IPs, gateway, P2P with the same pod CIDR), probes every cross-cluster path and prints the summary.
 * Run here as users run it (the real CLI) with KUBEBUILDER_ASSETS emptied, under a test lab name and
 * with --down, which removes the lab afterwards. The path with the assets is test/e2e/lab-install.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { labDown, labFiles } from "../../internal/lab/lab.ts";
import { labNamespaces } from "../../internal/lab/network.ts";
import { labPrefix } from "../../internal/lab/plan.ts";
import { kosmosctl } from "../helpers/kosmosctl.ts";
import { labName } from "./helpers.ts";

const LAB = labName("dmo");
const T = 240_000;

beforeAll(() => labDown(LAB), T);
afterAll(() => labDown(LAB), T);

describe("kosmosctl lab demo (npm run demo)", () => {
  test(
    "without the Kubernetes assets: says why; the network-only lab comes up, every cross-cluster probe passes, --down removes it",
    async () => {
      const r = await kosmosctl(["lab", "demo", "--name", LAB, "--down"], {
        timeoutMs: T - 10_000,
        env: { KUBEBUILDER_ASSETS: "" },
      });
      const out = `exit ${r.code}\n${r.stdout}\n${r.stderr}`;
      expect(r.code, out).toBe(0);
      expect(r.stdout).toContain("no Kubernetes control planes (KUBEBUILDER_ASSETS is not set");
      expect(r.stdout).toMatch(new RegExp(`lab "${LAB}" up in \\d+\\.\\d s`));
      for (const node of ["c1-node-1", "c2-node-3", "c3-node-2"]) expect(r.stdout).toContain(node);
      const m = /(\d+)\/(\d+) cross-cluster probes succeeded/.exec(r.stdout);
      expect(m, out).not.toBeNull();
      expect(Number(m![2])).toBeGreaterThan(0);
      expect(m![1]).toBe(m![2]);
      expect(r.stdout).toContain(`lab "${LAB}" removed`);
      expect(await labNamespaces(labPrefix(LAB))).toEqual([]);
      expect(existsSync(labFiles(LAB).dir)).toBe(false);
    },
    T,
  );
});
