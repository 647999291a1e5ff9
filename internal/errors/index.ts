/**
 * internal/errors: the one base class of Kosmos errors. Every typed error carries a stable `code`
 * for programs, a `message`, a `hint` for humans (what to do about it; may be empty) and the
 * `cause` it wraps. Modules subclass it with their own codes (StoreError, TopologyError, ...), so
 * `instanceof` still tells them apart and `instanceof KosmosError` finds them all: the CLI and the
 * HTTP APIs can render any of them the same way ({code, message, hint}). `code` and `hint` are own
 * properties, so loggers (pino's err serializer) keep showing them.
 */
export class KosmosError<Code extends string = string> extends Error {
  readonly code: Code;
  /** What to do about it ("" when there is nothing to add to the message). */
  readonly hint: string;

  constructor(code: Code, message: string, hint = "", options?: { cause?: unknown }) {
    super(message, options);
    // the subclass's name (StoreError, ...) unless it sets its own
    this.name = new.target.name;
    this.code = code;
    this.hint = hint;
  }
}
