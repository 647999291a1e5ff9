/**
 * Real Kubernetes control planes for tests (envtest's KUBEBUILDER_ASSETS; see internal/controlplane).
 *
 *   const k8s = kubeSuite();                       // says once, loudly, why it skips when assets are missing
 *   describe.skipIf(k8s.skip)("...", () => { ... k8s.plane() ... });
 *
 * `kubeSuite({ components })` starts one control plane for the file (beforeAll) and stops it (afterAll,
 * also after failures). Names are unique per process, so files and parallel runs never collide.
 * `kubeSkip()` is the same check and warning alone, for files that start their own control planes.
 */
import { afterAll, beforeAll } from "bun:test";
import {
  assetsProblem,
  type Component,
  ControlPlane,
  type ControlPlaneOptions,
} from "../../internal/controlplane/index.ts";
import { KubeClient, kubeConfigFromYaml } from "../../internal/kube/index.ts";

const problem = assetsProblem();
let warned = false;

export interface KubeSuite {
  skip: boolean;
  /** The file's control plane (throws when skipped or not started). */
  plane(): ControlPlane;
  /** An admin client of the file's control plane. */
  admin(): KubeClient;
}

/**
 * Whether tests against real control planes must skip (no KUBEBUILDER_ASSETS, binaries missing); says
 * why once per process, loudly. For files that start their control planes themselves (labs).
 */
export function kubeSkip(): boolean {
  if (problem && !warned) {
    warned = true;
    console.warn(
      `SKIPPED: tests against a real Kubernetes control plane: ${problem} — set KUBEBUILDER_ASSETS (bash scripts/kube-assets)`,
    );
  }
  return problem !== undefined;
}

export function kubeSuite(
  o: { components?: Component[] } & Omit<ControlPlaneOptions, "components"> = {},
): KubeSuite {
  kubeSkip();
  let cp: ControlPlane | undefined;
  let admin: KubeClient | undefined;
  if (!problem) {
    beforeAll(async () => {
      cp = await ControlPlane.start(o);
    }, 90_000);
    afterAll(async () => {
      admin?.close();
      await cp?.stop();
    }, 60_000);
  }
  return {
    skip: problem !== undefined,
    plane: () => {
      if (!cp) throw new Error(problem ?? "control plane not started");
      return cp;
    },
    admin: () => {
      admin ??= new KubeClient(kubeConfigFromYaml(cp!.kubeconfig()));
      return admin;
    },
  };
}

/** A client of a control plane (admin, or with a given bearer token). */
export function clientOf(cp: ControlPlane, token?: string): KubeClient {
  return new KubeClient(kubeConfigFromYaml(cp.kubeconfig(token ? { token, user: "test" } : {})));
}

/** A unique name for objects a test makes (DNS-1123). */
export function uniqueName(tag: string): string {
  return `${tag}-${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
}
