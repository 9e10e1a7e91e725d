/**
 * `pts serve`: the HTTP API and the dashboard over one client.
 */
import { TokenStore } from '../auth';
import { isLoopbackHost, startServer } from '../http/server';
import { resolveTimeouts } from '../http/timeouts';
import type { MetricsOptions } from '../metrics';
import { CliError, EXIT, connect, resolveUri, type DbOptions } from './connect';
import { Out } from './output';

export interface ServeOptions extends DbOptions {
  host: string;
  port: string;
  auth: boolean;
  log?: boolean;
  requestTimeout?: string;
  headersTimeout?: string;
  connectionTimeout?: string;
  keepAliveTimeout?: string;
  /** Deliver alerts (while this process holds the alert lease); `--no-alerts` turns it off. */
  alerts?: boolean;
  /** Also run the scheduler for the pipelines `module` defines (lib/cli/schedules.ts). */
  scheduler?: boolean;
  module?: string;
  /** Comma-separated container prefixes of the step histograms' `group` label. */
  metricsGroupPrefix?: string;
  /** Cap on distinct (group, step) pairs of the step histograms. */
  metricsMaxLabelSets?: string;
}

/** The label options of `/metrics` from the `--metrics-…` flags. */
export function metricsLabelOptions(opts: Pick<ServeOptions, 'metricsGroupPrefix' | 'metricsMaxLabelSets'>): MetricsOptions {
  const o: MetricsOptions = {};
  if (opts.metricsGroupPrefix !== undefined) o.groupPrefixes = opts.metricsGroupPrefix.split(',').filter((p) => p.length > 0);
  if (opts.metricsMaxLabelSets !== undefined) {
    const n = Number(opts.metricsMaxLabelSets);
    if (!Number.isSafeInteger(n) || n < 1)
      throw new CliError(`--metrics-max-label-sets must be a whole number >= 1 (got ${JSON.stringify(opts.metricsMaxLabelSets)})`, EXIT.USAGE);
    o.maxLabelSets = n;
  }
  return o;
}

/** A `--…-timeout <ms>` flag: a whole number of milliseconds, or undefined when not given. */
export function parseMs(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const ms = Number(text);
  if (text.trim() === '' || !Number.isSafeInteger(ms) || ms < 0)
    throw new CliError(
      `${flag} must be a whole number of milliseconds >= 0 (got ${JSON.stringify(text)})`,
      EXIT.USAGE,
    );
  return ms;
}

export function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new CliError(`--port must be 0-65535 (got ${JSON.stringify(text)})`, EXIT.USAGE);
  return port;
}

/** Resolves when SIGINT/SIGTERM arrives. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (s: NodeJS.Signals): void => {
      process.removeListener('SIGINT', on);
      process.removeListener('SIGTERM', on);
      resolve(s);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

export async function serve(opts: ServeOptions): Promise<void> {
  const out = new Out();
  const port = parsePort(opts.port);
  const timeouts = {
    requestTimeout: parseMs(opts.requestTimeout, '--request-timeout'),
    headersTimeout: parseMs(opts.headersTimeout, '--headers-timeout'),
    connectionTimeout: parseMs(opts.connectionTimeout, '--connection-timeout'),
    keepAliveTimeout: parseMs(opts.keepAliveTimeout, '--keep-alive-timeout'),
  };
  try {
    resolveTimeouts(timeouts, 15_000);
  } catch (err) {
    throw new CliError((err as Error).message.replace(/^buildServer: /, ''), EXIT.USAGE);
  }
  if (!opts.auth && !isLoopbackHost(opts.host)) {
    throw new CliError(`--no-auth is only allowed on a loopback host (got --host ${opts.host})`, EXIT.USAGE);
  }
  const metricsOptions = metricsLabelOptions(opts);
  if (opts.scheduler && !opts.module)
    throw new CliError('--scheduler needs --module <file>: a module that defines the pipelines to schedule', EXIT.USAGE);
  const { client, connection } = await connect(resolveUri(opts), { sweepIntervalMs: 5_000 });
  try {
    if (opts.scheduler) {
      const m = await import('./schedules');
      await m.loadPipelineModule(client, opts.module!);
      // Stopped by client.close() below.
      client.startScheduler({ onPass: m.passPrinter(out) });
    }
    const tokens = opts.auth ? new TokenStore(client) : null;
    if (tokens && (await tokens.list()).every((t) => t.revokedAt)) {
      process.stderr.write('no API tokens yet: create one with `pts token create --scope admin`\n');
    }
    const server = await startServer({
      client,
      auth: tokens ? { tokens } : false,
      host: opts.host,
      port,
      logger: opts.log ?? false,
      metricsOptions,
      ...timeouts,
    });
    // Only the holder of the alert lease delivers: any number of `pts serve` may run this.
    const alerts =
      opts.alerts === false
        ? null
        : client.startAlerts({ onError: (err) => process.stderr.write(`alerts: ${err.message}\n`) });
    out.line(
      `pts serving on ${server.url}  (dashboard: ${server.url}/, API: ${server.url}/api/v1, auth ${tokens ? 'on' : 'OFF'})`,
    );
    const sig = await untilSignal();
    process.stderr.write(`${sig}: shutting down\n`);
    await alerts?.stop();
    await server.close();
  } finally {
    await client.close();
    await connection.close().catch(() => undefined);
  }
}
