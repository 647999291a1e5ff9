/** The resource table of the fake apiserver: built-in kinds plus kinds registered from CRDs. */
import { Ajv, type ValidateFunction } from "ajv";
import { isObject, type Json, type JsonObject } from "./patch.ts";

export interface ResourceType {
  group: string;
  version: string;
  resource: string;
  singular: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  statusSubresource: boolean;
  shortNames: string[];
  /** CRD openAPIV3Schema, when the kind comes from a CRD. */
  schema?: JsonObject;
  validate?: ValidateFunction;
}

type Builtin = [
  group: string,
  version: string,
  resource: string,
  kind: string,
  namespaced: boolean,
  status: boolean,
];

const BUILTINS: Builtin[] = [
  ["", "v1", "namespaces", "Namespace", false, true],
  ["", "v1", "nodes", "Node", false, true],
  ["", "v1", "secrets", "Secret", true, false],
  ["", "v1", "configmaps", "ConfigMap", true, false],
  ["", "v1", "pods", "Pod", true, true],
  ["", "v1", "services", "Service", true, true],
  ["", "v1", "serviceaccounts", "ServiceAccount", true, false],
  ["", "v1", "events", "Event", true, false],
  ["coordination.k8s.io", "v1", "leases", "Lease", true, false],
  ["apps", "v1", "deployments", "Deployment", true, true],
  ["apps", "v1", "daemonsets", "DaemonSet", true, true],
  ["rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, false],
  ["rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, false],
  ["rbac.authorization.k8s.io", "v1", "roles", "Role", true, false],
  ["rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, false],
  ["apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false, true],
];

export function builtinResources(): ResourceType[] {
  return BUILTINS.map(([group, version, resource, kind, namespaced, status]) => ({
    group,
    version,
    resource,
    singular: kind.toLowerCase(),
    kind,
    listKind: `${kind}List`,
    namespaced,
    statusSubresource: status,
    shortNames: [],
  }));
}

const ajv = new Ajv({ strict: false, allErrors: true, useDefaults: true, coerceTypes: false });
ajv.addFormat("byte", /^[A-Za-z0-9+/]*={0,2}$/);
ajv.addFormat("date-time", true);
ajv.addFormat("int32", true);
ajv.addFormat("int64", true);
ajv.addFormat("ip", true);
ajv.addFormat("cidr", true);
for (const k of [
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-int-or-string",
  "x-kubernetes-embedded-resource",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type",
  "x-kubernetes-validations",
]) {
  ajv.addKeyword(k);
}

/** Resource types declared by a CustomResourceDefinition (apiextensions.k8s.io/v1), one per served version. */
export function resourcesFromCrd(crd: JsonObject): ResourceType[] {
  const spec = crd.spec as JsonObject;
  const names = spec.names as JsonObject;
  const versions = (spec.versions as JsonObject[]).filter((v) => v.served !== false);
  return versions.map((v) => {
    const schema = ((v.schema as JsonObject | undefined)?.openAPIV3Schema ?? {
      type: "object",
    }) as JsonObject;
    const forAjv = withoutMetadataSchema(schema);
    return {
      group: spec.group as string,
      version: v.name as string,
      resource: names.plural as string,
      singular: (names.singular as string | undefined) ?? (names.kind as string).toLowerCase(),
      kind: names.kind as string,
      listKind: (names.listKind as string | undefined) ?? `${names.kind as string}List`,
      namespaced: spec.scope === "Namespaced",
      statusSubresource: isObject((v.subresources as JsonObject | undefined)?.status),
      shortNames: ((names.shortNames as string[] | undefined) ?? []).slice(),
      schema,
      validate: ajv.compile(forAjv),
    };
  });
}

function withoutMetadataSchema(schema: JsonObject): JsonObject {
  const props = isObject(schema.properties) ? { ...schema.properties } : {};
  props.metadata = { type: "object" };
  return { ...schema, properties: props };
}

/**
 * Structural-schema pruning, as the apiserver does for CRDs: fields not declared in the schema are dropped
 * unless `x-kubernetes-preserve-unknown-fields` or `additionalProperties` allows them. metadata is kept.
 */
export function prune(value: Json, schema: JsonObject | undefined, root = true): Json {
  if (!schema || schema["x-kubernetes-preserve-unknown-fields"] === true) return value;
  if (Array.isArray(value)) {
    const items = isObject(schema.items) ? schema.items : undefined;
    return value.map((v) => prune(v, items, false));
  }
  if (!isObject(value)) return value;
  const props = isObject(schema.properties) ? schema.properties : undefined;
  const addl = schema.additionalProperties;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(value)) {
    if (root && (k === "apiVersion" || k === "kind" || k === "metadata")) {
      out[k] = v;
    } else if (props && isObject(props[k])) {
      out[k] = prune(v, props[k] as JsonObject, false);
    } else if (isObject(addl)) {
      out[k] = prune(v, addl, false);
    } else if (addl === true) {
      out[k] = v;
    }
  }
  return out;
}

/** ajv errors → apiserver-style field paths ("spec.clusterLinkOptions.networkType"). */
export function ajvCauses(validate: ValidateFunction): { reason: string; message: string; field: string }[] {
  return (validate.errors ?? []).map((e) => {
    const field = e.instancePath.replace(/^\//, "").replace(/\//g, ".");
    const params = e.params as { allowedValues?: unknown[]; missingProperty?: string };
    if (e.keyword === "enum") {
      return {
        reason: "FieldValueNotSupported",
        message: `Unsupported value: ${JSON.stringify(e.data)}: supported values: ${(params.allowedValues ?? []).map((v) => JSON.stringify(v)).join(", ")}`,
        field,
      };
    }
    if (e.keyword === "required") {
      return {
        reason: "FieldValueRequired",
        message: "Required value",
        field: field ? `${field}.${params.missingProperty}` : String(params.missingProperty),
      };
    }
    return {
      reason: "FieldValueInvalid",
      message: `Invalid value: ${JSON.stringify(e.data)}: ${e.message}`,
      field,
    };
  });
}
