/**
 * `kosmosctl inspect --agent https://…` (the real CLI) against a TLS server on loopback that is not
 * the agent: it has its own self-signed certificate and does not know the token, so it cannot prove
 * that certificate (api/identity.ts: the POST /v1/identity exchange). The CLI must refuse it before
 * sending the token; with the token's proof (an agent that knows the token) it shows members with
 * their incarnations and the replica's owners.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IdentityResponder } from "../../internal/api/identity.ts";
import { loadOrCreateTls } from "../../internal/api/tls.ts";
import { kosmosctl } from "../helpers/kosmosctl.ts";

const TOKEN = "inspect-test-token-0123456789abcdef";
const dir = await mkdtemp(join(tmpdir(), "kosmos-inspect-"));
const tls = await loadOrCreateTls({ stateDir: dir, commonName: "somebody" });
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A TLS server on loopback recording every request; `knows` is the token its identity proves. */
function server(knows: string) {
  const seen: string[] = [];
  const identity = new IdentityResponder("n1", tls.fingerprint, [knows]);
  const s = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: tls.cert, key: tls.key },
    async fetch(req) {
      const path = new URL(req.url).pathname;
      seen.push(`${req.method} ${path} ${req.headers.get("authorization") ?? "-"}`);
      if (path === "/v1/identity" && req.method === "POST") return Response.json(identity.answer(await req.json()));
      if (path === "/v1/identity") return Response.json(identity.describe());
      if (req.headers.get("authorization") !== `Bearer ${knows}`) return new Response("no", { status: 401 });
      if (path === "/v1/replica")
        return Response.json({
          node: "n1",
          certFingerprint: tls.fingerprint,
          members: [{ name: "n2", state: "alive", incarnation: 3, address: "10.0.0.2:5678", updatedAt: 1 }],
          owners: [{ owner: "controller", count: 4, maxVersion: 17, hash: "abcd" }],
        });
      if (path === "/v1/topology")
        return Response.json({
          clusters: [{ name: "c1", networkType: "p2p", ipFamily: "ipv4", podCIDRs: ["10.1.0.0/16"] }],
          nodes: [{}, {}],
        });
      return Response.json({ code: "NO_PLAN" }, { status: 404 });
    },
  });
  return { url: `https://127.0.0.1:${s.port}`, seen, stop: () => s.stop(true) };
}

/** `kosmosctl inspect --agent URL --token TOKEN ARGS -o json` against a fresh `server(knows)`. */
async function inspectServer(
  knows: string,
  args: string[],
  then: (r: Run, s: Server) => void,
): Promise<void> {
  const s = server(knows);
  try {
    const r = await kosmosctl(["inspect", "--agent", s.url, "--token", TOKEN, ...args, "-o", "json"], {
      env: { KOSMOS_TOKEN: "" },
    });
    then(r, s);
  } finally {
    s.stop();
  }
}
type Server = ReturnType<typeof server>;
type Run = Awaited<ReturnType<typeof kosmosctl>>;

describe("kosmosctl inspect --agent over TLS", () => {
  test("a server that cannot prove its certificate with the token never receives the token", async () => {
    await inspectServer("another-token-that-is-not-ours-000", [], (r, s) => {
      expect(s.seen.filter((l) => l.includes(TOKEN))).toEqual([]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("did not prove its certificate");
      expect(s.seen.every((l) => / \/v1\/identity -$/.test(l))).toBe(true);
    });
  }, 30_000);

  test("a pinned fingerprint that does not match: refused, nothing sent", async () => {
    await inspectServer(TOKEN, ["--fingerprint", "ab".repeat(32)], (r, s) => {
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("does not match the pinned");
      expect(s.seen).toEqual([]);
    });
  }, 30_000);

  test("an agent that proves its certificate: members with incarnations, owners with versions", async () => {
    await inspectServer(TOKEN, [], (r, s) => {
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const data = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(data).toMatchObject({
        node: "n1",
        members: [{ name: "n2", state: "alive", incarnation: 3, address: "10.0.0.2:5678" }],
        owners: [{ owner: "controller", rows: 4, maxVersion: 17, hash: "abcd" }],
        clusters: [{ name: "c1" }],
        nodes: 2,
        certFingerprint: tls.fingerprint,
      });
      // the token went only over the proven connection, after the identity check
      expect(s.seen[0]).toBe("POST /v1/identity -");
      expect(s.seen.slice(1).every((l) => l.endsWith(`Bearer ${TOKEN}`))).toBe(true);
    });
  }, 30_000);
});
