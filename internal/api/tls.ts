/**
 * TLS material for the agent's API: load a configured cert/key, or generate a self-signed
 * per-node certificate at first start (openssl CLI), kept under the state dir with mode 0600.
 * The SHA-256 fingerprint (of the DER certificate) is what clients pin.
 */
import { KosmosError } from "../errors/index.ts";
import { X509Certificate } from "node:crypto";
import { chmod, mkdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { defaultRunner } from "../sys/index.ts";

export class TlsError extends KosmosError<"TLS_LOAD_FAILED" | "TLS_GENERATE_FAILED"> {
  override name = "TlsError";
}

export interface TlsMaterial {
  cert: string;
  key: string;
  /** lowercase hex SHA-256 of the DER certificate, no separators */
  fingerprint: string;
  certPath: string;
  keyPath: string;
  generated: boolean;
}

export interface LoadTlsOptions {
  /** Configured files; when both are given they are used as-is. */
  certFile?: string;
  keyFile?: string;
  /** Where a generated pair is kept (agent state dir). */
  stateDir: string;
  /** Certificate subject CN (node name). */
  commonName: string;
  /** Extra DNS names / IPs for subjectAltName (localhost and 127.0.0.1, ::1 are always included). */
  hosts?: string[];
  days?: number;
}

/** Normalise "AB:CD:..", "sha256:abcd.." or "abcd.." to lowercase hex without separators. */
export function normalizeFingerprint(fp: string): string {
  return fp
    .replace(/^sha256:/i, "")
    .replace(/[^0-9a-fA-F]/g, "")
    .toLowerCase();
}

/** SHA-256 fingerprint of a PEM certificate (lowercase hex). */
export function fingerprintOf(certPem: string | Uint8Array): string {
  return normalizeFingerprint(new X509Certificate(certPem).fingerprint256);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** Load the configured TLS pair, or the generated one in stateDir, generating it when missing. */
export async function loadOrCreateTls(opts: LoadTlsOptions): Promise<TlsMaterial> {
  if (opts.certFile && opts.keyFile) {
    try {
      const [cert, key] = await Promise.all([
        readFile(opts.certFile, "utf8"),
        readFile(opts.keyFile, "utf8"),
      ]);
      return {
        cert,
        key,
        fingerprint: fingerprintOf(cert),
        certPath: opts.certFile,
        keyPath: opts.keyFile,
        generated: false,
      };
    } catch (err) {
      throw new TlsError(
        "TLS_LOAD_FAILED",
        `cannot load TLS pair ${opts.certFile} / ${opts.keyFile}: ${(err as Error).message}`,
        "check the --tls-cert/--tls-key paths and that they are PEM files readable by the agent",
      );
    }
  }
  const dir = join(opts.stateDir, "tls");
  const certPath = join(dir, "agent.crt");
  const keyPath = join(dir, "agent.key");
  let generated = false;
  if (!(await exists(certPath)) || !(await exists(keyPath))) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const names = new Set(["localhost", "127.0.0.1", "::1", ...(opts.hosts ?? [])]);
    const san = [...names].map((h) => (IPV4.test(h) || h.includes(":") ? `IP:${h}` : `DNS:${h}`)).join(",");
    try {
      const r = await defaultRunner().run([
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        keyPath,
        "-out",
        certPath,
        "-days",
        String(opts.days ?? 3650),
        "-subj",
        `/CN=${opts.commonName.replace(/[^A-Za-z0-9.-]/g, "-")}`,
        "-addext",
        `subjectAltName=${san}`,
      ]);
      if (r.code !== 0) throw new Error(r.stderr.trim() || `exit ${r.code}`);
    } catch (err) {
      throw new TlsError(
        "TLS_GENERATE_FAILED",
        `openssl failed to generate the node certificate: ${(err as Error).message}`,
        "install openssl (apt-get install openssl) or configure --tls-cert/--tls-key",
      );
    }
    generated = true;
  }
  await chmod(keyPath, 0o600);
  await chmod(certPath, 0o600);
  const [cert, key] = await Promise.all([readFile(certPath, "utf8"), readFile(keyPath, "utf8")]);
  return { cert, key, fingerprint: fingerprintOf(cert), certPath, keyPath, generated };
}
