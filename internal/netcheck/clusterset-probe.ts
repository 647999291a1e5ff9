/**
 * Asks a pod's own resolver: one bash script per pod, run inside the pod (its network and mount
 * namespaces, so `/etc/resolv.conf` is the pod's), reads the first nameserver of that resolv.conf
 * (or takes the address it is given: the node's agent DNS, `--resolver`),
 * sends every query to it over UDP port 53 (bash /dev/udp), one after the other (a few names per
 * pod; forks in parallel only add load), and prints the whole reply as hex (od);
 * dns-packet parses it on our side (clusterset.ts). Tools: bash, timeout, dd, od (coreutils).
 * The query goes through dd (one write, one datagram): bash line-buffers its printf, so a 0x0a byte
 * in the query (a 10-letter label: "clusterset") would end the datagram there.
 *
 *   argv:   <timeout seconds> [<resolver address>]
 *   stdin:  <key> <query as printf \xHH escapes>
 *   stdout: "resolver <address>" first, then per query  <key>\t<ok|fail>\t<reply hex | why>
 */
import type { Runner } from "../sys/index.ts";

export const RESOLVER_SCRIPT = String.raw`T=${"$"}{1:-2}
ns=${"$"}{2:-}
[[ -z $ns ]] && while read -r k v _; do [[ $k == nameserver ]] && { ns=$v; break; }; done </etc/resolv.conf
[[ -z $ns ]] && { echo "resolver -"; exit 0; }
echo "resolver $ns"
ask() {
  local out rc d st=fail
  out=$(timeout "$T" bash -c 'exec 3<>"/dev/udp/$1/53" || exit 3; printf "$2" | dd bs=65535 count=1 iflag=fullblock status=none >&3; dd bs=65535 count=1 status=none <&3 | od -An -tx1 -v' _ "$ns" "$2" 2>&1); rc=$?
  out=${"$"}{out//$'\n'/ }
  if ((rc == 0)) && [[ $out =~ ^[[:space:]0-9a-f]+$ ]] && [[ -n ${"$"}{out//[[:space:]]/} ]]; then st=ok; d=$out
  elif [[ $out == *refused* ]]; then d="no DNS server at $ns (port 53 unreachable)"
  elif ((rc == 124)); then d="no answer from $ns in ${"$"}{T} s"
  else d=${"$"}{out##*: }; d=${"$"}{d:-no answer from $ns}; fi
  printf '%s\t%s\t%s\n' "$1" "$st" "$d"
}
while read -r key q; do
  [[ -z $key ]] && continue
  ask "$key" "$q"
done
`;

export interface PodReplies {
  /** The pod's nameserver ("" when its resolv.conf names none). */
  resolver: string;
  /** key → the reply's hex, or why there is none. */
  replies: Map<string, { hex?: string; detail: string }>;
  /** The script could not run in the pod at all. */
  error?: string;
}

/** What running the probe script in a pod gives back (a Runner's result, or an agent exec's). */
export interface PodRunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs argv inside one pod with `input` on stdin, within `timeoutSec` overall: on this machine with
 * the pod's execPrefix (the lab), or through the pod's node agent's exec API (an inventory).
 */
export type PodRun = (argv: string[], input: string, timeoutSec: number) => Promise<PodRunResult>;

/** A PodRun on this machine: `execPrefix` enters the pod (`nsenter -t PID -n -m --`, `ip netns exec`). */
export function localPodRun(runner: Runner, execPrefix: string[]): PodRun {
  return async (argv, input) => {
    const r = await runner.run([...execPrefix, ...argv], { input });
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  };
}

/**
 * Run the queries (`key` → printf-escaped query) inside a pod through `run`; `resolver`: the address
 * to ask instead of the first nameserver of the pod's resolv.conf.
 */
export async function askResolver(
  run: PodRun,
  queries: Array<{ key: string; query: string }>,
  timeoutSec: number,
  resolver?: string,
): Promise<PodReplies> {
  const input = `${queries.map((q) => `${q.key} ${q.query}`).join("\n")}\n`;
  const argv = [
    "bash",
    "-c",
    RESOLVER_SCRIPT,
    "kosmos-dns",
    String(timeoutSec),
    ...(resolver ? [resolver] : []),
  ];
  // The queries go one after the other: the whole script is bounded by all of their timeouts.
  let r: PodRunResult;
  try {
    r = await run(argv, input, queries.length * timeoutSec + 10);
  } catch (e) {
    r = { code: -1, stdout: "", stderr: (e as Error).message };
  }
  return parseResolverOutput(
    r.stdout,
    r.code === 0 ? undefined : r.stderr.trim().split("\n").pop() || `exit ${r.code}`,
  );
}

/** Parse the script's output (pure). */
export function parseResolverOutput(stdout: string, failure?: string): PodReplies {
  const out: PodReplies = { resolver: "", replies: new Map() };
  for (const line of stdout.split("\n")) {
    const res = /^resolver (\S+)$/.exec(line);
    if (res) {
      out.resolver = res[1] === "-" ? "" : (res[1] ?? "");
      continue;
    }
    const [key, st, ...rest] = line.split("\t");
    if (!key || (st !== "ok" && st !== "fail")) continue;
    const d = rest.join(" ").trim();
    out.replies.set(key, st === "ok" ? { hex: d, detail: "" } : { detail: d });
  }
  if (failure && out.replies.size === 0) out.error = failure;
  return out;
}
