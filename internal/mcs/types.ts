/**
 * Shapes of the Multi-Cluster Services API objects (multicluster.x-k8s.io/v1alpha1, KEP-1645) and of
 * the core objects the MCS controller reads, reduced to the fields it uses; names of the labels and
 * annotations it writes.
 */
import type { KubeObject } from "../kube/index.ts";

export const MCS_GROUP_VERSION = "multicluster.x-k8s.io/v1alpha1";
/** Label on imported EndpointSlices (KEP-1645): the ServiceImport they belong to. */
export const LABEL_SERVICE_NAME = "multicluster.kubernetes.io/service-name";
/** Label on imported EndpointSlices (KEP-1645): the cluster the endpoints come from. */
export const LABEL_SOURCE_CLUSTER = "multicluster.kubernetes.io/source-cluster";
export const LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by";
export const MANAGED_BY = "mcs.kosmos.io";
/** Upstream's opt-in annotation on a Service (any value): export it automatically. */
export const ANNOTATION_AUTO_MCS = "kosmos.io/auto-create-mcs";
/** Marks a ServiceExport the controller made automatically; only these does it ever delete. */
export const LABEL_AUTO_CREATED = "mcs.kosmos.io/auto-created";
/** Marks objects the controller owns (ServiceImports, EndpointSlices); only these does it ever change. */
export const LABEL_MANAGED = "mcs.kosmos.io/managed";

export type Protocol = "TCP" | "UDP" | "SCTP";

export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

export interface ServicePort {
  name?: string;
  port: number;
  protocol?: Protocol;
  appProtocol?: string;
  targetPort?: number | string;
}

export interface ServiceObject extends KubeObject {
  spec?: {
    type?: string;
    clusterIP?: string;
    clusterIPs?: string[];
    ports?: ServicePort[];
    selector?: Record<string, string>;
    sessionAffinity?: "ClientIP" | "None";
    sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } };
    ipFamilies?: string[];
  };
}

export interface ServiceExportObject extends KubeObject {
  status?: { conditions?: Condition[] };
}

export interface ImportPort {
  name?: string;
  port: number;
  protocol: Protocol;
  appProtocol?: string;
}

export type ImportType = "ClusterSetIP" | "Headless";

export interface ServiceImportSpec {
  ips?: string[];
  ports: ImportPort[];
  type: ImportType;
  sessionAffinity?: "ClientIP" | "None";
  sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } };
}

export interface ServiceImportObject extends KubeObject {
  spec?: ServiceImportSpec;
  status?: { clusters?: { cluster: string }[] };
}

export interface Endpoint {
  addresses: string[];
  conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
  hostname?: string;
  nodeName?: string;
  zone?: string;
  targetRef?: { kind?: string; name?: string; namespace?: string };
}

export interface EndpointPort {
  name?: string;
  port?: number;
  protocol?: Protocol;
  appProtocol?: string;
}

export interface EndpointSliceObject extends KubeObject {
  addressType: "IPv4" | "IPv6" | "FQDN";
  endpoints?: Endpoint[];
  ports?: EndpointPort[];
}
