/**
 * `pts alerts add|list|delete|enable|disable|test|deliveries`: alert rules and their deliveries
 * (lib/alerts.ts). `pts serve` runs the delivery loop (`--no-alerts` turns it off).
 */
import {
  ALERT_EVENTS,
  ALERT_TEMPLATES,
  DELIVERY_STATUSES,
  type AlertEvent,
  type AlertTemplate,
  type DeliveryRecord,
  type DeliveryStatus,
} from '../alerts';
import { CliError, EXIT, withClient, type DbOptions } from './connect';
import { Out, age, clip, table } from './output';

export interface AlertAddOptions extends DbOptions {
  events: string;
  url: string;
  secret?: string;
  prefix?: string;
  template?: string;
  disabled?: boolean;
  json?: boolean;
}

export async function alertsAdd(name: string, opts: AlertAddOptions): Promise<void> {
  const out = new Out();
  const events = opts.events
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const e of events)
    if (!(ALERT_EVENTS as readonly string[]).includes(e))
      throw new CliError(
        `--events: unknown event ${JSON.stringify(e)} (one of ${ALERT_EVENTS.join(', ')})`,
        EXIT.USAGE,
      );
  if (opts.template !== undefined && !(ALERT_TEMPLATES as readonly string[]).includes(opts.template))
    throw new CliError(`--template must be one of ${ALERT_TEMPLATES.join(', ')}`, EXIT.USAGE);
  // The secret is read from the environment by default so it stays out of shell history.
  const secret = opts.secret ?? process.env.PTS_ALERT_SECRET;
  if (!secret) throw new CliError('a secret is required: --secret <s> or PTS_ALERT_SECRET', EXIT.USAGE);
  await withClient(opts, async (client) => {
    const rule = await client.addAlertRule({
      name,
      events: events as AlertEvent[],
      url: opts.url,
      secret,
      prefix: opts.prefix ?? '',
      template: (opts.template ?? 'json') as AlertTemplate,
      enabled: !opts.disabled,
    });
    if (opts.json) return out.json(rule);
    out.line(`added alert rule ${rule.name} (${rule.events.join(', ')} → ${rule.url})`);
  });
}

export async function alertsList(opts: DbOptions & { json?: boolean }): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    const rules = await client.listAlertRules();
    if (opts.json) return out.json(rules);
    if (!rules.length) return out.line('no alert rules');
    table(
      out,
      ['NAME', 'EVENTS', 'PREFIX', 'TEMPLATE', 'ENABLED', 'URL'],
      rules.map((r) => [
        r.name,
        r.events.join(','),
        r.prefix || '*',
        r.template,
        r.enabled ? 'yes' : 'no',
        clip(r.url, 60),
      ]),
    );
  });
}

export async function alertsDelete(name: string, opts: DbOptions & { json?: boolean }): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    const deleted = await client.deleteAlertRule(name);
    if (!deleted) throw new CliError(`no alert rule named ${JSON.stringify(name)}`, EXIT.FAILURE);
    if (opts.json) return out.json({ deleted: true, name });
    out.line(`deleted alert rule ${name}`);
  });
}

export async function alertsEnable(
  name: string,
  enabled: boolean,
  opts: DbOptions & { json?: boolean },
): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    const rule = await client.setAlertRuleEnabled(name, enabled);
    if (opts.json) return out.json(rule);
    out.line(`${enabled ? 'enabled' : 'disabled'} alert rule ${rule.name}`);
  });
}

export async function alertsTest(name: string, opts: DbOptions & { json?: boolean }): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    const r = await client.testAlertRule(name);
    if (opts.json) return out.json(r);
    out.line(r.error === null ? `delivered: HTTP ${r.statusCode}` : `not delivered: ${r.error}`);
    if (r.error !== null) throw new CliError(`the webhook of ${name} did not accept the test`, EXIT.FAILURE);
  });
}

export interface DeliveriesOptions extends DbOptions {
  rule?: string;
  status?: string;
  prefix?: string;
  limit?: string;
  /** One line per attempt under each delivery. */
  attempts?: boolean;
  json?: boolean;
}

function attemptLine(a: DeliveryRecord['attempts'][number]): string {
  const outcome =
    a.statusCode === null
      ? `no answer: ${clip(a.error, 80)}`
      : a.error === null
        ? `HTTP ${a.statusCode}`
        : `HTTP ${a.statusCode} (${clip(a.error, 60)})`;
  return `    #${a.n} ${a.at.toISOString()} ${outcome} ${a.durationMs} ms by ${clip(a.by, 40)}`;
}

export async function alertsDeliveries(opts: DeliveriesOptions): Promise<void> {
  const out = new Out();
  if (opts.status !== undefined && !(DELIVERY_STATUSES as readonly string[]).includes(opts.status))
    throw new CliError(`--status must be one of ${DELIVERY_STATUSES.join(', ')}`, EXIT.USAGE);
  const limit = opts.limit === undefined ? 50 : Number(opts.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    throw new CliError('--limit must be 1-1000', EXIT.USAGE);
  await withClient(opts, async (client) => {
    const page = await client.listDeliveries({
      rule: opts.rule,
      status: opts.status as DeliveryStatus | undefined,
      prefix: opts.prefix,
      limit,
    });
    if (opts.json) return out.json(page.items);
    if (!page.items.length) return out.line('no deliveries');
    table(
      out,
      ['CREATED', 'RULE', 'EVENT', 'SUBJECT', 'STATUS', 'ATTEMPTS', 'LAST', 'KEY'],
      page.items.map((d) => {
        const last = d.attempts[d.attempts.length - 1];
        const lastText = last
          ? last.error === null
            ? `HTTP ${last.statusCode}`
            : clip(last.error, 30)
          : '-';
        return [
          `${age(d.createdAt)} ago`,
          d.rule,
          d.event,
          clip(d.task === null ? d.container : `${d.container} / ${d.task}`, 48),
          d.status,
          String(d.attemptCount),
          lastText,
          d.key.slice(0, 12),
        ];
      }),
    );
    if (!opts.attempts) return;
    for (const d of page.items) {
      out.line();
      out.line(
        `${d.key} ${d.rule} ${d.event} ${clip(d.task === null ? d.container : `${d.container} / ${d.task}`, 60)}: ${d.status}${d.status === 'pending' && d.nextAttemptAt ? `, next attempt ${d.nextAttemptAt.toISOString()}` : ''}`,
      );
      if (!d.attempts.length) out.line('    (no attempt yet)');
      for (const a of d.attempts) out.line(attemptLine(a));
    }
  });
}
