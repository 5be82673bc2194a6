/**
 * `postern user add|passwd|del|list [-f FILE] [-s SCHEME] [NAME]`: manage the Dovecot passwd-file
 * that smtpd authenticates against (SMTP AUTH). Without -f the file is the one smtpd uses:
 * the passdb passwd-file of dovecot.conf (smtpd_sasl_type = dovecot), else smtpd_sasl_path.
 *
 * add and passwd read the password from standard input when it is not a terminal, else prompt
 * twice without echo; the hash is SHA512-CRYPT unless -s names another scheme. The file is
 * rewritten atomically and durably (src/io/durable.ts), comments and other lines kept, with the
 * file's owner and mode; a new file is mode 0640, and when root runs this, group mail_owner's, so
 * smtpd can still read it after `postern run` drops privileges. smtpd sees the change at the next
 * AUTH (it watches mtime).
 */
import * as fs from 'node:fs';
import { formatPasswdLine, hashPassword, locateUserDb, parsePasswdFile } from '../auth/index.js';
import { loadConfig } from '../config/index.js';
import { writeFileDurable } from '../io/durable.js';
import { strerror } from '../log/strerror.js';
import { lookupUser, runningAsRoot } from '../master/privileges.js';
import type { CliContext } from './context.js';
import { type PasswordInput, parseHashOptions, readNewPassword } from './pw.js';

const USAGE = `usage: postern user add [-f file] [-s scheme] name
       postern user passwd [-f file] [-s scheme] name
       postern user del [-f file] name
       postern user list [-f file]`;

/** A user name Dovecot's passwd-file can hold: no ':', white space or control characters. */
function validName(name: string): boolean {
  return name !== '' && !/[:\s\x00-\x1f\x7f]/.test(name);
}

export async function run(args: string[], ctx: CliContext, io: PasswordInput): Promise<number> {
  const fail = (text: string): number => {
    ctx.stderr.write(`postern user: ${text}\n`);
    return 1;
  };
  const verb = args[0];
  if (verb === undefined || !['add', 'passwd', 'del', 'list'].includes(verb)) return fail(USAGE);
  const o = parseHashOptions(args.slice(1), new Set(['f']));
  if (typeof o === 'string') return fail(`${o}\n${USAGE}`);
  const want = verb === 'list' ? 0 : 1;
  if (o.rest.length !== want) return fail(USAGE);
  const name = o.rest[0] ?? '';
  if (verb !== 'list' && !validName(name)) return fail(`fatal: invalid user name "${name}": no ':', white space or control characters`);

  let file = o.values.get('f');
  let mailOwner = 'postfix';
  try {
    const config = await loadConfig({ configDir: ctx.configDir, env: ctx.env });
    mailOwner = config.params.mail_owner;
    file ??= locateUserDb(config.params).file;
  } catch (e) {
    if (file === undefined) return fail(`fatal: ${(e as Error).message}; name the passwd-file with -f`);
  }
  let text = '';
  let mode = 0o640;
  let owner: { uid: number; gid: number } | null = null;
  try {
    text = fs.readFileSync(file, 'utf8');
    const st = fs.statSync(file);
    mode = st.mode & 0o7777;
    owner = { uid: st.uid, gid: st.gid };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || verb !== 'add') return fail(`fatal: ${file}: ${strerror(e)}`);
  }
  const parsed = parsePasswdFile(text, file);
  if (verb === 'list') {
    for (const w of parsed.warnings) ctx.stderr.write(`postern user: warning: ${w}\n`);
    for (const e of parsed.entries.values()) ctx.stdout.write(`${e.user}\n`);
    return 0;
  }
  const entry = parsed.entries.get(name.toLowerCase());
  if (verb === 'add' && entry !== undefined) return fail(`fatal: ${file}, line ${entry.line}: user ${entry.user} exists; use postern user passwd`);
  if (verb !== 'add' && entry === undefined) return fail(`fatal: ${file}: no user ${name}`);

  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  if (verb === 'del') {
    lines.splice(entry!.line - 1, 1);
  } else {
    let pw: string;
    try {
      pw = await readNewPassword(io, ctx.stderr);
    } catch (e) {
      return fail(`fatal: ${(e as Error).message}`);
    }
    const hash = hashPassword(o.scheme, pw, o.rounds !== undefined ? { rounds: o.rounds } : {});
    if (verb === 'add') lines.push(formatPasswdLine(name, hash));
    else lines[entry!.line - 1] = formatPasswdLine(entry!.user, hash, entry!.rest);
  }
  try {
    await writeFileDurable(file, lines.length > 0 ? `${lines.join('\n')}\n` : '', { mode });
    if (runningAsRoot()) {
      const account = owner === null ? lookupUser(mailOwner) : null;
      if (owner === null && account !== null) owner = { uid: 0, gid: account.gid };
      if (owner !== null) fs.chownSync(file, owner.uid, owner.gid);
    }
  } catch (e) {
    return fail(`fatal: cannot write ${file}: ${strerror(e)}`);
  }
  return 0;
}

export function main(args: string[], ctx: CliContext): Promise<number> {
  return run(args, ctx, { stdin: process.stdin });
}
