import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** Options for {@link registerDashboard}. */
export interface DashboardOptions {
  /**
   * Folder holding `index.html` and the static assets.
   * @defaultValue the `dashboard/` folder at the package root
   */
  root?: string;
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
};

/**
 * Finds the package root by walking up from this file until a `package.json` is found,
 * so the same code works from `lib/` (tsx) and from `dist/lib/` (compiled).
 * @internal
 */
export function defaultDashboardRoot(start: string = __dirname): string {
  let dir = start;
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return path.join(dir, 'dashboard');
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve(start, '..', '..', 'dashboard');
    dir = parent;
  }
}

/** Security headers for every dashboard response: no inline scripts, no framing. */
function secure(reply: FastifyReply): FastifyReply {
  return reply
    .header(
      'content-security-policy',
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    )
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY');
}

/**
 * Serves the dashboard: `GET /` returns `index.html` and `GET /ui/*` the static assets.
 * No authentication for static files; the page calls the API with a Bearer token.
 */
export function registerDashboard(app: FastifyInstance, opts: DashboardOptions = {}): void {
  const root = path.resolve(opts.root ?? defaultDashboardRoot());

  const send = async (reply: FastifyReply, rel: string): Promise<FastifyReply> => {
    const file = path.resolve(root, rel);
    if (file !== root && !file.startsWith(root + path.sep)) {
      return reply.code(404).send({ error: { code: 'PTS_NOT_FOUND', message: 'not found' } });
    }
    try {
      const info = await stat(file);
      if (!info.isFile()) throw new Error('not a file');
      const body = await readFile(file);
      return secure(reply)
        .type(MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream')
        .header('cache-control', 'no-cache')
        .send(body);
    } catch {
      return reply.code(404).send({ error: { code: 'PTS_NOT_FOUND', message: 'not found' } });
    }
  };

  // Static files are public (`scope: 'none'` for the HTTP auth hook) and hidden from OpenAPI.
  const publicRoute = { config: { scope: 'none' }, schema: { hide: true } };
  app.get('/', publicRoute, async (_req, reply) => send(reply, 'index.html'));
  app.get('/ui/*', publicRoute, async (req, reply) => {
    const rel = (req.params as { '*': string })['*'] ?? '';
    return send(reply, rel);
  });
}
