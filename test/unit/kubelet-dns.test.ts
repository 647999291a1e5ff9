/** The lab kubelet's pod resolv.conf (internal/kubelet/dns.ts), policy by policy as the kubelet writes it. */
import { describe, expect, test } from "bun:test";
import { resolvConf } from "../../internal/kubelet/index.ts";

const host = "nameserver 10.255.255.53\nsearch corp.example\noptions edns0\n";
const base = {
  hostNetwork: false,
  namespace: "demo",
  clusterDNS: ["192.168.3.1"],
  clusterDomain: "cluster.local",
  hostResolvConf: host,
};

describe("pod resolv.conf", () => {
  test("ClusterFirst: the cluster DNS, the namespace's search list before the node's, ndots:5", () => {
    expect(resolvConf(base)).toBe(
      "nameserver 192.168.3.1\nsearch demo.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:5\n",
    );
  });

  test("the node's file: Default, hostNetwork with ClusterFirst, or no cluster DNS", () => {
    expect(resolvConf({ ...base, dnsPolicy: "Default" })).toBeUndefined();
    expect(resolvConf({ ...base, hostNetwork: true })).toBeUndefined();
    expect(resolvConf({ ...base, clusterDNS: [] })).toBeUndefined();
  });

  test("ClusterFirstWithHostNet gives hostNetwork pods the cluster DNS", () => {
    expect(resolvConf({ ...base, hostNetwork: true, dnsPolicy: "ClusterFirstWithHostNet" })).toStartWith(
      "nameserver 192.168.3.1\n",
    );
  });

  test("None takes only dnsConfig; dnsConfig adds to the others, a later option value wins", () => {
    expect(
      resolvConf({
        ...base,
        dnsPolicy: "None",
        dnsConfig: {
          nameservers: ["1.2.3.4"],
          searches: ["a.example"],
          options: [{ name: "ndots", value: "2" }],
        },
      }),
    ).toBe("nameserver 1.2.3.4\nsearch a.example\noptions ndots:2\n");
    expect(
      resolvConf({
        ...base,
        dnsConfig: { nameservers: ["192.168.3.1", "9.9.9.9"], options: [{ name: "ndots", value: "1" }] },
      }),
    ).toBe(
      "nameserver 192.168.3.1\nnameserver 9.9.9.9\nsearch demo.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:1\n",
    );
    expect(resolvConf({ ...base, dnsPolicy: "Default", dnsConfig: { searches: ["x.example"] } })).toBe(
      "nameserver 10.255.255.53\nsearch corp.example x.example\noptions edns0\n",
    );
  });
});
