/** `kosmosctl get serviceimports|serviceexports`: the Multi-Cluster Services objects of one cluster. */
import type { KubeClient } from "../kube/index.ts";
import {
  SERVICE_EXPORTS,
  SERVICE_IMPORTS,
  type ServiceExportObject,
  type ServiceImportObject,
} from "../mcs/index.ts";
import { type OutputFormat, printData, renderTable } from "./output.ts";

export const MCS_KINDS: Record<string, "serviceimports" | "serviceexports"> = {
  serviceimports: "serviceimports",
  serviceimport: "serviceimports",
  svcim: "serviceimports",
  serviceexports: "serviceexports",
  serviceexport: "serviceexports",
  svcex: "serviceexports",
};

const inNs = (collection: string, ns: string | undefined): string =>
  ns ? collection.replace(/\/([a-z]+)$/, `/namespaces/${ns}/$1`) : collection;

const ports = (i: ServiceImportObject): string =>
  (i.spec?.ports ?? []).map((p) => `${p.name ? `${p.name}:` : ""}${p.port}/${p.protocol}`).join(",");

export async function getMcs(
  client: KubeClient,
  kind: "serviceimports" | "serviceexports",
  namespace: string | undefined,
  output: OutputFormat,
): Promise<void> {
  if (kind === "serviceimports") {
    const list = await client.list<ServiceImportObject>(inNs(SERVICE_IMPORTS, namespace));
    printData(output, list, () =>
      renderTable(
        ["NAMESPACE", "NAME", "TYPE", "CLUSTERSET_IP", "PORTS", "AFFINITY", "CLUSTERS"],
        list.items.map((i) => [
          i.metadata.namespace ?? "",
          i.metadata.name,
          i.spec?.type ?? "",
          (i.spec?.ips ?? []).join(",") || "-",
          ports(i),
          i.spec?.sessionAffinity ?? "None",
          (i.status?.clusters ?? []).map((c) => c.cluster).join(","),
        ]),
      ),
    );
    return;
  }
  const list = await client.list<ServiceExportObject>(inNs(SERVICE_EXPORTS, namespace));
  const cond = (e: ServiceExportObject, t: string) => e.status?.conditions?.find((c) => c.type === t);
  printData(output, list, () =>
    renderTable(
      ["NAMESPACE", "NAME", "VALID", "CONFLICT", "REASON", "MESSAGE"],
      list.items.map((e) => {
        const valid = cond(e, "Valid");
        const conflict = cond(e, "Conflict");
        const bad = valid?.status === "False" ? valid : conflict?.status === "True" ? conflict : undefined;
        return [
          e.metadata.namespace ?? "",
          e.metadata.name,
          valid?.status ?? "Unknown",
          conflict?.status ?? "-",
          bad?.reason ?? "",
          (bad?.message ?? "").slice(0, 80),
        ];
      }),
    ),
  );
}
