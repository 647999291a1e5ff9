#!/usr/bin/env bun
/** kosmos-kubelet: the lab kubelet of one lab node (see internal/kubelet, docs/lab.md). Flags → Kubelet. */
import { Command } from "commander";
import { KubeClient, loadKubeConfig } from "../internal/kube/index.ts";
import { Kubelet } from "../internal/kubelet/index.ts";
import { createLogger } from "../internal/observability/index.ts";

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

const program = new Command("kosmos-kubelet")
  .description(
    "Lab kubelet: registers a lab node as a Node, renews its Lease, and runs the pods bound to it as real processes in network namespaces on the node's cni0",
  )
  .requiredOption("--kubeconfig <file>", "kubeconfig of the node's cluster")
  .requiredOption("--node <name>", "Node name")
  .requiredOption("--node-ns <netns>", "the node's network namespace (with its cni0 bridge)")
  .requiredOption(
    "--address <ip>",
    "node InternalIP (repeat for dual stack; the first is the host IP)",
    collect,
  )
  .requiredOption("--pod-cidr <cidr>", "the node's pod CIDR (repeat per family)", collect)
  .option("--label <k=v>", "Node label (repeat)", collect)
  .option("--pod-ns-prefix <prefix>", "prefix of pod network namespaces (default <node-ns>-)")
  .option(
    "--root <dir>",
    "state directory (pod files, logs, the node's hostPath root)",
    "/run/kosmos/kubelet",
  )
  .option("--kubelet-port <port>", "port of the kubelet API on 127.0.0.1 (0: none)", "0")
  .option("--env <k=v>", "environment for every container, e.g. KUBERNETES_SERVICE_HOST (repeat)", collect)
  .option(
    "--cluster-dns <ip>",
    "nameserver of ClusterFirst pods' resolv.conf (repeat; none: the node's file)",
    collect,
  )
  .option(
    "--cluster-domain <domain>",
    "the cluster's DNS domain (search list of ClusterFirst pods)",
    "cluster.local",
  )
  .option(
    "--tls-cert-file <file>",
    "kubelet API serving certificate (signed by the cluster CA, SAN localhost)",
  )
  .option("--tls-private-key-file <file>", "its key")
  .option("--client-ca-file <file>", "CA of the API server's kubelet client certificate")
  .option(
    "--cluster-cidr <cidr>",
    "run the kube-proxy stand-in; the cluster's pod CIDR (repeat per family)",
    collect,
  )
  .option("--log-level <level>", "log level", process.env.KOSMOS_LOG_LEVEL ?? "info")
  .parse();

const o = program.opts<{
  kubeconfig: string;
  node: string;
  nodeNs: string;
  address: string[];
  podCidr: string[];
  label?: string[];
  podNsPrefix?: string;
  root: string;
  kubeletPort: string;
  env?: string[];
  clusterCidr?: string[];
  clusterDns?: string[];
  clusterDomain: string;
  tlsCertFile?: string;
  tlsPrivateKeyFile?: string;
  clientCaFile?: string;
  logLevel: string;
}>();

const pairs = (xs: string[] = []): Record<string, string> =>
  Object.fromEntries(
    xs.map((x) => {
      const i = x.indexOf("=");
      if (i <= 0) program.error(`"${x}" is not key=value`);
      return [x.slice(0, i), x.slice(i + 1)];
    }),
  );

const log = createLogger({ component: "kubelet", node: o.node, level: o.logLevel });
const kubelet = new Kubelet({
  client: new KubeClient(loadKubeConfig(o.kubeconfig)),
  node: {
    name: o.node,
    addresses: o.address,
    podCIDRs: o.podCidr,
    labels: pairs(o.label),
    kubeletPort: Number(o.kubeletPort),
  },
  nodeNs: o.nodeNs,
  ...(o.podNsPrefix ? { podNsPrefix: o.podNsPrefix } : {}),
  root: o.root,
  env: pairs(o.env),
  clusterDNS: o.clusterDns ?? [],
  clusterDomain: o.clusterDomain,
  ...(o.tlsCertFile && o.tlsPrivateKeyFile
    ? {
        tls: {
          certFile: o.tlsCertFile,
          keyFile: o.tlsPrivateKeyFile,
          ...(o.clientCaFile ? { clientCAFile: o.clientCaFile } : {}),
        },
      }
    : {}),
  ...(o.clusterCidr ? { proxyClusterCIDRs: o.clusterCidr } : {}),
  log,
});

let stopping = false;
const stop = async (sig: string): Promise<void> => {
  if (stopping) return;
  stopping = true;
  log.info({ signal: sig }, "stopping: pods are stopped with the kubelet");
  await kubelet
    .stop({ stopPods: true })
    .catch((e: unknown) => log.error({ err: (e as Error).message }, "stop failed"));
  process.exit(0);
};
process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));

await kubelet.start();
log.info({ node: o.node, podCIDRs: o.podCidr }, "lab kubelet running");
