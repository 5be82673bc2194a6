/**
 * The SMTP command table (Postfix smtpd.c smtpd_cmd_table): one entry per verb with its flags.
 * Dispatch is a lookup in this table, never a method name built from client input.
 *
 * Flags (RFC 2920 3.1, RFC 3207 4, Postfix SMTPD_CMD_FLAG_*):
 * - preTls: allowed before STARTTLS when TLS is required (smtpd_tls_security_level = encrypt);
 * - last:   must be the last command of a pipelined group (EHLO, HELO, DATA, VRFY, NOOP), so
 *           more input waiting after it is "improper command pipelining";
 * - junk:   counts toward smtpd_junk_command_limit (commands that cost us nothing to repeat).
 *
 * The table order is the order of the `disconnect from` statistics (`ehlo=2 starttls=1 mail=1 ...`).
 */
import { CommandStats as ProtoCommandStats } from '../proto/smtp/command-stats.js';
import type { Session } from './session.js';
import type { Token } from './tokens.js';

export interface CommandFlags {
  readonly preTls: boolean;
  readonly last: boolean;
  readonly junk: boolean;
}

export interface Command {
  /** The verb, upper case. */
  readonly name: string;
  readonly flags: CommandFlags;
  /** Runs the command; resolves true on success, false when it counts as an error. */
  readonly run: (s: Session, argv: readonly Token[], line: string) => Promise<boolean>;
}

const f = (o: Partial<CommandFlags> = {}): CommandFlags => ({ preTls: o.preTls ?? false, last: o.last ?? false, junk: o.junk ?? false });

export const COMMANDS: readonly Command[] = Object.freeze([
  { name: 'HELO', flags: f({ preTls: true, last: true, junk: true }), run: (s, a) => s.cmdHelo(a) },
  { name: 'EHLO', flags: f({ preTls: true, last: true, junk: true }), run: (s, a) => s.cmdEhlo(a) },
  { name: 'XCLIENT', flags: f({ preTls: true }), run: (s) => s.cmdNotAuthorized() },
  { name: 'XFORWARD', flags: f(), run: (s) => s.cmdNotAuthorized() },
  { name: 'STARTTLS', flags: f({ preTls: true }), run: (s, a) => s.cmdStarttls(a) },
  { name: 'AUTH', flags: f(), run: (s, a) => s.cmdAuth(a) },
  { name: 'MAIL', flags: f(), run: (s, a, l) => s.cmdMail(a, l) },
  { name: 'RCPT', flags: f(), run: (s, a, l) => s.cmdRcpt(a, l) },
  { name: 'DATA', flags: f({ last: true }), run: (s, a) => s.cmdData(a) },
  { name: 'BDAT', flags: f(), run: (s, a, l) => s.cmdBdat(a, l) },
  { name: 'RSET', flags: f({ junk: true }), run: (s, a) => s.cmdRset(a) },
  { name: 'NOOP', flags: f({ preTls: true, last: true, junk: true }), run: (s) => s.cmdNoop() },
  { name: 'VRFY', flags: f({ last: true, junk: true }), run: (s, a) => s.cmdVrfy(a) },
  { name: 'ETRN', flags: f({ junk: true }), run: (s, a) => s.cmdEtrn(a) },
  { name: 'QUIT', flags: f({ preTls: true }), run: (s) => s.cmdQuit() },
  // Postfix >= 3.9 (RFC 5321 4.1.1.8); allowed before STARTTLS like there.
  { name: 'HELP', flags: f({ preTls: true }), run: (s) => s.cmdHelp() },
]);

const BY_NAME: ReadonlyMap<string, Command> = new Map(COMMANDS.map((c) => [c.name, c]));

/** The table entry for a verb (case-insensitive), or undefined. */
export function findCommand(verb: string): Command | undefined {
  return BY_NAME.get(verb.toUpperCase());
}

/** HELP's reply text: every command, sorted. */
export function helpText(): string {
  return `Commands: ${COMMANDS.map((c) => c.name)
    .sort()
    .join(' ')}`;
}

/** Per-session success/total counts for `disconnect from`, in this table's order (proto/smtp/command-stats.ts). */
export class CommandStats extends ProtoCommandStats {
  constructor() {
    super(COMMANDS.map((c) => c.name));
  }
}
