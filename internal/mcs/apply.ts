/**
 * Side effects: carry out the diff's operations on one member cluster. Each operation stands alone;
 * failures are collected and thrown together at the end so the work queue retries the pass (with
 * backoff) and one bad object does not hold up the others. A create into a namespace that does not
 * exist yet makes the namespace (namespace sameness: the import lives in the same namespace).
 */

import { KosmosError } from "../errors/index.ts";
import { isConflict, isNotFound, type KubeClient } from "../kube/index.ts";
import type { Logger } from "../observability/index.ts";
import type { AutoOps } from "./auto.ts";
import { managed, mergeConditions, type Op } from "./diff.ts";
import { ENDPOINT_SLICES, SERVICE_EXPORTS, SERVICE_IMPORTS } from "./members.ts";
import type { ServiceExportObject } from "./types.ts";

const base = (resource: string): string =>
  resource === "endpointslices" ? ENDPOINT_SLICES : SERVICE_IMPORTS;
const inNs = (collection: string, ns: string): string =>
  collection.replace(/\/([a-z]+)$/, `/namespaces/${ns}/$1`);
const one = (collection: string, ns: string, name: string): string =>
  `${inNs(collection, ns)}/${encodeURIComponent(name)}`;

async function ensureNamespace(client: KubeClient, ns: string): Promise<void> {
  try {
    await client.create("/api/v1/namespaces", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: ns },
    });
  } catch (e) {
    if (!isConflict(e)) throw e;
  }
}

async function createIn(
  client: KubeClient,
  collection: string,
  obj: { metadata: { namespace?: string } },
): Promise<void> {
  const ns = obj.metadata.namespace ?? "default";
  try {
    await client.create(inNs(collection, ns), obj);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    await ensureNamespace(client, ns);
    await client.create(inNs(collection, ns), obj);
  }
}

type Meta = {
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string };
};

/**
 * After a 409 (Conflict or AlreadyExists): the informer's cache lags our own last write until its
 * watch event arrives, so the diff's resourceVersion (or its "absent") may be stale. Read the object
 * once and, if it is ours (the managed label), replace it at the version just read; a foreign
 * object, or any other error, keeps the original one.
 */
async function retryIfManaged(client: KubeClient, path: string, obj: Meta, e: unknown): Promise<void> {
  if (!isConflict(e)) throw e;
  const now = await client.get<Meta>(path);
  if (!managed(now)) throw e;
  await client.replace(path, {
    ...obj,
    metadata: { ...obj.metadata, resourceVersion: now.metadata.resourceVersion },
  });
}

async function replaceManaged(client: KubeClient, path: string, obj: Meta): Promise<void> {
  await client.replace(path, obj).catch((e: unknown) => retryIfManaged(client, path, obj, e));
}

async function createManaged(client: KubeClient, collection: string, obj: Meta): Promise<void> {
  const path = one(collection, obj.metadata.namespace ?? "default", obj.metadata.name);
  await createIn(client, collection, obj).catch((e: unknown) => retryIfManaged(client, path, obj, e));
}

async function runOp(
  client: KubeClient,
  op: Op,
  exportsNow: Map<string, ServiceExportObject>,
): Promise<void> {
  switch (op.kind) {
    case "create":
      return createManaged(client, base(op.resource), op.object);
    case "update": {
      const m = op.object.metadata;
      return replaceManaged(client, one(base(op.resource), m.namespace ?? "", m.name), op.object);
    }
    case "importStatus": {
      const m = op.object.metadata;
      await client.patch(
        `${one(SERVICE_IMPORTS, m.namespace ?? "", m.name)}/status`,
        { status: op.object.status },
        "merge",
      );
      return;
    }
    case "delete":
      await client.delete(one(base(op.resource), op.namespace, op.name));
      return;
    case "exportStatus": {
      const old = exportsNow.get(`${op.namespace}/${op.name}`)?.status?.conditions;
      const conditions = mergeConditions(
        old,
        op.conditions,
        new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      );
      await client.patch(
        `${one(SERVICE_EXPORTS, op.namespace, op.name)}/status`,
        { status: { conditions } },
        "merge",
      );
      return;
    }
  }
}

export class ApplyError extends KosmosError<"KOSMOS_MCS_APPLY"> {
  constructor(
    readonly cluster: string,
    readonly failures: string[],
  ) {
    super(
      "KOSMOS_MCS_APPLY",
      `cluster ${cluster}: ${failures.length} MCS operation(s) failed: ${failures.slice(0, 3).join("; ")}`,
    );
  }
}

const describe = (op: Op): string =>
  "object" in op
    ? `${op.kind} ${op.object.kind} ${op.object.metadata.namespace}/${op.object.metadata.name}`
    : `${op.kind} ${op.namespace}/${op.name}`;

/** Apply one cluster's operations; returns how many succeeded, throws ApplyError listing the rest. */
export async function applyOps(
  cluster: string,
  client: KubeClient,
  ops: Op[],
  auto: AutoOps,
  exportsNow: ServiceExportObject[],
  log: Logger,
): Promise<number> {
  const failures: string[] = [];
  const byKey = new Map(exportsNow.map((e) => [`${e.metadata.namespace}/${e.metadata.name}`, e]));
  let done = 0;
  const attempt = async (what: string, f: () => Promise<unknown>): Promise<void> => {
    try {
      await f();
      done++;
      log.debug({ cluster, op: what }, "mcs: applied");
    } catch (e) {
      failures.push(`${what}: ${(e as Error).message}`);
    }
  };
  for (const e of auto.create)
    await attempt(`auto-export ${e.metadata.namespace}/${e.metadata.name}`, () =>
      createIn(client, SERVICE_EXPORTS, e),
    );
  for (const d of auto.delete) {
    await attempt(`auto-unexport ${d.namespace}/${d.name}`, () =>
      client.delete(one(SERVICE_EXPORTS, d.namespace, d.name)),
    );
  }
  for (const op of ops) await attempt(describe(op), () => runOp(client, op, byKey));
  if (failures.length) throw new ApplyError(cluster, failures);
  return done;
}
