/**
 * 405 Method Not Allowed: remembers the path pattern of every route as it is registered, so that
 * the not-found handler can tell "no such path" (404) from "no such method on this path" (405,
 * with `Allow` listing the methods the path has).
 * @internal
 */
import type { FastifyInstance } from 'fastify';

export interface RouteMethods {
  /** The methods registered for `path` (HEAD with GET), sorted; empty when no route matches. */
  allowed(path: string): string[];
}

/** `/a/:name/b` → /^\/a\/[^/]+\/b$/ ; a trailing `*` matches the rest. */
function patternOf(url: string): RegExp {
  const parts = url.split('/').map((seg) => {
    if (seg === '*') return '.*';
    if (seg.startsWith(':')) return '[^/]+';
    return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  });
  return new RegExp(`^${parts.join('/')}$`);
}

/** Call before any route is registered: collects every route through the `onRoute` hook. */
export function trackRouteMethods(app: FastifyInstance): RouteMethods {
  const routes = new Map<string, { pattern: RegExp; methods: Set<string> }>();
  app.addHook('onRoute', (route) => {
    let entry = routes.get(route.url);
    if (!entry) {
      entry = { pattern: patternOf(route.url), methods: new Set() };
      routes.set(route.url, entry);
    }
    for (const m of Array.isArray(route.method) ? route.method : [route.method]) entry.methods.add(m);
  });
  return {
    allowed(path) {
      const methods = new Set<string>();
      for (const { pattern, methods: ms } of routes.values()) {
        if (pattern.test(path)) for (const m of ms) methods.add(m);
      }
      if (methods.has('GET')) methods.add('HEAD');
      return [...methods].sort();
    },
  };
}
