/**
 * Starts a real HTTP server (127.0.0.1, port 0) over a client on the spec's database, with a
 * token store and one token per scope.
 */
import { createClient, type Client } from '../../lib/client';
import { TokenStore, type TokenScope } from '../../lib/auth';
import { startServer, type RunningServer, type StartServerOptions } from '../../lib/http/server';
import type { TestDatabase } from '../helpers/db';
import { trackResource } from '../helpers/leaks';

export interface HttpFixture {
  client: Client;
  tokens: TokenStore;
  server: RunningServer;
  url: string;
  token: Record<TokenScope, string>;
  /** fetch relative to the server with a bearer token (`null` = none) and JSON body. */
  call(
    method: string,
    path: string,
    opts?: { token?: string | null; body?: unknown; raw?: string; headers?: Record<string, string> },
  ): Promise<{ status: number; body: any; headers: Headers }>; // eslint-disable-line @typescript-eslint/no-explicit-any -- response bodies are asserted field by field
  close(): Promise<void>;
}

export async function startFixture(
  db: TestDatabase,
  extra: Partial<StartServerOptions> = {},
): Promise<HttpFixture> {
  const client = createClient({ connection: db.connection });
  const tokens = new TokenStore(client);
  const token = {} as Record<TokenScope, string>;
  for (const scope of ['read', 'worker', 'admin'] as const)
    token[scope] = (await tokens.create({ scope, name: `test-${scope}` })).token;
  const server = await startServer({
    client,
    auth: { tokens },
    dashboard: false,
    pollMs: 50,
    horizonMs: 250,
    ...extra,
  });
  const untrack = trackResource(`http server ${server.url}`, () => server.close());
  const call: HttpFixture['call'] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    const t = opts.token === undefined ? token.admin : opts.token;
    if (t) headers.authorization = `Bearer ${t}`;
    let body: string | undefined;
    if (opts.raw !== undefined) body = opts.raw;
    else if (opts.body !== undefined) body = JSON.stringify(opts.body);
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(server.url + path, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
  return {
    client,
    tokens,
    server,
    url: server.url,
    token,
    call,
    close: async () => {
      await server.close();
      untrack();
      await client.close();
    },
  };
}
