/**
 * Multi-cluster services in the topology (the MCS controller computes them, the kosmos-controller
 * seeds them, agents gossip them): a ServiceImport with its ClusterSetIP, and the endpoints each
 * exporting cluster contributes. Addresses are the source cluster's own; an agent in another
 * cluster translates them with that cluster's globalCIDRs, as the imported EndpointSlices do.
 */
import { z } from "zod";

// The same shapes as model.ts's (which imports this file: no import back, no cycle).
const NameSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a DNS-1123 label (lowercase letters, digits, '-')");
const IpStringSchema = z.string().min(2).max(45);

const Dns1123Subdomain = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, "must be a DNS-1123 subdomain");
const ProtocolSchema = z.enum(["TCP", "UDP", "SCTP"]);

export const ServiceImportPortSchema = z.object({
  name: z.string().min(1).max(63).optional(),
  port: z.number().int().min(1).max(65535),
  protocol: ProtocolSchema.default("TCP"),
  appProtocol: z.string().min(1).max(253).optional(),
});

/** Key of a service import: `<namespace>/<service>`. */
export const serviceKey = (namespace: string, service: string): string => `${namespace}/${service}`;

export const ServiceImportRecordSchema = z.object({
  /** `<namespace>/<service>`. */
  name: z.string().min(3).max(127),
  namespace: NameSchema,
  service: NameSchema,
  type: z.enum(["ClusterSetIP", "Headless"]),
  /** The ClusterSetIP (empty when Headless). */
  ips: z.array(IpStringSchema).max(2).default([]),
  ports: z.array(ServiceImportPortSchema).max(100).default([]),
  sessionAffinity: z.enum(["ClientIP", "None"]).default("None"),
  /** ClientIP affinity timeout (seconds). */
  affinityTimeoutSeconds: z.number().int().min(1).max(86400).optional(),
  /** Exporting clusters. */
  clusters: z.array(NameSchema).default([]),
});
export type ServiceImportRecord = z.infer<typeof ServiceImportRecordSchema>;

export const ServiceEndpointSchema = z.object({
  addresses: z.array(IpStringSchema).min(1).max(100),
  ready: z.boolean().default(true),
  hostname: z.string().min(1).max(63).optional(),
  /** The ClusterNode name of the node the endpoint runs on (its agent's liveness counts). */
  node: z.string().min(1).max(63).optional(),
});
export type ServiceEndpoint = z.infer<typeof ServiceEndpointSchema>;

export const EndpointPortSchema = z.object({
  name: z.string().min(1).max(63).optional(),
  port: z.number().int().min(1).max(65535),
  protocol: ProtocolSchema.default("TCP"),
});

export const ServiceEndpointsRecordSchema = z.object({
  /** `<namespace>/<service>/<cluster>/<source EndpointSlice>`. */
  name: z.string().min(7).max(512),
  namespace: NameSchema,
  service: NameSchema,
  /** The exporting cluster. */
  cluster: NameSchema,
  slice: Dns1123Subdomain,
  addressType: z.enum(["IPv4", "IPv6"]),
  ports: z.array(EndpointPortSchema).max(100).default([]),
  endpoints: z.array(ServiceEndpointSchema).max(1000).default([]),
});
export type ServiceEndpointsRecord = z.infer<typeof ServiceEndpointsRecordSchema>;
