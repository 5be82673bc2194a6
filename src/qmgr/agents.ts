/**
 * The transport table: master.cf `unix` services whose command is a delivery agent Postern has
 * → the agent that delivers for that transport name (as Postfix's qmgr connects to
 * private/<transport>). `-o` overrides of the service apply to its agent (service.params), its
 * maxproc limits deliveries in flight over it, its syslog_name tags its log lines.
 *
 * Commands: local, virtual, discard, error (as `error` it bounces, as `retry` it defers).
 * Log lines are tagged with the command, never the service name, as Postfix's are with the
 * program's name: the `retry` service logs as `postfix/error[N]`.
 * smtp/lmtp (the outbound client, issue 5) are not here yet: their transports defer with
 * `mail transport unavailable`. A transport named in transport_maps but absent from master.cf
 * defers the same way, as in Postfix.
 */
import type { Cleanup } from '../cleanup/index.js';
import type { Config, MasterService } from '../config/types.js';
import type { Log } from '../log/index.js';
import type { DeliveryAgent } from '../queue/delivery.js';
import type { AgentTable, TransportAgent } from './scheduler.js';

export interface AgentContext {
  readonly config: Config;
  readonly service: MasterService;
  readonly log: Log;
  /** For agents that submit new mail (local forwarding). */
  readonly cleanup: Cleanup;
}

export type AgentFactory = (ctx: AgentContext) => Promise<DeliveryAgent>;

/** master.cf command → agent factory (modules load only when a service uses them). */
export const AGENT_FACTORIES: Readonly<Record<string, AgentFactory>> = {
  local: async (ctx) => {
    const { LocalAgent } = await import('../local/agent.js');
    const { cleanupResubmitter } = await import('../local/forward.js');
    const p = ctx.service.params;
    return new LocalAgent({
      params: p,
      log: ctx.log,
      configDir: ctx.config.configDir,
      service: ctx.service.command,
      resubmit: cleanupResubmitter(ctx.cleanup, { myhostname: p.myhostname, mail_name: p.mail_name }),
    });
  },
  virtual: async (ctx) => {
    const { VirtualAgent } = await import('../local/virtual.js');
    return new VirtualAgent({ params: ctx.service.params, log: ctx.log, configDir: ctx.config.configDir, service: ctx.service.command });
  },
  discard: async (ctx) => {
    const { DiscardAgent } = await import('../local/discard.js');
    return new DiscardAgent({ log: ctx.log, service: ctx.service.command });
  },
  error: async (ctx) => {
    const { ErrorAgent } = await import('../local/error.js');
    return new ErrorAgent({ log: ctx.log, mode: ctx.service.name === 'retry' ? 'defer' : 'bounce', service: ctx.service.command });
  },
};

/**
 * Build the transport table from master.cf. An agent that fails to start is a warning, and its
 * transport defers (Postfix: a delivery agent that dies at start-up throttles its transport).
 */
export async function buildAgents(config: Config, log: Log, cleanup: Cleanup, factories: Readonly<Record<string, AgentFactory>> = AGENT_FACTORIES): Promise<AgentTable> {
  const table = new Map<string, TransportAgent>();
  const logger = log.logger('qmgr');
  for (const service of config.services) {
    if (service.type !== 'unix') continue;
    const factory = Object.hasOwn(factories, service.command) ? factories[service.command] : undefined;
    if (factory === undefined) continue;
    try {
      const agent = await factory({ config, service, log, cleanup });
      const entry: TransportAgent = {
        agent,
        command: service.command,
        maxproc: service.maxproc,
        ...(service.overrides.has('syslog_name') ? { syslog_name: service.params.syslog_name } : {}),
      };
      table.set(service.name, entry);
    } catch (err) {
      logger.warning(`transport ${service.name} (command ${service.command}): ${err instanceof Error ? err.message : String(err)}; mail for it is deferred`);
    }
  }
  return table;
}
