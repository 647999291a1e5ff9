/**
 * The probe script: one bash process per batch, run on the source (node netns, or a pod netns
 * entered with the endpoint's exec prefix) through the node agent's exec API. It reads one probe
 * per stdin line, runs up to P probes in parallel, and prints one result line per probe as soon as
 * it is known, so the client streams progress. Tools: bash (/dev/tcp, /dev/udp, EPOCHREALTIME),
 * ping (iputils), timeout and od (coreutils) — present on every Linux node and in the agent image.
 *
 *   stdin:  <key> <proto> <ip> <port|-> <icmp payload|-> <expect|->
 *   stdout: <key>\t<ok|fail>\t<ms>\t<detail>
 *
 * Semantics: icmp = echo reply (with -M do when a size is given); tcp = connect, and when an answer
 * is expected, the first line must equal it; udp = the answer datagram must equal the expected one
 * (lab pods: their UDP echo); without an expected answer, ICMP port unreachable also counts (the
 * host was reached; beware: ICMP errors are rate limited per peer by the target kernel); dns = the first 4 bytes of a reply (id + flags),
 * interpreted by the client. The DNS query goes through dd (one write, one datagram): bash line-buffers
 * printf, so a 0x0a byte in it (any 10-letter label, "kubernetes") would split the datagram.
 */
import type { ProbeOutcome, ProbeSpec } from "./types.ts";

export const PROBE_SCRIPT = String.raw`T=${"$"}{1:-2}; P=${"$"}{2:-16}
probe() {
  local key=$1 proto=$2 ip=$3 port=$4 size=$5 expect=$6 out rc d st=fail fam=-4 t0=${"$"}{EPOCHREALTIME/./}
  [[ $ip == *:* ]] && fam=-6
  case $proto in
  icmp)
    local a=(-c1 -n -W "$T")
    [[ $size != - ]] && a+=(-M do -s "$size")
    out=$(ping $fam "${"$"}{a[@]}" "$ip" 2>&1); rc=$?
    if ((rc == 0)); then st=ok; d=$(sed -n 's#^rtt.* = [0-9.]*/\([0-9.]*\)/.*#rtt \1 ms#p' <<<"$out")
    else d=$(grep -m1 -E '^From |ping: |mtu' <<<"$out"); d=${"$"}{d:-no reply}; fi ;;
  tcp)
    out=$(timeout "$T" bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 3; [[ $3 == - ]] && exit 0; IFS= read -r -t "$4" l <&3; printf %s "$l"' _ "$ip" "$port" "$expect" "$T" 2>&1); rc=$?
    if ((rc == 0)); then
      if [[ $expect == - ]]; then st=ok; d="connected"
      elif [[ $out == "$expect" ]]; then st=ok; d="answered $out"
      else d="answered \"$out\", expected $expect"; fi
    elif ((rc == 124)); then d="timeout"
    else d=${"$"}{out##*: }; d=${"$"}{d:-connect failed}; fi ;;
  udp)
    out=$(timeout "$T" bash -c 'exec 3<>"/dev/udp/$1/$2" || exit 3; printf kosmos-check >&3; dd bs=1024 count=1 status=none <&3' _ "$ip" "$port" 2>&1); rc=$?
    out=${"$"}{out%$'\n'}
    if ((rc == 0)); then
      if [[ $expect == - || $out == "$expect" ]]; then st=ok; d="answered${"$"}{out:+ $out}"
      else d="answered \"$out\", expected $expect"; fi
    elif [[ $out == *refused* ]]; then
      if [[ $expect == - ]]; then st=ok; d="port unreachable (host reached)"; else d="port $port unreachable (no UDP listener)"; fi
    elif ((rc == 124)); then d="no answer"
    else d=${"$"}{out##*: }; d=${"$"}{d:-no answer}; fi ;;
  dns)
    out=$(timeout "$T" bash -c 'exec 3<>"/dev/udp/$1/$2" || exit 3; printf "$3" | dd bs=65535 count=1 iflag=fullblock status=none >&3; od -An -tx1 -N4 <&3' _ "$ip" "$port" "$expect" 2>&1); rc=$?
    if ((rc == 0)) && [[ -n ${"$"}{out//[[:space:]]/} ]]; then st=ok; d="reply $out"
    elif [[ $out == *refused* ]]; then d="no DNS server (port $port unreachable)"
    elif ((rc == 124)); then d="no answer"
    else d=${"$"}{out##*: }; d=${"$"}{d:-no answer}; fi ;;
  *) d="unknown protocol $proto" ;;
  esac
  local t1=${"$"}{EPOCHREALTIME/./}
  d=${"$"}{d//$'\n'/ }; d=${"$"}{d//$'\t'/ }
  printf '%s\t%s\t%s\t%s\n' "$key" "$st" "$(((t1 - t0) / 1000))" "$d"
}
n=0
while read -r key proto ip port size expect; do
  [[ -z $key ]] && continue
  probe "$key" "$proto" "$ip" "$port" "$size" "$expect" &
  n=$((n + 1))
  if ((n >= P)); then wait -n; n=$((n - 1)); fi
done
wait
`;

/** ICMP payload for an IP packet of `size` bytes (20/40-byte IP header + 8-byte ICMP header). */
export function icmpPayload(size: number, family: 4 | 6): number {
  return size - (family === 4 ? 28 : 48);
}

/** The stdin line of one probe. */
export function probeLine(key: string, p: ProbeSpec): string {
  const size = p.proto === "icmp" && p.size ? String(icmpPayload(p.size, p.family)) : "-";
  const expect = p.expect && !/\s/.test(p.expect) ? p.expect : "-";
  return `${key} ${p.proto} ${p.ip} ${p.port ?? "-"} ${size} ${expect}`;
}

export interface ScriptLine {
  key: string;
  ok: boolean;
  ms: number;
  detail: string;
}

/** Parse one output line of the script (undefined for anything else, e.g. a stray shell message). */
export function parseScriptLine(line: string): ScriptLine | undefined {
  const parts = line.split("\t");
  if (parts.length < 4) return undefined;
  const [key = "", st, ms, ...rest] = parts;
  if (st !== "ok" && st !== "fail") return undefined;
  return { key, ok: st === "ok", ms: Number(ms) || 0, detail: rest.join(" ").trim() };
}

/** Human summary of a failed probe's detail (ping's wording is terse). */
export function humanDetail(o: Pick<ProbeOutcome, "proto" | "detail" | "size">): string {
  const d = o.detail;
  const mtu = /mtu\s*=\s*(\d+)/i.exec(d);
  if (mtu && o.size) return `path MTU ${mtu[1]} < packet size ${o.size} (${d.replace(/^ping: /, "")})`;
  return d;
}
