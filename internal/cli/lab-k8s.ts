/** `kosmosctl lab` commands for the lab's real Kubernetes clusters (internal/lab/kubernetes.ts). */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { type Command, Option } from "commander";
import { KubeClient, loadKubeConfig } from "../kube/index.ts";
import {
  isRunning,
  kubeconfigFile,
  type LabKubeState,
  launchSupervisor,
  loadLab,
  readKubeState,
  superviseLabKubernetes,
} from "../lab/index.ts";
import { labClustersetInventory } from "./check-clusterset-inventory.ts";
import { FAIL, OK, type OutputFormat, parseOutput, printData, renderTable } from "./output.ts";

const KOSMOSCTL = resolve(import.meta.dir, "../../cmd/kosmosctl.ts");

/** Start the lab's control planes and kubelets (after the network is up); returns their state. */
export function upKubernetes(lab: string): Promise<LabKubeState> {
  return launchSupervisor(lab, [process.execPath, KOSMOSCTL, "lab", "k8s-supervise", "--name", lab]);
}

export interface ClusterRow {
  cluster: string;
  server: string;
  internalServer: string;
  kubeconfig: string;
  nodes: string;
  readyNodes: number;
  pods: number;
  kubelets: number;
}

/** Per cluster: its API server, kubeconfig file, Ready Nodes, pods, live kubelets. */
export async function kubeRows(st: LabKubeState): Promise<ClusterRow[]> {
  return await Promise.all(
    st.clusters.map(async (c) => {
      const client = new KubeClient(loadKubeConfig(c.kubeconfig));
      try {
        const nodes = await client
          .list<{ status?: { conditions?: { type: string; status: string }[] } }>("/api/v1/nodes")
          .catch(() => ({ items: [] }));
        const pods = await client.list("/api/v1/pods").catch(() => ({ items: [] }));
        const ready = nodes.items.filter((n) =>
          n.status?.conditions?.some((k) => k.type === "Ready" && k.status === "True"),
        );
        const kl = st.kubelets.filter((k) => k.cluster === c.name);
        return {
          cluster: c.name,
          server: c.server,
          internalServer: c.internalServer,
          kubeconfig: c.kubeconfig,
          nodes: `${ready.length}/${nodes.items.length}`,
          readyNodes: ready.length,
          pods: pods.items.length,
          kubelets: kl.filter((k) => isRunning(k.pid)).length,
        };
      } finally {
        client.close();
      }
    }),
  );
}

export function printKubeRows(rows: ClusterRow[]): string {
  return renderTable(
    ["CLUSTER", "API SERVER", "IN THE LAB", "NODES READY", "PODS", "KUBELETS", "KUBECONFIG"],
    rows.map((r) => [r.cluster, r.server, r.internalServer, r.nodes, r.pods, r.kubelets, r.kubeconfig]),
  );
}

export function addLabKubernetesCommands(
  lab: Command,
  nameOption: () => import("commander").Option,
  outputOption: () => import("commander").Option,
): void {
  lab
    .command("kubeconfig")
    .description(
      "print the admin kubeconfig of a lab cluster (lab up --kubernetes): kubectl --kubeconfig <(kosmosctl lab kubeconfig c1) get nodes",
    )
    .argument("<cluster>", "lab cluster name")
    .addOption(nameOption())
    .option("--path", "print the file's path instead of its content", false)
    .option(
      "--internal",
      "the API server as the lab's nodes and pods reach it (for Secrets read inside the lab, e.g. join cluster --stored-kubeconfig), not as this host does",
      false,
    )
    .action(async (cluster: string, o: { name: string; path: boolean; internal: boolean }) => {
      const st = await readKubeState(o.name);
      if (!st?.ready)
        throw Object.assign(new Error(`lab "${o.name}" has no Kubernetes clusters`), {
          hint: "start the lab with `kosmosctl lab up --kubernetes`",
        });
      if (!st.clusters.some((c) => c.name === cluster))
        throw Object.assign(new Error(`no cluster "${cluster}" in lab ${o.name}`), {
          hint: `one of: ${st.clusters.map((c) => c.name).join(", ")}`,
        });
      const file = kubeconfigFile(o.name, cluster, o.internal);
      process.stdout.write(o.path ? `${file}\n` : await readFile(file, "utf8"));
    });

  lab
    .command("clusters")
    .description("the lab's Kubernetes clusters: API servers, Ready nodes, pods, kubelets, kubeconfig files")
    .addOption(nameOption())
    .addOption(outputOption())
    .action(async (o: { name: string; output: OutputFormat }) => {
      const st = await readKubeState(o.name);
      if (!st) {
        process.stdout.write(`lab "${o.name}" runs no Kubernetes clusters (lab up --kubernetes)\n`);
        return;
      }
      const rows = await kubeRows(st);
      const maps = st.portMappings ?? [];
      printData(
        o.output,
        { supervisorPid: st.supervisorPid, ready: st.ready, clusters: rows, portMappings: maps },
        () =>
          `${printKubeRows(rows)}\n${
            maps.length
              ? `${renderTable(
                  ["PORT MAPPING (host → node)", "CLUSTER", "NODE"],
                  maps.map((m) => [
                    `127.0.0.1:${m.hostPort} → ${m.nodeAddress}:${m.containerPort}`,
                    m.cluster,
                    m.node,
                  ]),
                )}\n`
              : ""
          }${rows.every((r) => r.kubelets > 0 && r.readyNodes > 0) ? OK : FAIL} supervisor pid ${st.supervisorPid}`,
      );
    });

  lab
    .command("inventory")
    .description(
      "print the lab (lab up --kubernetes, Kosmos installed) as an inventory file for `kosmosctl check --inventory`: nodes, the pods the clusterset check asks, the agents' sockets, the clusters' kubeconfigs",
    )
    .addOption(nameOption())
    .addOption(
      new Option("-o, --output <format>", "yaml | json (the file) | table (one row per endpoint)")
        .default("yaml")
        .argParser(parseOutput),
    )
    .action(async (o: { name: string; output: OutputFormat }) => {
      const inv = await labClustersetInventory(o.name);
      printData(o.output, inv, () =>
        renderTable(
          ["ENDPOINT", "KIND", "CLUSTER", "NODE", "ENTERED WITH"],
          inv.endpoints.map((e) => [e.id, e.kind, e.cluster, e.node, e.execPrefix.join(" ") || "(the node)"]),
        ),
      );
    });

  lab
    .command("k8s-supervise", { hidden: true })
    .description("(internal) run the lab's control planes and kubelets until SIGTERM")
    .addOption(nameOption())
    .action(async (o: { name: string }) => {
      const { plan } = await loadLab(o.name);
      await superviseLabKubernetes(plan);
    });
}
