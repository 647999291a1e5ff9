/** kosmosctl commands that talk to Kubernetes: install, uninstall, join, unjoin, get. */
import { Command } from "commander";
import { type KubeClient, kubeClient } from "../kube/index.ts";
import { install, join, KosmosCliError, type UnjoinResult, uninstall, unjoin } from "./k8s-ops.ts";
import { listVirtualNodes, virtualNodesTable } from "./k8s-tree.ts";
import { getMcs, MCS_KINDS } from "./mcs.ts";
import { type OutputFormat, parseOutput, printData, progressBar, renderTable } from "./output.ts";
import { waitWithBar } from "./rollout.ts";

const NETWORK_TYPES = ["p2p", "gateway"];
const IP_FAMILIES = ["ipv4", "ipv6", "all", "dual"];

function oneOf(flag: string, allowed: string[]): (v: string) => string {
  return (v) => {
    if (!allowed.includes(v))
      throw new KosmosCliError(
        "KOSMOS_BAD_FLAG",
        `${flag} must be one of ${allowed.join(", ")} (got "${v}")`,
        `e.g. ${flag} ${allowed[0]}`,
      );
    return v;
  };
}

const seconds = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new KosmosCliError(
      "KOSMOS_BAD_FLAG",
      `--timeout: not a number of seconds: ${v}`,
      "e.g. --timeout 300",
    );
  return n;
};

const client = (file?: string): KubeClient => kubeClient({ file });

function installCommand(): Command {
  return new Command("install")
    .description(
      "install Kosmos (CRDs, RBAC, controller, agents, token + installation secret) and wait for the rollout",
    )
    .option("--kubeconfig <file>", "kubeconfig of the host cluster (default: $KUBECONFIG, ~/.kube/config)")
    .option(
      "--cluster-name <name>",
      "this cluster's name in Kosmos (agents' node names are <name>-<node>)",
      "kosmos-control-cluster",
    )
    .option(
      "--timeout <seconds>",
      "how long to wait for the rollout (and for a namespace being deleted)",
      seconds,
      300,
    )
    .option(
      "--wait-agents",
      "also wait for every agent to be ready (needs the cluster joined: topology applied)",
      false,
    )
    .option(
      "--mcs",
      "multi-cluster services: the controller runs the MCS controller (ServiceExport/ServiceImport, ClusterSetIPs) and every agent answers clusterset.local on its node's address, port 53 (docs/services.md)",
      false,
    )
    .option("--no-wait", "do not wait for the rollout")
    .action(
      async (o: {
        kubeconfig?: string;
        mcs: boolean;
        clusterName: string;
        timeout: number;
        waitAgents: boolean;
        wait: boolean;
      }) => {
        const host = client(o.kubeconfig);
        const bar = progressBar(1, "apply");
        let created: string[];
        try {
          created = await install(host, {
            clusterName: o.clusterName,
            mcs: o.mcs,
            timeoutMs: o.timeout * 1000,
            onWait: () =>
              process.stderr.write(
                "namespace kosmos-system is being deleted (a recent uninstall): waiting for it to go\n",
              ),
            onProgress: (n, total, what) => bar.update(n, what, total),
          });
        } finally {
          bar.stop();
        }
        console.log(
          `Kosmos objects applied; secrets: ${created.length > 0 ? `created ${created.join(", ")}` : "kept existing kosmos-token, kosmos-secret"}.`,
        );
        if (o.wait)
          await waitWithBar(host, {
            timeoutMs: o.timeout * 1000,
            agents: o.waitAgents ? "ready" : "scheduled",
          });
        console.log("Kosmos installed.");
      },
    );
}

function uninstallCommand(): Command {
  return new Command("uninstall")
    .description(
      "unjoin every member (their agents too), remove everything `install` created (secrets included) and wait for the namespace to go",
    )
    .option("--kubeconfig <file>", "kubeconfig of the host cluster (default: $KUBECONFIG, ~/.kube/config)")
    .option("--timeout <seconds>", "how long to wait for the namespace to be deleted", seconds, 120)
    .action(async (o: { kubeconfig?: string; timeout: number }) => {
      const bar = progressBar(1, "delete");
      try {
        await uninstall(client(o.kubeconfig), {
          timeoutMs: o.timeout * 1000,
          onMember: (name, r) => process.stderr.write(`member ${name}: ${describeUnjoin(r)}\n`),
          onProgress: (n, total, what) => bar.update(n, what, total),
        });
      } finally {
        bar.stop();
      }
      console.log("Kosmos uninstalled.");
    });
}

function describeUnjoin(r: UnjoinResult): string {
  if (r === "agents-removed") return "agents removed";
  if (r === "agents-kept-host")
    return "runs the Kosmos controller (host cluster): its agents belong to install";
  return "no kubeconfig: its agents are left in place";
}

/** `--global-cidr 10.244.0.0/16=242.1.0.0/16`, repeated, into a map (bad input: a clear error). */
function collectGlobalCidr(v: string, acc: Record<string, string>): Record<string, string> {
  const m = /^([0-9a-fA-F:.]+\/\d+)=([0-9a-fA-F:.]+\/\d+)$/.exec(v.trim());
  if (!m)
    throw new KosmosCliError(
      "KOSMOS_BAD_ARG",
      `--global-cidr: not <local CIDR>=<global CIDR>: ${v}`,
      "e.g. --global-cidr 10.244.0.0/16=242.1.0.0/16",
    );
  return { ...acc, [m[1]!]: m[2]! };
}

/** A kubeconfig file's text, or a clear error naming the file. */
async function readKubeconfigFile(file: string): Promise<string> {
  try {
    return await Bun.file(file).text();
  } catch (e) {
    throw new KosmosCliError(
      "KOSMOS_BAD_ARG",
      `cannot read kubeconfig ${file}: ${(e as Error).message}`,
      "pass a readable kubeconfig file",
    );
  }
}

function joinCommand(): Command {
  const cmd = new Command("join").description("join a member cluster");
  cmd
    .command("cluster")
    .description(
      "create the member's kubeconfig Secret and Cluster on the host, install the agents into the member " +
        "(namespace, service account, DaemonSet, kosmos-token + kosmos-secret copied from the host) and wait for them",
    )
    .requiredOption("--name <name>", "the member cluster's name (its Cluster object)")
    .requiredOption("--kubeconfig <file>", "kubeconfig of the member cluster")
    .option(
      "--stored-kubeconfig <file>",
      "the member's kubeconfig as Kosmos' controllers in the host cluster reach it, when that differs from yours " +
        "(default: --kubeconfig; kind: `kind get kubeconfig --internal`, the lab: `kosmosctl lab kubeconfig c2 --internal --path`)",
    )
    .option("--host-kubeconfig <file>", "kubeconfig of the host cluster")
    .option(
      "--global-cidr <local=global>",
      "map a pod CIDR that overlaps another cluster's to a global one of the same size (repeat; clusterLinkOptions.globalCIDRsMap)",
      collectGlobalCidr,
      {} as Record<string, string>,
    )
    .option(
      "--pod-cidr <cidr>",
      "the member's pod CIDRs when they cannot be detected (repeat; clusterLinkOptions.clusterpodCIDRs)",
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option("--network-type <t>", "p2p|gateway", oneOf("--network-type", NETWORK_TYPES), "p2p")
    .option("--ip-family <f>", "ipv4|ipv6|all", oneOf("--ip-family", IP_FAMILIES), "ipv4")
    .option("--mcs", "the member's agents answer clusterset.local too (as with install --mcs)", false)
    .option("--timeout <seconds>", "how long to wait for the agents' rollout", seconds, 300)
    .option("--wait-agents", "wait for every agent to be ready (topology applied)", false)
    .option("--no-wait", "do not wait for the agents' rollout")
    .option(
      "--enable-tree",
      "ClusterTree: the member also appears as virtual node(s) of the host, which runs kosmos-clustertree (manifests/clustertree.yaml)",
      false,
    )
    .option(
      "--leaf-model <json>",
      'with --enable-tree: clusterTreeOptions.leafModels as JSON, e.g. \'[{"nodeSelector":{"nodeName":"n1"}}]\' (default: one node for the whole cluster)',
    )
    .action(
      async (o: {
        name: string;
        kubeconfig: string;
        storedKubeconfig?: string;
        hostKubeconfig?: string;
        globalCidr: Record<string, string>;
        podCidr: string[];
        mcs: boolean;
        networkType: string;
        ipFamily: string;
        timeout: number;
        waitAgents: boolean;
        wait: boolean;
        enableTree: boolean;
        leafModel?: string;
      }) => {
        let leafModels: unknown[] | undefined;
        if (o.leafModel !== undefined) {
          if (!o.enableTree)
            throw new KosmosCliError(
              "KOSMOS_BAD_ARG",
              "--leaf-model needs --enable-tree",
              "add --enable-tree",
            );
          try {
            leafModels = JSON.parse(o.leafModel) as unknown[];
          } catch (e) {
            throw new KosmosCliError(
              "KOSMOS_BAD_ARG",
              `--leaf-model: not JSON: ${(e as Error).message}`,
              "pass a JSON array of leaf models",
            );
          }
          if (!Array.isArray(leafModels))
            throw new KosmosCliError(
              "KOSMOS_BAD_ARG",
              "--leaf-model: not a JSON array",
              "pass a JSON array of leaf models",
            );
        }
        const memberKubeconfig = await readKubeconfigFile(o.storedKubeconfig ?? o.kubeconfig);
        const member = client(o.kubeconfig);
        await join(client(o.hostKubeconfig), member, {
          name: o.name,
          memberKubeconfig,
          networkType: o.networkType,
          ipFamily: o.ipFamily,
          timeoutMs: o.timeout * 1000,
          tree: o.enableTree ? { enable: true, ...(leafModels ? { leafModels } : {}) } : undefined,
          link: { globalCIDRsMap: o.globalCidr, clusterpodCIDRs: o.podCidr },
          mcs: o.mcs,
          onWait: () =>
            process.stderr.write(
              "the member's kosmos-system namespace is being deleted: waiting for it to go\n",
            ),
        });
        console.log(`agents of ${o.name} applied (DaemonSet kosmos-agent, KOSMOS_CLUSTER_NAME=${o.name})`);
        if (o.wait)
          await waitWithBar(member, {
            timeoutMs: o.timeout * 1000,
            agents: o.waitAgents ? "ready" : "scheduled",
            controller: false,
          });
        console.log(`cluster ${o.name} joined`);
      },
    );
  return cmd;
}

function unjoinCommand(): Command {
  const cmd = new Command("unjoin").description("remove a member cluster");
  cmd
    .command("cluster")
    .description(
      "remove the member's agents (DaemonSet, secrets), its Cluster, ClusterNodes and kubeconfig Secret",
    )
    .requiredOption("--name <name>", "the member cluster's name (its Cluster object)")
    .option("--host-kubeconfig <file>", "kubeconfig of the host cluster")
    .option("--kubeconfig <file>", "kubeconfig of the member cluster (default: the one stored at join)")
    .action(async (o: { name: string; hostKubeconfig?: string; kubeconfig?: string }) => {
      const r = await unjoin(
        client(o.hostKubeconfig),
        o.name,
        o.kubeconfig ? client(o.kubeconfig) : undefined,
      );
      if (r !== "agents-removed") console.error(`note: ${o.name}: ${describeUnjoin(r)}`);
      console.log(`cluster ${o.name} unjoined`);
    });
  return cmd;
}

interface ListedObject {
  metadata: { name: string };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

const csv = (v: unknown): string => (Array.isArray(v) ? v.join(",") : "");

function getCommand(): Command {
  return new Command("get")
    .description(
      "list clusters, nodes (ClusterNodes, then the ClusterTree virtual nodes if any), virtualnodes, or the multi-cluster services of a cluster",
    )
    .argument("<what>", "clusters|nodes|virtualnodes|serviceimports|serviceexports")
    .option("--kubeconfig <file>", "kubeconfig of the host cluster (default: $KUBECONFIG, ~/.kube/config)")
    .option("-n, --namespace <ns>", "serviceimports/serviceexports: one namespace (default: all)")
    .option("-o, --output <fmt>", "table|json|yaml", parseOutput, "table" as OutputFormat)
    .action(async (what: string, o: { kubeconfig?: string; namespace?: string; output: OutputFormat }) => {
      const mcs = MCS_KINDS[what];
      if (mcs) return getMcs(client(o.kubeconfig), mcs, o.namespace, o.output);
      if (/^(virtualnodes|virtualnode|vnodes|vn)$/.test(what)) {
        const rows = await listVirtualNodes(client(o.kubeconfig));
        printData(o.output, rows, () => virtualNodesTable(rows));
        return;
      }
      const kind = /^(cluster|clusters|kc)$/.test(what)
        ? "clusters"
        : /^(node|nodes|clusternodes|cn)$/.test(what)
          ? "clusternodes"
          : undefined;
      if (!kind)
        throw new KosmosCliError(
          "KOSMOS_BAD_ARG",
          `cannot get "${what}"`,
          "kosmosctl get clusters|nodes|virtualnodes|serviceimports|serviceexports",
        );
      const list = await client(o.kubeconfig).list<ListedObject>(`/apis/kosmos.io/v1alpha1/${kind}`);
      if (kind === "clusters") {
        printData(o.output, list, () =>
          renderTable(
            ["NAME", "NETWORK_TYPE", "IP_FAMILY", "READY", "NODES", "POD_CIDRS", "SERVICE_CIDRS"],
            list.items.map((c) => {
              const opt = (c.spec?.clusterLinkOptions ?? {}) as Record<string, unknown>;
              const st = (c.status?.clusterLinkStatus ?? {}) as Record<string, unknown>;
              const ready = (
                (c.status?.conditions ?? []) as { type: string; status: string; reason?: string }[]
              ).find((x) => x.type === "Ready");
              return [
                c.metadata.name,
                String(opt.networkType ?? ""),
                String(opt.ipFamily ?? ""),
                ready ? `${ready.status}${ready.status === "True" ? "" : ` (${ready.reason})`}` : "",
                String(c.status?.nodeCount ?? ""),
                csv(st.podCIDRs),
                csv(st.serviceCIDRs),
              ];
            }),
          ),
        );
      } else {
        // ClusterTree virtual nodes ride along: `.virtualNodes` beside `.items` (the list stays as it was)
        const virtualNodes = await listVirtualNodes(client(o.kubeconfig));
        printData(o.output, virtualNodes.length > 0 ? { ...list, virtualNodes } : list, () =>
          [
            renderTable(
              ["NAME", "CLUSTER", "IP", "IP6", "ROLES", "POD_CIDRS"],
              list.items.map((n) => [
                n.metadata.name,
                String(n.spec?.clusterName ?? ""),
                String(n.spec?.ip ?? ""),
                String(n.spec?.ip6 ?? ""),
                csv(n.spec?.roles),
                csv(n.spec?.podCIDRs),
              ]),
            ),
            ...(virtualNodes.length > 0 ? [virtualNodesTable(virtualNodes)] : []),
          ].join("\n"),
        );
      }
    });
}

export function k8sCommands(): Command[] {
  return [installCommand(), uninstallCommand(), joinCommand(), unjoinCommand(), getCommand()];
}
