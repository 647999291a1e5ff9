import { KosmosError } from "../errors/index.ts";

export type SysErrorCode = "COMMAND_FAILED";

/** A command run to completion failed (runChecked): its argv, exit code and stderr are kept. */
export class SysError extends KosmosError<SysErrorCode> {
  override readonly name = "SysError";
  readonly argv: string[];
  readonly exitCode: number;
  readonly stderr: string;

  constructor(
    code: SysErrorCode,
    message: string,
    detail: { hint?: string; argv: string[]; exitCode: number; stderr: string },
  ) {
    super(code, message, detail.hint ?? "");
    this.argv = detail.argv;
    this.exitCode = detail.exitCode;
    this.stderr = detail.stderr;
  }
}
