/**
 * The certificates a local control plane needs, made with the openssl CLI (ECDSA P-256: fast to make,
 * accepted by every Kubernetes component): a CA, serving certificates with subjectAltNames, client
 * certificates (CN = user, O = groups), and the service-account signing key.
 */
import { X509Certificate } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runChecked } from "../sys/index.ts";

export interface KeyPair {
  certPath: string;
  keyPath: string;
}

export interface CertAuthority extends KeyPair {
  pem: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await runChecked(["openssl", ...args], { cwd, hint: "install openssl (apt-get install openssl)" });
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/** A self-signed CA in `dir` (`<name>.crt`, `<name>.key`), valid ten years. */
export async function makeCA(dir: string, name: string, cn = `${name}-ca`): Promise<CertAuthority> {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  await openssl(
    [
      "req",
      "-x509",
      ...EC_KEY,
      "-keyout",
      keyPath,
      "-out",
      certPath,
      "-days",
      "3650",
      "-subj",
      `/CN=${cn}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ],
    dir,
  );
  return { certPath, keyPath, pem: await Bun.file(certPath).text() };
}

export interface CertRequest {
  /** File stem in the CA's directory. */
  name: string;
  cn: string;
  /** Subject organisations (Kubernetes groups for client certificates). */
  orgs?: string[];
  /** IPs and DNS names for subjectAltName (serving certificates). */
  hosts?: string[];
  usage: "server" | "client" | "both";
}

const IP = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*)$/;

/** Issue a certificate signed by `ca`, written beside the CA's files. */
export async function issueCert(ca: CertAuthority, dir: string, req: CertRequest): Promise<KeyPair> {
  const keyPath = join(dir, `${req.name}.key`);
  const csrPath = join(dir, `${req.name}.csr`);
  const certPath = join(dir, `${req.name}.crt`);
  const extPath = join(dir, `${req.name}.ext`);
  const subj = [`/CN=${req.cn}`, ...(req.orgs ?? []).map((o) => `/O=${o}`)].join("");
  await openssl(["req", "-new", ...EC_KEY, "-keyout", keyPath, "-out", csrPath, "-subj", subj], dir);
  const eku = { server: "serverAuth", client: "clientAuth", both: "serverAuth,clientAuth" }[req.usage];
  const sans = (req.hosts ?? []).map((h) => (IP.test(h) ? `IP:${h}` : `DNS:${h}`));
  const ext = [
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    `extendedKeyUsage=${eku}`,
    ...(sans.length > 0 ? [`subjectAltName=${sans.join(",")}`] : []),
  ];
  await writeFile(extPath, `${ext.join("\n")}\n`);
  await openssl(
    [
      "x509",
      "-req",
      "-in",
      csrPath,
      "-CA",
      ca.certPath,
      "-CAkey",
      ca.keyPath,
      "-CAcreateserial",
      "-out",
      certPath,
      "-days",
      "3650",
      "-sha256",
      "-extfile",
      extPath,
    ],
    dir,
  );
  return { certPath, keyPath };
}

/** The service-account token signing key pair (`sa.key`, `sa.pub`). */
export async function makeServiceAccountKey(dir: string): Promise<{ keyPath: string; pubPath: string }> {
  const keyPath = join(dir, "sa.key");
  const pubPath = join(dir, "sa.pub");
  await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", keyPath], dir);
  await openssl(["ec", "-in", keyPath, "-pubout", "-out", pubPath], dir);
  return { keyPath, pubPath };
}

/** Subject alternative names of a PEM certificate (for checks and messages). */
export function subjectAltNames(pem: string): string[] {
  return (new X509Certificate(pem).subjectAltName ?? "").split(/,\s*/).filter(Boolean);
}
