/** Typed dataplane error: a machine `code` and a human `hint`. */
export class DataplaneError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = "DataplaneError";
  }
}
