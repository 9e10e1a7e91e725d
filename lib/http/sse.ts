/**
 * Opening a Server-Sent Events response, shared by the changes, events and logs streams: the
 * per-token stream limit (429 `PTS_TOO_MANY_STREAMS` with Retry-After), the headers, and HEAD
 * (headers only, no stream).
 * @internal
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import { HttpError } from './errors';
import { principalOf, type HttpContext } from './context';

/** 429 code: the token holds `sseMaxStreamsPerToken` streams already. */
export const TOO_MANY_STREAMS = 'PTS_TOO_MANY_STREAMS';

/** Takes one of the token's stream slots, or throws the 429. Returns the slot's release. */
export function acquireStream(ctx: HttpContext, request: FastifyRequest, reply: FastifyReply): () => void {
  const release = ctx.feed.acquire(principalOf(request).id);
  if (!release) {
    void reply.header('retry-after', '5');
    throw new HttpError(
      429,
      TOO_MANY_STREAMS,
      `this token already holds ${ctx.sseMaxStreamsPerToken} event streams; close one or retry later`,
    );
  }
  return release;
}

/**
 * Switches the reply to an event stream (after everything that may still answer with a JSON
 * error). Returns the raw response, or null for HEAD (answered with the headers and ended, the
 * slot released).
 */
export function openStream(request: FastifyRequest, reply: FastifyReply, release: () => void): ServerResponse | null {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    // The stream is the connection's last response: ending it closes the socket (no idle keep-alive on close()).
    connection: 'close',
    'x-accel-buffering': 'no',
  });
  if (request.method === 'HEAD') {
    // fastify answers HEAD with the GET handler: headers only, no stream.
    release();
    res.end();
    return null;
  }
  res.write(': connected\n\n');
  return res;
}
