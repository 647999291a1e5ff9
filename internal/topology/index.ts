export * from "./model.ts";
export * from "./cidr.ts";
export * from "./validate.ts";
export * from "./services.ts";
