/** The lab kubelet's pure parts: pod IPs, the mount script, what a pod refers to, Node/Lease objects. */
import { describe, expect, test } from "bun:test";
import { allocatePodIPs, IpamExhaustedError } from "../../internal/kubelet/ipam.ts";
import { MountPlanError, mountScript } from "../../internal/kubelet/mounts.ts";
import { leaseObject, nodeObject, nodeStatus } from "../../internal/kubelet/nodeobj.ts";
import { podRefs } from "../../internal/kubelet/refs.ts";

describe("allocatePodIPs", () => {
  test("one address per family after the gateway and the reserved ones, skipping used ones", () => {
    expect(allocatePodIPs(["10.1.2.0/24", "fd10:1:0:2::/64"], new Set(), 16)).toEqual([
      "10.1.2.18",
      "fd10:1:0:2::12",
    ]);
    expect(allocatePodIPs(["10.1.2.0/24"], new Set(["10.1.2.18", "10.1.2.19"]), 16)).toEqual(["10.1.2.20"]);
  });
  test("a full CIDR is an error naming it", () => {
    const used = new Set(Array.from({ length: 7 }, (_, i) => `10.0.0.${i}`));
    expect(() => allocatePodIPs(["10.0.0.0/29"], used, 0)).toThrow(IpamExhaustedError);
  });
});

describe("mountScript", () => {
  test("existing mountPaths are bound; missing ones are made in an overlay of their nearest existing ancestor", () => {
    const s = mountScript({
      mounts: [
        { source: "/p/v/tok", mountPath: "/var/run/secrets/x", readOnly: true, missingUnder: "/var/run" },
        { source: "/p/v/cfg", mountPath: "/etc", readOnly: false },
      ],
      overlayDir: "/p/ovl",
      hostname: "web-1",
      workingDir: "/srv",
    });
    const lines = s.split("\n");
    // Sources are opened before any overlay can hide them; the host path is never written.
    expect(lines.indexOf("exec 10<'/p/v/cfg'")).toBeLessThan(
      lines.findIndex((l) => l.startsWith("mount -t overlay")),
    );
    expect(s).toContain("lowerdir=/var/run,upperdir=/proc/self/fd/9/var_run/upper");
    expect(s).toContain("mkdir -p '/var/run/secrets/x'\nmount --no-canonicalize --bind /proc/self/fd/11 '/var/run/secrets/x'");
    expect(s).toContain("mount -o remount,bind,ro '/var/run/secrets/x'");
    expect(s).not.toContain("mkdir -p '/etc'");
    expect(lines.slice(-3)).toEqual(["hostname 'web-1'", "cd '/srv'", 'exec "$@"']);
  });
  test("quotes hostile paths and refuses to overlay the root", () => {
    const s = mountScript({
      mounts: [{ source: "/p/a'b", mountPath: "/x y", readOnly: false }],
      overlayDir: "/o",
    });
    expect(s).toContain(`exec 10<'/p/a'\\''b'`);
    expect(() =>
      mountScript({
        mounts: [{ source: "/s", mountPath: "/data", readOnly: false, missingUnder: "/" }],
        overlayDir: "/o",
      }),
    ).toThrow(MountPlanError);
  });
});

test("podRefs collects ConfigMaps, Secrets and token audiences from env, envFrom and volumes", () => {
  const r = podRefs({
    containers: [
      {
        name: "c",
        image: "x",
        envFrom: [{ configMapRef: { name: "cm1" } }, { secretRef: { name: "s1" } }],
        env: [{ name: "A", valueFrom: { secretKeyRef: { name: "s2", key: "k" } } }],
      },
    ],
    volumes: [
      { name: "v", configMap: { name: "cm2" } },
      {
        name: "t",
        projected: { sources: [{ serviceAccountToken: { path: "token" } }, { configMap: { name: "cm1" } }] },
      },
    ],
  });
  expect(r).toEqual({ configMaps: ["cm1", "cm2"], secrets: ["s1", "s2"], tokenAudiences: [""] });
});

test("Node and Lease objects carry the lab's CIDRs, addresses and kubelet endpoint", () => {
  const id = {
    name: "n1",
    addresses: ["192.168.1.1"],
    podCIDRs: ["10.1.1.0/24"],
    labels: { a: "b" },
    kubeletPort: 10250,
  };
  expect(nodeObject(id)).toMatchObject({
    metadata: { name: "n1", labels: { a: "b" } },
    spec: { podCIDRs: ["10.1.1.0/24"] },
  });
  const st = nodeStatus(id, "2026-01-01T00:00:00Z").status as Record<string, unknown>;
  expect(st.daemonEndpoints).toEqual({ kubeletEndpoint: { Port: 10250 } });
  expect(st.addresses).toContainEqual({ type: "InternalIP", address: "192.168.1.1" });
  expect((leaseObject("n1").spec as { renewTime: string }).renewTime).toMatch(/\.\d{6}Z$/);
});
