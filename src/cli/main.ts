/**
 * `postern [-c DIR] COMMAND [ARGS]`: the command table. Each command lives in its own module and is
 * loaded only when named, so `postern postconf` does not load the SMTP server.
 */
import * as path from 'node:path';
import { type CliContext, type CommandMain, DEFAULT_CONFIG_DIR } from './context.js';

interface CommandEntry {
  readonly summary: string;
  readonly load: () => Promise<CommandMain>;
}

const COMMANDS: Readonly<Record<string, CommandEntry>> = {
  run: { summary: 'run the mail server in the foreground', load: async () => (await import('./run.js')).main },
  check: { summary: 'report everything `run` would refuse, without starting', load: async () => (await import('./check.js')).main },
  postconf: { summary: 'show or edit main.cf/master.cf as postconf(1)', load: async () => (await import('./postconf.js')).main },
  postmap: { summary: 'check a lookup table file and query it, as postmap(1)', load: async () => (await import('./postmap.js')).main },
  sendmail: { summary: 'submit mail from the command line or SMTP on stdin, as sendmail(1)', load: async () => (await import('./sendmail.js')).main },
  mailq: { summary: 'list the mail queue (sendmail -bp), as mailq(1)', load: async () => (await import('./mailq.js')).main },
  newaliases: {
    summary: 'sendmail -bi: nothing to rebuild (alias tables are read from their text)',
    load: async () => {
      const m = await import('./sendmail.js');
      return (args, ctx) => m.sendmail(args, ctx, 'newaliases');
    },
  },
  postqueue: { summary: 'list (-p, -j) or flush (-f, -i, -s) the queue, as postqueue(1)', load: async () => (await import('./postqueue.js')).main },
  postsuper: { summary: 'delete, hold, release, requeue queued mail, as postsuper(1)', load: async () => (await import('./postsuper.js')).main },
  postcat: { summary: 'show a queued message, as postcat(1)', load: async () => (await import('./postcat.js')).main },
  user: { summary: 'add, change, delete or list SMTP AUTH users (Dovecot passwd-file)', load: async () => (await import('./user.js')).main },
  pw: { summary: 'print a password hash for a passwd-file, as doveadm pw', load: async () => (await import('./pw.js')).main },
};

/**
 * Installed under a command's name (a symbolic link `sendmail`, `mailq`, `newaliases`, ... to
 * bin/postern.js): that command, with every argument (`sendmail -t`, `mailq`), as Postfix's
 * sendmail decides its mode by the name it was started under.
 */
const PERSONALITIES: ReadonlySet<string> = new Set(['sendmail', 'mailq', 'newaliases', 'postqueue', 'postsuper', 'postcat']);

export function usage(): string {
  const lines = [
    'usage: postern [-c config_dir] command [args...]',
    '',
    'Postern: a dual-stack (IPv4 + IPv6) mail server that speaks Postfix\'s and Dovecot\'s configuration.',
    '',
    'commands:',
  ];
  for (const [name, entry] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${entry.summary}`);
  lines.push('', `The configuration directory is -c DIR, else $MAIL_CONFIG, else ${DEFAULT_CONFIG_DIR}.`);
  return `${lines.join('\n')}\n`;
}

export async function main(
  argv: string[],
  io: Partial<Pick<CliContext, 'stdout' | 'stderr' | 'env'>> = {},
  invokedAs: string = path.basename(process.argv[1] ?? ''),
): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const env = io.env ?? process.env;
  const args = [...argv];
  if (PERSONALITIES.has(invokedAs)) args.unshift(invokedAs);
  let configDir: string | undefined;
  while (args.length > 0) {
    const a = args[0];
    if (a === '-c') {
      if (args.length < 2) {
        stderr.write('postern: fatal: option -c needs a directory\n');
        return 1;
      }
      configDir = args[1];
      args.splice(0, 2);
    } else if (a === '--help' || a === '-h' || a === 'help') {
      stdout.write(usage());
      return 0;
    } else break;
  }
  const name = args.shift();
  if (name === undefined) {
    stderr.write(usage());
    return 1;
  }
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (entry === undefined) {
    stderr.write(`postern: fatal: unknown command "${name}"\n${usage()}`);
    return 1;
  }
  const envDir = env.MAIL_CONFIG !== undefined && env.MAIL_CONFIG !== '' ? env.MAIL_CONFIG : undefined;
  const ctx: CliContext = {
    configDir: configDir ?? envDir ?? DEFAULT_CONFIG_DIR,
    configDirExplicit: configDir !== undefined || envDir !== undefined,
    stdout,
    stderr,
    env,
  };
  const command = await entry.load();
  return command(args, ctx);
}
