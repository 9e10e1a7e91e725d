/**
 * `pts token create|list|revoke`: API tokens of the HTTP service (see lib/auth.ts).
 */
import { TOKEN_SCOPES, TokenStore, type TokenScope } from '../auth';
import { CliError, EXIT, withClient, type DbOptions } from './connect';
import { Out, age, table } from './output';

export async function tokenCreate(
  opts: DbOptions & { scope: string; prefix?: string; name?: string; json?: boolean },
): Promise<void> {
  const out = new Out();
  if (!(TOKEN_SCOPES as readonly string[]).includes(opts.scope)) {
    throw new CliError(`--scope must be one of ${TOKEN_SCOPES.join(', ')}`, EXIT.USAGE);
  }
  await withClient(opts, async (client) => {
    const { token, record } = await new TokenStore(client).create({
      scope: opts.scope as TokenScope,
      prefix: opts.prefix,
      name: opts.name,
    });
    if (opts.json) return out.json({ token, ...record });
    out.line(token);
    process.stderr.write(
      `created ${record.scope} token ${record.id} (${record.name}${record.prefix ? `, containers starting with ${JSON.stringify(record.prefix)}` : ''}); ` +
        'the secret above is shown only once\n',
    );
  });
}

export async function tokenList(opts: DbOptions & { json?: boolean; all?: boolean }): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    const all = await new TokenStore(client).list();
    const tokens = opts.all ? all : all.filter((t) => !t.revokedAt);
    if (opts.json) return out.json(tokens);
    if (!tokens.length) return out.line('no tokens');
    table(
      out,
      ['ID', 'NAME', 'SCOPE', 'PREFIX', 'CREATED', 'REVOKED'],
      tokens.map((t) => [
        t.id,
        t.name,
        t.scope,
        t.prefix || '*',
        `${age(t.createdAt)} ago`,
        t.revokedAt ? `${age(t.revokedAt)} ago` : '-',
      ]),
    );
  });
}

export async function tokenRevoke(id: string, opts: DbOptions & { json?: boolean }): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    const record = await new TokenStore(client).revoke(id);
    if (opts.json) return out.json(record);
    out.line(`revoked token ${record.id} (${record.name})`);
  });
}
