/**
 * Line framing for the legacy protocol: upstream sends one text frame per output line (newline
 * stripped, like Go's bufio.Scanner incl. a trailing '\r'). Unlike upstream, overlong lines are
 * split at `maxLine` bytes instead of silently stopping the output.
 */
export class LineSplitter {
  private buf: Uint8Array = new Uint8Array(0);
  constructor(private readonly maxLine = 64 * 1024) {}

  /** Feed bytes; returns the complete lines found. */
  push(chunk: Uint8Array): Uint8Array[] {
    const data = this.buf.length ? concat(this.buf, chunk) : chunk;
    const lines: Uint8Array[] = [];
    let start = 0;
    for (let i = 0; i < data.length; i++) {
      if (data[i] === 10) {
        lines.push(trimCr(data.subarray(start, i)));
        start = i + 1;
      } else if (i - start + 1 >= this.maxLine) {
        lines.push(data.subarray(start, i + 1));
        start = i + 1;
      }
    }
    this.buf = data.slice(start);
    return lines;
  }

  /** The final unterminated line, if any. */
  flush(): Uint8Array[] {
    const rest = this.buf;
    this.buf = new Uint8Array(0);
    return rest.length ? [trimCr(rest)] : [];
  }
}

function trimCr(line: Uint8Array): Uint8Array {
  return line.length && line[line.length - 1] === 13 ? line.subarray(0, line.length - 1) : line;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
