/**
 * internal/errors: the one base class of Kosmos errors. Every typed error carries a stable `code`
 * for programs, a `message`, a `hint` for humans (what to do about it; may be empty) and the
 * `cause` it wraps. Modules subclass it with their own code union (StoreError, TopologyError, ...),
 * so `instanceof` still tells them apart and `instanceof KosmosError` finds them all: the CLI and the
 * HTTP APIs render any of them the same way ({code, message, hint}).
 */
export class KosmosError<Code extends string = string> extends Error {
  override name = "KosmosError";
  readonly code: Code;
  readonly hint: string;

  constructor(code: Code, message: string, hint = "", options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.hint = hint;
  }

  /** The JSON body the APIs and `-o json` print. */
  toJSON(): { code: Code; message: string; hint?: string } {
    return this.hint
      ? { code: this.code, message: this.message, hint: this.hint }
      : { code: this.code, message: this.message };
  }
}
