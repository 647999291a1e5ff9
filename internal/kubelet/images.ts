/**
 * The lab kubelet cannot pull or run container images: it maps an image to a program of this
 * machine (the table below, documented in docs/lab.md). What runs is real — a real process in the
 * pod's own network namespace, with its env, files and mounts — but the root filesystem is the
 * host's, not the image's.
 */
import { resolve } from "node:path";

const REPO = resolve(import.meta.dir, "../..");

export type ImageKind = "kosmos" | "echo" | "shell" | "sleep";

export interface ImageRule {
  kind: ImageKind;
  /** Matches the image's repository (registry and tag stripped). */
  test: (repo: string) => boolean;
  what: string;
}

/** Image repository without registry host and tag/digest: `ghcr.io/kosmos-io/kosmos-ts:latest` → `kosmos-io/kosmos-ts`. */
export function imageRepo(image: string): string {
  const noDigest = image.split("@")[0]!;
  const parts = noDigest.split("/");
  if (parts.length > 1 && /[.:]|^localhost$/.test(parts[0]!)) parts.shift();
  const last = parts.pop()!.split(":")[0]!;
  return [...parts, last].join("/");
}

export const IMAGE_RULES: ImageRule[] = [
  {
    kind: "kosmos",
    test: (r) => /(^|\/)kosmos-ts$/.test(r),
    what: "Kosmos' own binaries from this checkout: /usr/local/bin/kosmos-<x> runs `bun cmd/kosmos-<x>.ts`",
  },
  {
    kind: "echo",
    test: (r) => /(^|\/)(kosmos-echo|echo|echoserver|http-echo|agnhost|nginx|httpd)$/.test(r),
    what: "an echo server answering the pod's name on every TCP containerPort (8080 when none)",
  },
  {
    kind: "shell",
    test: (r) => /(^|\/)(busybox|alpine|debian|ubuntu|bash)$/.test(r),
    what: "the command and args run by the host's /bin/sh tools (sleep forever when there is no command)",
  },
  {
    kind: "sleep",
    test: () => true,
    what: "anything else (pause included): a process that sleeps until stopped",
  },
];

export function imageKind(image: string): ImageKind {
  const repo = imageRepo(image);
  return IMAGE_RULES.find((r) => r.test(repo))!.kind;
}

export interface ProgramInput {
  image: string;
  command?: string[];
  args?: string[];
  /** Declared container ports (TCP). */
  ports: number[];
  /** The pod's name (what the echo server answers). */
  podName: string;
  bun: string;
}

/** The argv that stands in for a container. */
export function programFor(c: ProgramInput): string[] {
  const kind = imageKind(c.image);
  const argv = [...(c.command ?? []), ...(c.args ?? [])];
  if (kind === "kosmos") {
    const [bin, ...rest] = argv.length > 0 ? argv : ["/usr/local/bin/kosmos-agent"];
    const name = /kosmos-[a-z-]+$/.exec(bin!)?.[0];
    if (!name) throw new Error(`image ${c.image}: unknown Kosmos binary ${bin}`);
    return [c.bun, resolve(REPO, "cmd", `${name}.ts`), ...rest];
  }
  if (kind === "echo") {
    const ports = c.ports.length > 0 ? c.ports : [8080];
    const listeners = ports
      .map((p) => `socat TCP6-LISTEN:${p},fork,reuseaddr,ipv6only=0 SYSTEM:'echo ${c.podName}' &`)
      .join(" ");
    // One line in the container's log (what `kubectl logs` shows), then the listeners.
    const hello = `echo '${c.podName}: answering its name on TCP ${ports.join(", ")}';`;
    return ["sh", "-c", `${hello} ${listeners} wait`];
  }
  if (kind === "shell" && argv.length > 0) return argv;
  return ["sleep", "infinity"];
}
