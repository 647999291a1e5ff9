/** Typed store errors: a stable `code` for programs and a `hint` for humans. */
import { KosmosError } from "../errors/index.ts";

export type StoreErrorCode =
  | "STORE_OPEN_FAILED"
  | "STORE_CORRUPT"
  | "STORE_MIGRATION_FAILED"
  | "STORE_MIGRATIONS_UNUSABLE"
  | "STORE_UNKNOWN_TABLE"
  | "STORE_NOT_OWNER"
  | "STORE_INVALID_ROW"
  | "STORE_CLOSED";

export class StoreError extends KosmosError<StoreErrorCode> {
  override name = "StoreError";
}
