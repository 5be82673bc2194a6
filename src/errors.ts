/**
 * Library errors. Every error a library throws on purpose is a PosternError with a stable `code`
 * (CONVENTIONS "Errors"); wire errors are Reply values, not exceptions.
 */
export class PosternError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * A configuration error: `file, line N: what is wrong; what is allowed`.
 * `line` is the first physical line of the logical line (as Postfix reports it); 0 when the
 * problem is not tied to a line (a missing file).
 */
export class ConfigError extends PosternError {
  readonly file: string;
  readonly line: number;
  readonly detail: string;
  constructor(file: string, line: number, detail: string) {
    super('config', line > 0 ? `${file}, line ${line}: ${detail}` : `${file}: ${detail}`);
    this.file = file;
    this.line = line;
    this.detail = detail;
  }
}
