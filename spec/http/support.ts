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

/** One server-sent event as the specs read it. */
export interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
}

/**
 * Splits the complete blocks (ended by a blank line) off an SSE text buffer: each block's raw
 * text, its fields and how many comment lines it had; `rest` is the incomplete tail.
 */
export function parseSse(buf: string): {
  blocks: Array<{ raw: string; event: SseEvent; comments: number }>;
  rest: string;
} {
  const blocks: Array<{ raw: string; event: SseEvent; comments: number }> = [];
  let i;
  while ((i = buf.indexOf('\n\n')) >= 0) {
    const raw = buf.slice(0, i);
    buf = buf.slice(i + 2);
    const event: SseEvent = {};
    let comments = 0;
    for (const line of raw.split('\n')) {
      if (line.startsWith(':')) comments++;
      else
        (event as Record<string, string>)[line.slice(0, line.indexOf(':'))] = line.slice(
          line.indexOf(':') + 2,
        );
    }
    blocks.push({ raw, event, comments });
  }
  return { blocks, rest: buf };
}

/** A JSON request with a bearer token: status and parsed body (null when empty). */
export async function jsonRequest(
  url: string,
  method: string,
  body: unknown,
  token: string,
): Promise<{ status: number; body: ReturnType<typeof JSON.parse> }> {
  const res = await fetch(url, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}
