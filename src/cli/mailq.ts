/**
 * `postern mailq [options]`: the queue listing, as Postfix's mailq(1) — that is `sendmail -bp`,
 * which runs `postqueue -p` (./postqueue.ts has the format). Installed as `mailq` through a
 * symbolic link to bin/postern.js, it is the same command.
 */
import type { CliContext } from './context.js';
import { sendmail } from './sendmail.js';

export async function main(args: string[], ctx: CliContext): Promise<number> {
  return sendmail(args, ctx, 'mailq');
}
