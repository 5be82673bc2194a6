/**
 * Per-session command counts for the `disconnect from` line (Postfix smtpd_format_cmd_stats()):
 * ` ehlo=2 starttls=1 mail=1 rcpt=0/1 quit=1 commands=5/6`. A command shows `ok` when every
 * attempt succeeded, else `ok/total`; commands never tried are left out; `unknown` (verbs not in
 * the table, and lines that are no command at all) comes last. smtpd and `sendmail -bs` both
 * print it, each in the order of its own command table.
 */
export class CommandStats {
  private readonly ok = new Map<string, number>();
  private readonly total = new Map<string, number>();

  /** `order`: the command table's verbs, upper case. */
  constructor(private readonly order: readonly string[]) {}

  /** One attempt of `name` (null: unknown). */
  attempt(name: string | null): void {
    const k = name ?? 'unknown';
    this.total.set(k, (this.total.get(k) ?? 0) + 1);
  }
  success(name: string | null): void {
    const k = name ?? 'unknown';
    this.ok.set(k, (this.ok.get(k) ?? 0) + 1);
  }
  format(): string {
    let out = '';
    let allOk = 0;
    let all = 0;
    for (const k of [...this.order, 'unknown']) {
      const t = this.total.get(k) ?? 0;
      if (t === 0) continue;
      const o = this.ok.get(k) ?? 0;
      out += ` ${k.toLowerCase()}=${o}`;
      if (o !== t) out += `/${t}`;
      allOk += o;
      all += t;
    }
    out += ` commands=${allOk}`;
    if (allOk !== all || all === 0) out += `/${all}`;
    return out;
  }
}
