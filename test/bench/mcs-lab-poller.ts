/**
 * The `mcs-lab` bench's DNS poller: one long-lived process per lab node, started inside the node's
 * network namespace (`nsenter --net=/run/netns/<node ns>`), asking that node's agent DNS
 * (`<server>:<port>`, the node's address: where `install --mcs` makes the agent listen) over one UDP
 * socket — no process per query. It reads watches on stdin (mcs-lab-lib.ts `watchLine`), polls each
 * one every `intervalMs` until the reply meets it, then prints `seen <id> <epoch ms> <polls>`; the
 * time is when the reply arrived (CLOCK_REALTIME, comparable with the parent's).
 *
 *   nsenter --net=/run/netns/kl-L-c1-node-1 bun test/bench/mcs-lab-poller.ts 192.168.1.1 53 20
 */
import * as dnsPacket from "dns-packet";
import { parseWatch, replyMeets, seenLine, type WatchCmd } from "./mcs-lab-lib.ts";

const [server = "127.0.0.1", portArg = "53", intervalArg = "20"] = process.argv.slice(2);
const port = Number(portArg);
const intervalMs = Number(intervalArg);
const now = (): number => performance.timeOrigin + performance.now();

interface Active extends WatchCmd {
  polls: number;
  timer: ReturnType<typeof setInterval>;
}
const active = new Map<string, Active>();
/** DNS id → watch id of the query in flight. */
const inflight = new Map<number, string>();
let nextId = 1;

const sock = await Bun.udpSocket<"buffer">({
  socket: {
    data(_s, data) {
      const at = now();
      const id = data.length >= 2 ? data.readUInt16BE(0) : -1;
      const wid = inflight.get(id);
      if (wid === undefined) return;
      inflight.delete(id);
      const w = active.get(wid);
      if (!w || !replyMeets(Buffer.from(data), w)) return;
      stop(wid);
      process.stdout.write(seenLine({ id: wid, atMs: at, polls: w.polls }));
    },
  },
});

function stop(wid: string): void {
  const w = active.get(wid);
  if (w) clearInterval(w.timer);
  active.delete(wid);
}

function ask(w: Active): void {
  const id = nextId;
  nextId = (nextId % 0xffff) + 1;
  inflight.set(id, w.id);
  w.polls++;
  const q = dnsPacket.encode({
    type: "query",
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: w.qtype, name: w.name, class: "IN" }],
  });
  sock.send(q, port, server);
}

process.stdout.write("ready\n");
for await (const line of console) {
  if (line.startsWith("cancel ")) {
    stop(line.slice(7).trim());
    continue;
  }
  const cmd = parseWatch(line);
  if (!cmd) continue;
  stop(cmd.id);
  const w: Active = { ...cmd, polls: 0, timer: setInterval(() => ask(w), intervalMs) };
  active.set(cmd.id, w);
  ask(w);
}
for (const id of [...active.keys()]) stop(id);
sock.close();
