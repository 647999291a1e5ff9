/** Kubelet API authorization of ClusterTree (internal/clustertree/authz.ts): the kubelet's mapping, the SAR cache. */
import { describe, expect, test } from "bun:test";
import { kubeletAttributes, userOfCert, webhookAuthorizer } from "../../internal/clustertree/authz.ts";
import type { KubeClient } from "../../internal/kube/index.ts";

describe("ClusterTree kubelet API authorization", () => {
  test("paths and methods map to node subresources and verbs as the kubelet maps them", () => {
    expect(kubeletAttributes("GET", "/containerLogs/ns/p/c?tailLines=1", "kosmos-leaf1")).toEqual({
      verb: "get",
      resource: "nodes",
      subresource: "proxy",
      name: "kosmos-leaf1",
    });
    expect(kubeletAttributes("POST", "/exec/ns/p/c?command=ls", "n").verb).toBe("create");
    expect(kubeletAttributes("GET", "/exec/ns/p/c", "n").subresource).toBe("proxy");
    expect(kubeletAttributes("GET", "/stats/summary", "n").subresource).toBe("stats");
    expect(kubeletAttributes("GET", "/metrics", "n").subresource).toBe("metrics");
    expect(kubeletAttributes("GET", "/logs/syslog", "n").subresource).toBe("log");
    expect(kubeletAttributes("GET", "/spec/", "n").subresource).toBe("spec");
    expect(kubeletAttributes("GET", "/statsx", "n").subresource).toBe("proxy");
  });

  test("a certificate's CN is the user, its O fields the groups", () => {
    expect(userOfCert({ CN: "kube-apiserver-kubelet-client", O: "system:masters" })).toEqual({
      name: "kube-apiserver-kubelet-client",
      groups: ["system:masters", "system:authenticated"],
    });
    expect(userOfCert({ CN: "u", O: ["a", "b"] })?.groups).toEqual(["a", "b", "system:authenticated"]);
    expect(userOfCert({ O: "a" })).toBeUndefined();
    expect(userOfCert(undefined)).toBeUndefined();
  });

  test("answers are cached: allowed 5 min, denied 30 s", async () => {
    let calls = 0;
    let allow = false;
    const root = {
      create: async () => {
        calls++;
        return { status: { allowed: allow, reason: allow ? "ok" : "no" } };
      },
    } as unknown as KubeClient;
    let now = 0;
    const authz = webhookAuthorizer(root, () => now);
    const u = { name: "u", groups: [] };
    const a = kubeletAttributes("GET", "/containerLogs/a/b/c", "n");
    expect((await authz(u, a)).allowed).toBe(false);
    allow = true;
    now = 29_999;
    expect((await authz(u, a)).allowed).toBe(false); // cached denial
    now = 30_000;
    expect((await authz(u, a)).allowed).toBe(true);
    now = 329_999;
    expect((await authz(u, a)).allowed).toBe(true);
    expect(calls).toBe(2);
  });
});
