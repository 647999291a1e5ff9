import { KosmosError } from "../errors/index.ts";

export type ExecErrorCode =
  | "BAD_REQUEST"
  | "TOO_MANY_SESSIONS"
  | "PATH_OUTSIDE_ROOTS"
  | "UPLOAD_TOO_LARGE"
  | "CHECKSUM_MISMATCH"
  | "UPLOAD_FAILED"
  | "CONNECT_FAILED"
  | "FINGERPRINT_MISMATCH"
  | "IDENTITY_UNPROVEN"
  | "UNAUTHORIZED"
  | "PROTOCOL"
  | "WORKFLOW_FAILED"
  | "TIMEOUT";

/** Typed error of the exec module: `code` for machines, `hint` for humans. */
export class ExecError extends KosmosError<ExecErrorCode> {
  override name = "ExecError";
  toJSON(): { code: string; message: string; hint: string } {
    return { code: this.code, message: this.message, hint: this.hint };
  }
}
