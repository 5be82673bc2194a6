/** What every `postern` sub-command receives. */
export interface CliContext {
  /** From `-c DIR`, else $MAIL_CONFIG, else /etc/postern. */
  readonly configDir: string;
  /** True when -c or MAIL_CONFIG chose the directory (postconf -d does not care). */
  readonly configDirExplicit: boolean;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
}

export type CommandMain = (args: string[], ctx: CliContext) => Promise<number>;

export const DEFAULT_CONFIG_DIR = '/etc/postern';
