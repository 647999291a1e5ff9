/**
 * A real Kubernetes control plane on loopback from the envtest assets (see assets.ts): etcd (shared by
 * several clusters, one key prefix each), kube-apiserver, and optionally kube-controller-manager and
 * kube-scheduler. It serves the tests and the lab. Everything lives in one directory; `stop()` ends
 * every process and waits for it.
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { formatIp, parseCidr } from "../topology/index.ts";
import { type Assets, findAssets } from "./assets.ts";
import { Daemon, freePort, waitUntil } from "./daemon.ts";
import { type CertAuthority, issueCert, type KeyPair, makeCA, makeServiceAccountKey } from "./pki.ts";

export interface Etcd {
  url: string;
  daemon: Daemon;
  dir: string;
  stop(): Promise<void>;
}

/** Start etcd on free loopback ports with its data in `dir`. */
export async function startEtcd(assets: Assets, dir: string): Promise<Etcd> {
  await mkdir(dir, { recursive: true });
  for (let attempt = 1; ; attempt++) {
    const [client, peer] = [await freePort(), await freePort()];
    const url = `http://127.0.0.1:${client}`;
    const daemon = new Daemon(
      "etcd",
      [
        assets.path("etcd"),
        "--data-dir",
        join(dir, "data"),
        "--listen-client-urls",
        url,
        "--advertise-client-urls",
        url,
        "--listen-peer-urls",
        `http://127.0.0.1:${peer}`,
        "--initial-advertise-peer-urls",
        `http://127.0.0.1:${peer}`,
        "--initial-cluster",
        `default=http://127.0.0.1:${peer}`,
        "--unsafe-no-fsync",
        "--log-level",
        "warn",
      ],
      join(dir, "etcd.log"),
      { ETCD_UNSUPPORTED_ARCH: "" },
    );
    try {
      await waitUntil("etcd health", async () => (await fetch(`${url}/health`)).ok, {
        timeoutMs: 20_000,
        daemon,
      });
      return { url, daemon, dir, stop: () => daemon.stop() };
    } catch (e) {
      await daemon.kill();
      if (attempt >= 3 || !/address already in use/.test(daemon.tail())) throw e;
    }
  }
}

export type Component = "controller-manager" | "scheduler";

export interface ControlPlaneOptions {
  /** Cluster name: etcd prefix and file names. */
  name?: string;
  /** Run it on this etcd (several control planes may share one); default: its own. */
  etcd?: Etcd;
  /** Extra components besides the API server (default none). */
  components?: Component[];
  serviceCIDR?: string;
  /** Cluster CIDR for node CIDR allocation (controller-manager --allocate-node-cidrs). */
  clusterCIDR?: string;
  nodeCIDRMaskSize?: number;
  /** Extra IPs/DNS names for the API server's certificate. */
  hosts?: string[];
  /** Extra API server flags (`--flag=value`). */
  apiServerFlags?: string[];
  controllerManagerFlags?: string[];
  schedulerFlags?: string[];
  /** Directory for certificates, logs, etcd (default: a new temp dir, removed by stop()). */
  dir?: string;
  assets?: Assets;
  /** The API server's loopback port (default: a free one). Kept across restartApiServer(). */
  port?: number;
}

/** A second API server of a control plane (see ControlPlane.startReplica). */
export interface ApiServerReplica {
  url: string;
  port: number;
  /** Admin kubeconfig pointing at this replica. */
  kubeconfig(o?: { token?: string; user?: string }): string;
  stop(): Promise<void>;
}

/** A started control plane: its URL, admin credentials and processes. */
export class ControlPlane {
  readonly daemons = new Map<string, Daemon>();
  private constructor(
    readonly name: string,
    readonly dir: string,
    readonly url: string,
    readonly port: number,
    readonly ca: CertAuthority,
    readonly adminToken: string,
    readonly etcd: Etcd,
    private readonly ownsEtcd: boolean,
    private readonly ownsDir: boolean,
    private readonly apiServerArgv: string[],
    readonly assets: Assets,
  ) {}

  static async start(o: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const assets = o.assets ?? findAssets();
    const name = o.name ?? `kt${process.pid.toString(36)}${randomBytes(2).toString("hex")}`;
    const ownsDir = o.dir === undefined;
    const dir = o.dir ?? (await mkdtemp(join(tmpdir(), `kosmos-cp-${name}-`)));
    await mkdir(dir, { recursive: true });
    const etcd = o.etcd ?? (await startEtcd(assets, join(dir, "etcd")));
    const ca = await makeCA(dir, "ca", `${name}-ca`);
    const serviceCIDR = o.serviceCIDR ?? "10.96.0.0/12";
    const serving = await issueCert(ca, dir, {
      name: "apiserver",
      cn: "kube-apiserver",
      usage: "server",
      hosts: [
        "127.0.0.1",
        "::1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        ...firstServiceIPs(serviceCIDR),
        ...(o.hosts ?? []),
      ],
    });
    const kubeletClient = await issueCert(ca, dir, {
      name: "apiserver-kubelet-client",
      cn: "kube-apiserver-kubelet-client",
      orgs: ["system:masters"],
      usage: "client",
    });
    const sa = await makeServiceAccountKey(dir);
    const adminToken = randomBytes(24).toString("hex");
    await writeFile(join(dir, "tokens.csv"), `${adminToken},admin,admin,"system:masters"\n`, { mode: 0o600 });
    const port = o.port ?? (await freePort());
    const url = `https://127.0.0.1:${port}`;
    const argv = apiServerArgv(assets, {
      dir,
      name,
      etcd,
      port,
      serving,
      kubeletClient,
      ca,
      sa,
      serviceCIDR,
      extra: o.apiServerFlags,
    });
    const cp = new ControlPlane(
      name,
      dir,
      url,
      port,
      ca,
      adminToken,
      etcd,
      o.etcd === undefined,
      ownsDir,
      argv,
      assets,
    );
    try {
      await cp.startApiServer();
      for (const c of o.components ?? []) await cp.startComponent(c, o, sa.keyPath);
    } catch (e) {
      await cp.stop();
      throw e;
    }
    return cp;
  }

  /** Kubeconfig YAML for the admin (system:masters) user. */
  kubeconfig(o: { token?: string; user?: string; server?: string } = {}): string {
    return kubeconfigYaml({
      name: this.name,
      server: o.server ?? this.url,
      caPem: this.ca.pem,
      token: o.token ?? this.adminToken,
      user: o.user ?? "admin",
    });
  }

  /** Write the admin kubeconfig to a file in the control plane's directory and return its path. */
  async kubeconfigFile(
    file = "admin.kubeconfig",
    o: { token?: string; user?: string; server?: string } = {},
  ): Promise<string> {
    const p = join(this.dir, file);
    await writeFile(p, this.kubeconfig(o), { mode: 0o600 });
    return p;
  }

  private async startApiServer(): Promise<void> {
    const d = new Daemon(
      `kube-apiserver(${this.name})`,
      this.apiServerArgv,
      join(this.dir, "kube-apiserver.log"),
    );
    this.daemons.set("kube-apiserver", d);
    await waitUntil(`${this.name}'s API server /readyz`, () => this.ready(), {
      timeoutMs: 60_000,
      daemon: d,
    });
  }

  /** GET /readyz answered 200 (this control plane's URL, or a replica's). */
  async ready(url = this.url): Promise<boolean> {
    const r = await fetch(`${url}/readyz`, {
      headers: { Authorization: `Bearer ${this.adminToken}` },
      tls: { ca: this.ca.pem },
    } as RequestInit);
    return r.ok;
  }

  /**
   * A second API server of this cluster (an HA control plane): the same etcd and prefix, certificates,
   * tokens and service-account keys, on another loopback port. Clients of the first one do not see it:
   * changes made through it while the first is down reach them only through etcd once it is back.
   * `stop()` of the control plane stops it too.
   */
  async startReplica(o: { port?: number } = {}): Promise<ApiServerReplica> {
    const port = o.port ?? (await freePort());
    const url = `https://127.0.0.1:${port}`;
    const key = `kube-apiserver-replica-${port}`;
    const argv = this.apiServerArgv.map((a) =>
      a.startsWith("--secure-port=") ? `--secure-port=${port}` : a,
    );
    const d = new Daemon(
      `kube-apiserver(${this.name}, replica :${port})`,
      argv,
      join(this.dir, `${key}.log`),
    );
    this.daemons.set(key, d);
    const stop = async (): Promise<void> => {
      await d.stop();
      this.daemons.delete(key);
    };
    try {
      await waitUntil(`${this.name}'s replica API server /readyz`, () => this.ready(url), {
        timeoutMs: 60_000,
        daemon: d,
      });
    } catch (e) {
      await stop();
      throw e;
    }
    return { url, port, kubeconfig: (k = {}) => this.kubeconfig({ ...k, server: url }), stop };
  }

  private async startComponent(c: Component, o: ControlPlaneOptions, saKey: string): Promise<void> {
    const kcfg = await this.kubeconfigFile(`${c}.kubeconfig`);
    const common = [
      `--kubeconfig=${kcfg}`,
      `--authentication-kubeconfig=${kcfg}`,
      `--authorization-kubeconfig=${kcfg}`,
      "--leader-elect=false",
      "--secure-port=0",
    ];
    const argv =
      c === "controller-manager"
        ? [
            this.assets.path("kube-controller-manager"),
            ...common,
            `--service-account-private-key-file=${saKey}`,
            `--root-ca-file=${this.ca.certPath}`,
            "--use-service-account-credentials=false",
            `--service-cluster-ip-range=${o.serviceCIDR ?? "10.96.0.0/12"}`,
            ...(o.clusterCIDR
              ? [
                  "--allocate-node-cidrs=true",
                  `--cluster-cidr=${o.clusterCIDR}`,
                  `--node-cidr-mask-size=${o.nodeCIDRMaskSize ?? 24}`,
                ]
              : []),
            ...(o.controllerManagerFlags ?? []),
          ]
        : [this.assets.path("kube-scheduler"), ...common, ...(o.schedulerFlags ?? [])];
    const d = new Daemon(`kube-${c}(${this.name})`, argv, join(this.dir, `kube-${c}.log`));
    this.daemons.set(`kube-${c}`, d);
    // Neither serves a port here (--secure-port=0): being up is having started without exiting at once.
    await Bun.sleep(300);
    if (!d.running) throw new Error(`kube-${c} exited at start:\n${d.tail()}`);
  }

  /** Stop the API server (fault injection); `startApiServer` again on the same port with restartApiServer. */
  async stopApiServer(): Promise<void> {
    await this.daemons.get("kube-apiserver")?.stop();
  }

  /** Freeze the API server (SIGSTOP, fault injection): connections are accepted, nothing answers. */
  freezeApiServer(): void {
    this.daemons.get("kube-apiserver")?.freeze();
  }

  thawApiServer(): void {
    this.daemons.get("kube-apiserver")?.thaw();
  }

  async restartApiServer(): Promise<void> {
    await this.stopApiServer();
    await this.startApiServer();
  }

  /** Stop every process (and etcd when it is this control plane's own); remove its temp dir. */
  async stop(): Promise<void> {
    const replicas = [...this.daemons.keys()].filter((k) => k.startsWith("kube-apiserver-replica-"));
    const order = ["kube-scheduler", "kube-controller-manager", ...replicas, "kube-apiserver"];
    for (const n of order) await this.daemons.get(n)?.stop();
    if (this.ownsEtcd) await this.etcd.stop();
    if (this.ownsDir) await rm(this.dir, { recursive: true, force: true });
  }
}

/** The first address of each service CIDR (`10.96.0.0/12,fd00::/108`): the `kubernetes` Service's IPs. */
function firstServiceIPs(cidrs: string): string[] {
  return cidrs
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const c = parseCidr(s);
      return formatIp(c.family, c.base + 1n);
    });
}

function apiServerArgv(
  assets: Assets,
  o: {
    dir: string;
    name: string;
    etcd: Etcd;
    port: number;
    serving: KeyPair;
    kubeletClient: KeyPair;
    ca: CertAuthority;
    sa: { keyPath: string; pubPath: string };
    serviceCIDR: string;
    extra?: string[];
  },
): string[] {
  return [
    assets.path("kube-apiserver"),
    `--etcd-servers=${o.etcd.url}`,
    `--etcd-prefix=/${o.name}`,
    `--secure-port=${o.port}`,
    "--bind-address=127.0.0.1",
    // Of the primary service CIDR's family, or an IPv6-primary API server refuses to start.
    `--advertise-address=${o.serviceCIDR.split(",")[0]!.includes(":") ? "::1" : "127.0.0.1"}`,
    `--tls-cert-file=${o.serving.certPath}`,
    `--tls-private-key-file=${o.serving.keyPath}`,
    `--client-ca-file=${o.ca.certPath}`,
    `--kubelet-client-certificate=${o.kubeletClient.certPath}`,
    `--kubelet-client-key=${o.kubeletClient.keyPath}`,
    `--kubelet-certificate-authority=${o.ca.certPath}`,
    `--token-auth-file=${join(o.dir, "tokens.csv")}`,
    "--authorization-mode=Node,RBAC",
    `--service-account-key-file=${o.sa.pubPath}`,
    `--service-account-signing-key-file=${o.sa.keyPath}`,
    "--service-account-issuer=https://kubernetes.default.svc",
    `--service-cluster-ip-range=${o.serviceCIDR}`,
    "--allow-privileged=true",
    "--profiling=false",
    ...(o.extra ?? []),
  ];
}

/** A kubeconfig with one cluster, user and context. */
export function kubeconfigYaml(o: {
  name: string;
  server: string;
  caPem: string;
  token: string;
  user: string;
}): string {
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: o.name,
        cluster: { server: o.server, "certificate-authority-data": Buffer.from(o.caPem).toString("base64") },
      },
    ],
    users: [{ name: o.user, user: { token: o.token } }],
    contexts: [{ name: o.name, context: { cluster: o.name, user: o.user } }],
    "current-context": o.name,
  });
}
