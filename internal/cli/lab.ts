import { Command, Option } from "commander";
import { assetsProblem } from "../controlplane/index.ts";
import {
  agentSocket,
  connectivityMatrix,
  LabConfigError,
  type LabPlan,
  labAddNode,
  labDown,
  labHeal,
  labHealAll,
  labKillAgent,
  labPartition,
  labRestartAgent,
  labStatus,
  labUp,
  loadLab,
  type ProbeResult,
  readKubeState,
  resolveTarget,
} from "../lab/index.ts";
import { kubernetesDemo } from "./lab-demo-k8s.ts";
import { treeDemo } from "./lab-demo-tree.ts";
import { addLabKubernetesCommands, kubeRows, printKubeRows, upKubernetes } from "./lab-k8s.ts";
import { loadConfig, presetOption } from "./lab-config.ts";
import { FAIL, OK, type OutputFormat, parseOutput, printData, progressBar, renderTable } from "./output.ts";

const DEFAULT_NAME = process.env.KOSMOS_LAB ?? "kosmos";

function nameOption() {
  return new Option("--name <name>", "lab name (prefixes every namespace: kl-<name>-)").default(DEFAULT_NAME);
}

function outputOption() {
  return new Option("-o, --output <format>", "table | json | yaml").default("table").argParser(parseOutput);
}

export function describeLab(plan: LabPlan): string {
  const rows: Array<Array<string | number>> = [];
  for (const n of plan.nodes) {
    const c = plan.clusters.find((x) => x.name === n.cluster);
    rows.push([
      n.cluster,
      c ? `${c.networkType}/${c.ipFamily}` : "",
      n.name + (n.gatewayCandidate ? " (gw)" : ""),
      n.ipv4,
      n.podCIDRs.join(" "),
      n.pods
        .map((p) => [p.ipv4, p.globalIPv4 ? `→${p.globalIPv4}` : "", p.ipv6].filter(Boolean).join(" "))
        .join(", "),
    ]);
  }
  return renderTable(["CLUSTER", "MODE", "NODE", "UNDERLAY", "POD CIDRS", "POD IPS (global)"], rows);
}

export function matrixTable(results: ProbeResult[]): string {
  // Rows: source pod; columns: destination (pod or service) per family; cell: icmp/tcp marks.
  const dsts = [...new Set(results.map((r) => `${r.dst} v${r.family}`))];
  const srcs = [...new Set(results.map((r) => r.src))];
  const cell = (src: string, dst: string) => {
    const rs = results.filter((r) => r.src === src && `${r.dst} v${r.family}` === dst);
    if (rs.length === 0) return "";
    return rs.map((r) => `${r.ok ? OK : FAIL}${r.proto === "icmp" ? "ping" : "tcp"}`).join(" ");
  };
  const short = (s: string) => s.replace(/-node-/, "-n").replace(/-pod-/, "-p");
  return renderTable(
    ["FROM \\ TO", ...dsts.map(short)],
    srcs.map((s) => [short(s), ...dsts.map((d) => cell(s, d))]),
  );
}

/** One row per (source cluster → destination cluster, family): passed/total per probe kind. */
export function summaryTable(results: ProbeResult[], plan: LabPlan): string {
  const mode = (c: string) => plan.clusters.find((x) => x.name === c)?.networkType ?? "";
  const groups = new Map<string, ProbeResult[]>();
  for (const r of results) {
    const k = `${r.srcCluster}\0${r.dstCluster}\0${r.family}`;
    const g = groups.get(k) ?? [];
    g.push(r);
    groups.set(k, g);
  }
  const cell = (rs: ProbeResult[], kind: "pod" | "svc", proto: "icmp" | "tcp") => {
    const sel = rs.filter((r) => (kind === "svc") === r.dst.startsWith("svc/") && r.proto === proto);
    if (sel.length === 0) return "-";
    const ok = sel.filter((r) => r.ok).length;
    return `${ok === sel.length ? OK : FAIL} ${ok}/${sel.length}`;
  };
  const rows = [...groups.entries()].map(([k, rs]) => {
    const [src = "", dst = "", fam = ""] = k.split("\0");
    return [
      `${src} (${mode(src)})`,
      `${dst} (${mode(dst)})`,
      `IPv${fam}`,
      cell(rs, "pod", "icmp"),
      cell(rs, "pod", "tcp"),
      cell(rs, "svc", "icmp"),
      cell(rs, "svc", "tcp"),
    ];
  });
  return renderTable(["FROM", "TO", "FAMILY", "POD PING", "POD TCP", "SERVICE PING", "SERVICE TCP"], rows);
}

export function failuresTable(results: ProbeResult[]): string {
  const failed = results.filter((r) => !r.ok);
  return renderTable(
    ["#", "SOURCE", "DESTINATION", "TARGET IP", "PROTO", "RESULT"],
    failed.map((r, i) => [i + 1, r.src, r.dst, r.ip, r.proto, r.detail]),
  );
}

async function runMatrix(plan: LabPlan, quiet = false): Promise<ProbeResult[]> {
  let bar: ReturnType<typeof progressBar> | undefined;
  const results = await connectivityMatrix(plan, {
    onResult: (r, done, total) => {
      if (quiet) return;
      bar ??= progressBar(total, "probing");
      bar.update(done, `${r.src} → ${r.dst} ${r.proto}`);
    },
  });
  bar?.stop();
  return results;
}

/** `lab up`. */
function labUpCommand(lab: Command): void {
  lab
    .command("up")
    .description(
      "create the lab (default: 3 clusters — P2P dual-stack, gateway dual-stack, P2P with global IPs)",
    )
    .option("-f, --config <file>", "lab YAML (see docs/lab.md)")
    .addOption(presetOption())
    .addOption(nameOption())
    .option("--no-wait", "return once agents are started, without waiting for them to be ready")
    .option(
      "--kubernetes",
      "make every lab cluster a real Kubernetes cluster: a control plane per cluster (one etcd) and a lab kubelet per node (needs KUBEBUILDER_ASSETS)",
      false,
    )
    .option(
      "--no-agents",
      "start no Kosmos agents: install Kosmos afterwards as on real clusters (with --kubernetes: kosmosctl install / join cluster; docs/lab.md)",
    )
    .action(
      async (o: {
        config?: string;
        preset?: string;
        name: string;
        wait: boolean;
        kubernetes: boolean;
        agents: boolean;
      }) => {
        const config = await loadConfig(o.config, o.preset);
        const t0 = performance.now();
        const bar = progressBar(1, "lab up");
        const handle = await labUp(o.name, config, {
          noWait: !o.wait,
          noAgents: !o.agents,
          progress: (step, done, total) => {
            bar.update(done, step, total);
          },
        }).finally(() => bar.stop());
        process.stdout.write(`${describeLab(handle.plan)}\n`);
        if (o.kubernetes) {
          const st = await upKubernetes(o.name);
          process.stdout.write(`${printKubeRows(await kubeRows(st))}\n`);
        }
        const first = handle.plan.clusters[0]?.name;
        process.stdout.write(
          o.agents
            ? `lab "${o.name}" is up in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${handle.plan.nodes.length} agents. ` +
                `Try: kosmosctl lab exec ${handle.plan.nodes[0]?.cluster}/${handle.plan.nodes[0]?.short}/pod-1 -- ping -c1 <ip>\n`
            : `lab "${o.name}" is up in ${((performance.now() - t0) / 1000).toFixed(1)} s, without Kosmos. ` +
                (o.kubernetes
                  ? `Install it: kosmosctl install --kubeconfig $(kosmosctl lab kubeconfig ${first} --path --name ${o.name})\n`
                  : "\n"),
        );
      },
    );
}

/** `lab down`. */
function labDownCommand(lab: Command): void {
  lab
    .command("down")
    .description("remove everything the lab made (namespaces, processes, state), also after a crash")
    .addOption(nameOption())
    .action(async (o: { name: string }) => {
      const r = await labDown(o.name);
      process.stdout.write(`lab "${o.name}" removed: ${r.namespaces} namespaces, ${r.processes} processes\n`);
    });
}

/** `lab status`. */
function labStatusCommand(lab: Command): void {
  lab
    .command("status")
    .description("clusters, nodes, pods, IPs, agent PIDs, readiness and API endpoints")
    .addOption(nameOption())
    .addOption(outputOption())
    .action(async (o: { name: string; output: OutputFormat }) => {
      const { plan, nodes } = await labStatus(o.name);
      const kube = await readKubeState(o.name);
      const kubeClusters = kube ? await kubeRows(kube) : undefined;
      const data = {
        name: plan.name,
        ...(kubeClusters ? { kubernetes: kubeClusters } : {}),
        clusters: plan.clusters.map((c) => ({
          name: c.name,
          networkType: c.networkType,
          ipFamily: c.ipFamily,
          podCIDRs: c.podCIDRs,
          serviceCIDRs: c.serviceCIDRs,
          globalCIDRs: c.globalCIDRs,
          service: plan.services.find((s) => s.cluster === c.name),
        })),
        nodes: nodes.map((n) => {
          const p = plan.nodes.find((x) => x.name === n.node);
          return {
            name: n.node,
            cluster: n.cluster,
            namespace: n.namespace,
            underlay: n.underlay,
            gatewayCandidate: n.gatewayCandidate,
            agentPid: n.pid,
            ready: n.ready,
            detail: n.detail,
            api: { endpoint: n.endpoint, adminSocket: n.socket },
            gateways: n.agent?.gateways,
            pods: p?.pods.map((x) => ({
              name: x.id,
              namespace: x.ns,
              ipv4: x.ipv4,
              ipv6: x.ipv6,
              globalIPv4: x.globalIPv4,
            })),
          };
        }),
      };
      printData(
        o.output,
        data,
        () =>
          renderTable(
            ["NODE", "CLUSTER", "UNDERLAY", "GW", "AGENT PID", "READY", "DETAIL", "PODS"],
            nodes.map((n) => [
              n.node,
              n.cluster,
              n.underlay[0] ?? "",
              n.gatewayCandidate ? "candidate" : "",
              n.pid ?? "",
              n.ready ? OK : FAIL,
              n.detail,
              plan.nodes
                .find((x) => x.name === n.node)
                ?.pods.map((p) => p.ipv4 ?? p.ipv6)
                .join(" ") ?? "",
            ]),
          ) + (kubeClusters ? `\n${printKubeRows(kubeClusters)}` : ""),
      );
    });
}

/** `lab exec`. */
function labExecCommand(lab: Command): void {
  lab
    .command("exec")
    .description("run a command in a node or pod namespace: lab exec c1/node-1[/pod-1] -- CMD...")
    .addOption(nameOption())
    .argument("<target>", "c1/node-1, c1/node-1/pod-1, c1-node-1, or fabric")
    .argument("<cmd...>", "command and arguments")
    .action(async (target: string, cmd: string[], o: { name: string }) => {
      const { plan } = await loadLab(o.name);
      const t = resolveTarget(plan, target);
      // interactive: the terminal is handed to the command (internal/sys buffers output instead)
      const proc = Bun.spawn(["ip", "netns", "exec", t.ns, ...cmd], {
        stdio: ["inherit", "inherit", "inherit"],
      });
      process.exit(await proc.exited);
    });
}

/** `lab probe`. */
function labProbeCommand(lab: Command): void {
  lab
    .command("probe")
    .description(
      "probe pod→pod and pod→service across clusters (ping + TCP) and summarize (see also `kosmosctl check --lab`)",
    )
    .addOption(nameOption())
    .addOption(outputOption())
    .option("--matrix", "print the full source × destination matrix", false)
    .action(async (o: { name: string; output: OutputFormat; matrix: boolean }) => {
      const { plan } = await loadLab(o.name);
      const results = await runMatrix(plan, o.output !== "table");
      const failed = results.filter((r) => !r.ok);
      printData(o.output, { total: results.length, failed: failed.length, results }, () => {
        let s = o.matrix ? matrixTable(results) : summaryTable(results, plan);
        s += `\n${results.length - failed.length}/${results.length} probes succeeded`;
        if (failed.length) s += `\n${failuresTable(results)}`;
        return s;
      });
      process.exitCode = failed.length ? 1 : 0;
    });
}

/** `lab demo`. */
function labDemoCommand(lab: Command): void {
  lab
    .command("demo")
    .description(
      "bring up the default lab and show cross-cluster connectivity: with the Kubernetes assets (KUBEBUILDER_ASSETS), " +
        "real clusters with Kosmos installed by `kosmosctl install/join` and echo Deployments probed across clusters; " +
        "without them (or --network-only), the network-only lab",
    )
    .addOption(nameOption())
    .option("-f, --config <file>", "lab YAML")
    .option("--network-only", "the network-only lab even when the Kubernetes assets are there", false)
    .option(
      "--tree",
      "ClusterTree (needs the Kubernetes assets): the tree preset's root and two leaves, kosmos-clustertree on the root, a root Deployment running in both leaves (docs/clustertree.md)",
      false,
    )
    .option("--down", "remove the lab afterwards", false)
    .action(
      async (o: { name: string; config?: string; down: boolean; networkOnly: boolean; tree: boolean }) => {
        const existing = await loadLab(o.name).then(
          (l) => l.plan,
          () => undefined,
        );
        const problem = o.networkOnly ? undefined : assetsProblem();
        let ok: boolean;
        if (o.tree) {
          if (problem || o.networkOnly)
            throw new LabConfigError(
              `lab demo --tree needs real control planes: ${problem ?? "--network-only given"}`,
              "set KUBEBUILDER_ASSETS (npm run demo -- --tree finds ../shared/k8s)",
            );
          if (existing)
            throw new LabConfigError(
              `lab "${o.name}" exists already`,
              `kosmosctl lab down --name ${o.name}, or pick another --name`,
            );
          ok = await treeDemo(o.name, await loadConfig(o.config, o.config ? undefined : "tree"));
        } else if (!existing && !o.networkOnly && !problem) {
          ok = await kubernetesDemo(o.name, await loadConfig(o.config));
        } else {
          if (!existing && problem)
            process.stdout.write(
              `no Kubernetes control planes (${problem}): the network-only lab, agents seeded directly\n`,
            );
          ok = await networkDemo(o.name, existing, o.config);
        }
        if (o.down) {
          await labDown(o.name);
          process.stdout.write(`lab "${o.name}" removed\n`);
        } else {
          process.stdout.write(
            o.tree
              ? `\nThe lab stays up: kosmosctl lab clusters --name ${o.name} | kosmosctl get virtualnodes --kubeconfig $(kosmosctl lab kubeconfig root --path --name ${o.name}) | kosmosctl lab down --name ${o.name}\n`
              : `\nThe lab stays up: kosmosctl lab status | lab clusters | lab exec c1/node-1/pod-1 -- ping <ip> | lab down\n`,
          );
        }
        process.exitCode = ok ? 0 : 1;
      },
    );
}

/** The network-only demo: the lab's own pods probed across clusters. */
async function networkDemo(name: string, existing: LabPlan | undefined, config?: string): Promise<boolean> {
  let plan = existing;
  if (plan) process.stdout.write(`using the running lab "${name}"\n`);
  else {
    const bar = progressBar(1, "lab up");
    const t0 = performance.now();
    const handle = await labUp(name, await loadConfig(config), {
      progress: (step, done, total) => {
        bar.update(done, step, total);
      },
    }).finally(() => bar.stop());
    plan = handle.plan;
    process.stdout.write(`lab "${name}" up in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  }
  process.stdout.write(`${describeLab(plan)}\n`);
  const results = await runMatrix(plan);
  const failed = results.filter((r) => !r.ok);
  process.stdout.write(`${summaryTable(results, plan)}\n`);
  process.stdout.write(
    `${results.length - failed.length}/${results.length} cross-cluster probes succeeded\n`,
  );
  if (failed.length) process.stdout.write(`${failuresTable(results)}\n`);
  return failed.length === 0;
}

/** `lab add-node`. */
function labAddNodeCommand(lab: Command): void {
  lab
    .command("add-node")
    .description("add a node (with its pods and agent) to a running lab; agents learn it by gossip")
    .addOption(nameOption())
    .argument("<cluster>", "cluster to grow")
    .option("--node <short>", "node name inside the cluster (default node-<n>)")
    .option("--gateway", "make it a gateway candidate", false)
    .action(async (cluster: string, o: { name: string; node?: string; gateway: boolean }) => {
      const n = await labAddNode(o.name, cluster, { name: o.node, gateway: o.gateway });
      process.stdout.write(
        `added ${n.name} (${n.ipv4}, pods ${n.pods.map((p) => p.ipv4 ?? p.ipv6).join(" ")})\n`,
      );
    });
}

/** `lab partition`. */
function labPartitionCommand(lab: Command): void {
  lab
    .command("partition")
    .description("cut the underlay between two clusters (nftables in the fabric namespace)")
    .addOption(nameOption())
    .argument("<clusterA>")
    .argument("<clusterB>")
    .action(async (a: string, b: string, o: { name: string }) => {
      const pairs = await labPartition(o.name, a, b);
      process.stdout.write(`partitioned: ${pairs.map((p) => p.join("⟂")).join(", ")}\n`);
    });
}

/** `lab heal`. */
function labHealCommand(lab: Command): void {
  lab
    .command("heal")
    .description("undo `lab partition` (both clusters given: that pair; none: every pair)")
    .addOption(nameOption())
    .argument("[clusterA]")
    .argument("[clusterB]")
    .action(async (a: string | undefined, b: string | undefined, o: { name: string }) => {
      if (a && b) await labHeal(o.name, a, b);
      else await labHealAll(o.name);
      process.stdout.write("healed\n");
    });
}

/** `lab kill-agent`. */
function labKillAgentCommand(lab: Command): void {
  lab
    .command("kill-agent")
    .description("kill -9 a node's agent (the kernel state stays); --links also takes the node's eth0 down")
    .addOption(nameOption())
    .argument("<node>", "e.g. c2-node-1")
    .option("--links", "take the node's underlay link down too (a dead node)", false)
    .action(async (node: string, o: { name: string; links: boolean }) => {
      const pid = await labKillAgent(o.name, node, { links: o.links });
      process.stdout.write(
        `killed agent of ${node}${pid ? ` (pid ${pid})` : ""}${o.links ? ", eth0 down" : ""}\n`,
      );
    });
}

/** `lab restart-agent`. */
function labRestartAgentCommand(lab: Command): void {
  lab
    .command("restart-agent")
    .description(
      "restart a node's agent (restores its links); --corrupt-db replaces its replica with garbage first",
    )
    .addOption(nameOption())
    .argument("<node>")
    .option("--corrupt-db", "overwrite the replica file with garbage before starting", false)
    .action(async (node: string, o: { name: string; corruptDb: boolean }) => {
      const pid = await labRestartAgent(o.name, node, { corruptDb: o.corruptDb });
      process.stdout.write(`restarted agent of ${node}${pid ? ` (pid ${pid})` : ""}\n`);
    });
}

export function labCommand(): Command {
  const lab = new Command("lab").description(
    "local multi-cluster lab: clusters of network namespaces, one real kosmos-agent per node",
  );

  labUpCommand(lab);
  labDownCommand(lab);
  labStatusCommand(lab);
  labExecCommand(lab);
  labProbeCommand(lab);
  labDemoCommand(lab);
  labAddNodeCommand(lab);
  labPartitionCommand(lab);
  labHealCommand(lab);
  labKillAgentCommand(lab);
  labRestartAgentCommand(lab);

  addLabKubernetesCommands(lab, nameOption, outputOption);
  return lab;
}

/** For `kosmosctl exec/cp NODE`: resolve a lab node name to its agent's admin socket. */
export async function resolveLabNode(name: string): Promise<{ url: string; token?: string }> {
  const { plan, token } = await loadLab(DEFAULT_NAME);
  const t = resolveTarget(plan, name);
  if (t.kind !== "node") throw new Error(`${name} is not a node`);
  return { url: `unix:${agentSocket(plan.name, t.id)}`, token };
}
