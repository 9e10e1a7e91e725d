/**
 * One changes-feed poller per feed scope, shared by every SSE stream of that scope.
 *
 * Without it each `/events` connection ran its own page query every `pollMs`, and on a server
 * that serializes wire requests (FerretDB) 20 streams made a write wait for seconds. Here a
 * scope (one container, one prefix set, or everything) has one poller that reads pages from its
 * own position (`head`) and fans each entry out to the streams whose own position is behind it.
 *
 * Joining: a stream whose cursor is inside the poller's recent-entries buffer (the last
 * {@link BUFFERED_ENTRIES} entries the poller emitted) is served from the buffer and attached at
 * once, without a query. One that is older catches up with its own paged reads (at most
 * {@link CATCH_UP_READS} at a time per hub; the same page asked for by several streams at once is
 * read once), and when a page comes back short it attaches; if it is then still behind the
 * buffer, the poller is rewound to it (the poller re-reads from there; streams already further
 * skip what they have). Every stream therefore sees the entries after its cursor in feed order,
 * exactly as its own polling would have (an entry superseded while it was in the buffer may
 * reach a joining stream before its newer state, as it would have between two polls).
 *
 * Back-pressure: catching up waits for `drain` between pages; a live stream whose socket still
 * holds more than `maxBufferedBytes` unsent bytes when the next page arrives is dropped with a
 * final `event: reconnect` carrying its cursor (so a stream holds at most the limit plus one
 * page), and its socket is destroyed if it has not flushed within {@link DROP_GRACE_MS}.
 *
 * Pollers stop when their last stream leaves; `close()` ends every stream, clears every timer and
 * waits for reads in flight.
 * @internal
 */
import type { ServerResponse } from 'node:http';
import {
  changes,
  decodeChangeCursor,
  encodeChangeCursor,
  type Change,
  type ChangesPage,
  type ChangesQuery,
} from '../changes';
import type { Client } from '../client';
import type { FeedPosition } from '../store';
import { toHttpError } from './errors';

/** The feed scope of a stream (the same shape as the page routes' query). */
export type FeedWhere = Pick<ChangesQuery, 'container' | 'prefixes'>;

/** Page size of every read (as the per-stream loop had). */
const PAGE = 500;
/** Entries each poller keeps for streams that join with a recent cursor. */
export const BUFFERED_ENTRIES = 1000;
/** Catch-up page reads running at once per hub. */
export const CATCH_UP_READS = 4;
/** How long a dropped stream's socket may take to flush its final event before it is destroyed. */
export const DROP_GRACE_MS = 2_000;

/** Options of {@link FeedHub}, resolved by the server. */
export interface FeedHubOptions {
  client: Client;
  pollMs: number;
  horizonMs: number;
  heartbeatMs: number;
  /** Concurrent streams one principal may hold. */
  maxStreamsPerToken: number;
  /** Unsent bytes a live stream's socket may hold before it is dropped. */
  maxBufferedBytes: number;
}

interface Entry {
  pos: FeedPosition;
  cursor: string;
  frame: string;
}

interface Stream {
  res: ServerResponse;
  pos: FeedPosition;
  /** Cursor string of `pos` (what the stream tells a dropped client to resume from). */
  cursor: string;
  left: boolean;
  /** Called once when the stream leaves (wakes sleeps and drain waits). */
  wakers: Set<() => void>;
  release: () => void;
  done: () => void;
}

interface Poller {
  key: string;
  where: FeedWhere;
  head: FeedPosition | null;
  /** The buffer holds every entry emitted after this position, up to `head`. */
  bufferStart: FeedPosition | null;
  buffer: Entry[];
  /** Bumped on a rewind: a read started before it is discarded. */
  gen: number;
  live: Set<Stream>;
  joining: Set<Stream>;
  loop: Promise<void> | null;
  /** Set while the poller waits between reads; `now` cuts the wait short. */
  wake: ((now: boolean) => void) | null;
}

function compare(a: FeedPosition, b: FeedPosition): number {
  const c = a.ts.compare(b.ts);
  if (c !== 0) return c;
  const x = a.id.toHexString();
  const y = b.id.toHexString();
  return x < y ? -1 : x > y ? 1 : 0;
}

function frameOf(c: Change): string {
  return `id: ${c.cursor}\nevent: ${c.kind}\ndata: ${JSON.stringify(c)}\n\n`;
}

function errorFrame(e: { code: string; message: string }): string {
  return `event: error\ndata: ${JSON.stringify({ code: e.code, message: e.message })}\n\n`;
}

/** The poller key of a scope: equal scopes share a poller. */
export function scopeKey(where: FeedWhere): string {
  if (where.container !== undefined) return `container\n${where.container}`;
  const prefixes = [...new Set(where.prefixes ?? [''])].sort();
  return prefixes.includes('') ? 'all' : `prefixes\n${prefixes.join('\n')}`;
}

export class FeedHub {
  private readonly pollers = new Map<string, Poller>();
  private readonly streams = new Set<Stream>();
  private readonly perToken = new Map<string, number>();
  private readonly reads = new Map<string, Promise<ChangesPage>>();
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Dropped streams' sockets still flushing their final event. */
  private readonly flushing = new Map<NodeJS.Timeout, ServerResponse>();
  private readonly readQueue: Array<() => void> = [];
  private activeReads = 0;
  private heartbeat: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly opts: FeedHubOptions) {}

  /** Takes one of `principal`'s stream slots; null when it holds `maxStreamsPerToken` already. */
  acquire(principal: string): (() => void) | null {
    const n = this.perToken.get(principal) ?? 0;
    if (n >= this.opts.maxStreamsPerToken) return null;
    this.perToken.set(principal, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.perToken.get(principal) ?? 1) - 1;
      if (left > 0) this.perToken.set(principal, left);
      else this.perToken.delete(principal);
    };
  }

  /**
   * Streams the feed of `where` after `since` to `res` (headers already sent) until the client
   * leaves, the stream is dropped or the hub closes; `release` is called when it ends.
   */
  serve(res: ServerResponse, where: FeedWhere, since: string, release: () => void): Promise<void> {
    const pos = decodeChangeCursor(since);
    return new Promise<void>((resolve) => {
      const stream: Stream = {
        res,
        pos,
        cursor: encodeChangeCursor(pos),
        left: false,
        wakers: new Set(),
        release,
        done: resolve,
      };
      if (this.closed) return this.end(stream);
      this.streams.add(stream);
      res.on('close', () => this.leave(stream));
      this.startHeartbeat();
      const key = scopeKey(where);
      let poller = this.pollers.get(key);
      if (!poller) {
        poller = {
          key,
          where,
          head: null,
          bufferStart: null,
          buffer: [],
          gen: 0,
          live: new Set(),
          joining: new Set(),
          loop: null,
          wake: null,
        };
        this.pollers.set(key, poller);
      }
      poller.joining.add(stream);
      // catchUp handles the feed's errors itself; anything else (a bug) ends this stream only.
      this.catchUp(poller, stream).catch(() => this.end(stream));
    });
  }

  /** Ends every stream, stops every poller and waits for reads in flight. */
  async close(): Promise<void> {
    this.closed = true;
    for (const s of [...this.streams]) this.end(s);
    for (const p of this.pollers.values()) p.wake?.(true);
    this.stopHeartbeat();
    for (const next of this.readQueue.splice(0)) next();
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    for (const [t, res] of this.flushing) {
      clearTimeout(t);
      res.destroy();
    }
    this.flushing.clear();
  }

  private async catchUp(p: Poller, s: Stream): Promise<void> {
    while (!s.left) {
      if (p.head !== null && p.bufferStart !== null && compare(s.pos, p.bufferStart) >= 0)
        return this.attach(p, s);
      let got: ChangesPage;
      try {
        got = await this.readShared(p, s.cursor);
      } catch (err) {
        if (s.left) return;
        const e = toHttpError(err);
        s.res.write(errorFrame(e));
        if (e.status === 404 || e.status === 400) return this.end(s);
        await this.sleep(s, this.opts.pollMs);
        continue;
      }
      if (s.left) return;
      for (const c of got.changes) {
        const pos = decodeChangeCursor(c.cursor);
        if (compare(pos, s.pos) <= 0) continue;
        s.res.write(frameOf(c));
        s.pos = pos;
        s.cursor = c.cursor;
      }
      if (s.res.writableNeedDrain) await this.drained(s);
      if (s.left) return;
      // A short page: the stream is at the end of the feed as of its read.
      if (got.changes.length < PAGE) return this.attach(p, s);
    }
  }

  /** Joins the live set (synchronously: no entry can slip between the replay and the join). */
  private attach(p: Poller, s: Stream): void {
    p.joining.delete(s);
    let rewound = false;
    if (p.head === null || p.bufferStart === null || compare(s.pos, p.bufferStart) < 0) {
      // First stream of the scope, or one behind the buffer: the poller (re)starts from it. Streams
      // already further skip the entries read again; a read in flight is discarded (gen).
      rewound = p.head !== null;
      if (rewound) p.gen++;
      p.head = s.pos;
      p.bufferStart = s.pos;
      p.buffer = [];
    } else {
      for (const e of p.buffer) if (compare(e.pos, s.pos) > 0) this.send(s, e);
    }
    if (s.left) return;
    p.live.add(s);
    if (!p.loop) this.startLoop(p);
    else if (rewound) p.wake?.(true);
  }

  private startLoop(p: Poller): void {
    const loop = this.pollLoop(p).finally(() => {
      this.inFlight.delete(loop);
      p.loop = null;
      // A stream attached while the loop was finishing.
      if (p.live.size > 0 && !this.closed) this.startLoop(p);
    });
    p.loop = loop;
    this.inFlight.add(loop);
  }

  private async pollLoop(p: Poller): Promise<void> {
    while (!this.closed && p.live.size > 0 && p.head !== null) {
      const gen = p.gen;
      let got: ChangesPage | null = null;
      try {
        got = await this.query(p.where, encodeChangeCursor(p.head));
      } catch (err) {
        if (gen === p.gen) this.broadcastError(p, err);
      }
      if (gen !== p.gen) continue; // rewound while reading: read again from the new head
      if (got) this.fanOut(p, got);
      if (!got || got.changes.length < PAGE) await this.pause(p);
    }
    this.forget(p);
  }

  private fanOut(p: Poller, got: ChangesPage): void {
    if (got.changes.length === 0) return;
    // A stream still holding more than the limit since the last page did not drain in a poll
    // interval: drop it. (Checked per page, not per write: one page written at once may exceed
    // the limit on a healthy socket before the kernel takes it.)
    for (const s of [...p.live]) if (s.res.writableLength > this.opts.maxBufferedBytes) this.drop(s);
    for (const c of got.changes) {
      const e: Entry = { pos: decodeChangeCursor(c.cursor), cursor: c.cursor, frame: frameOf(c) };
      p.head = e.pos;
      p.buffer.push(e);
      if (p.buffer.length > BUFFERED_ENTRIES) p.bufferStart = p.buffer.shift()!.pos;
      for (const s of p.live) if (compare(s.pos, e.pos) < 0) this.send(s, e);
    }
  }

  private broadcastError(p: Poller, err: unknown): void {
    const e = toHttpError(err);
    for (const s of [...p.live]) {
      s.res.write(errorFrame(e));
      if (e.status === 404 || e.status === 400) this.end(s);
    }
  }

  private send(s: Stream, e: Entry): void {
    s.res.write(e.frame);
    s.pos = e.pos;
    s.cursor = e.cursor;
  }

  private drop(s: Stream): void {
    const res = s.res;
    res.write(
      `event: reconnect\ndata: ${JSON.stringify({
        code: 'PTS_SLOW_CONSUMER',
        message: 'the stream fell too far behind; reconnect with this cursor',
        cursor: s.cursor,
      })}\n\n`,
    );
    this.end(s);
    if (!res.writableFinished && !res.destroyed) {
      const t = setTimeout(() => res.destroy(), DROP_GRACE_MS);
      this.flushing.set(t, res);
      res.once('close', () => {
        clearTimeout(t);
        this.flushing.delete(t);
      });
    }
  }

  private end(s: Stream): void {
    if (!s.res.writableEnded) s.res.end();
    this.leave(s);
  }

  private leave(s: Stream): void {
    if (s.left) return;
    s.left = true;
    this.streams.delete(s);
    for (const w of [...s.wakers]) w();
    for (const p of this.pollers.values()) {
      p.joining.delete(s);
      if (p.live.delete(s) && p.live.size === 0) p.wake?.(true);
      if (p.live.size === 0 && p.joining.size === 0 && !p.loop) this.pollers.delete(p.key);
    }
    if (this.streams.size === 0) this.stopHeartbeat();
    s.release();
    s.done();
  }

  private forget(p: Poller): void {
    if (p.live.size === 0 && p.joining.size === 0 && this.pollers.get(p.key) === p)
      this.pollers.delete(p.key);
  }

  /** Waits `pollMs`, or less when woken (a rewind, the last stream leaving, close). */
  private pause(p: Poller): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, this.opts.pollMs);
      function done(): void {
        clearTimeout(t);
        p.wake = null;
        resolve();
      }
      p.wake = (now) => {
        if (now) done();
      };
    });
  }

  private sleep(s: Stream, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        s.wakers.delete(done);
        resolve();
      }
      s.wakers.add(done);
    });
  }

  private drained(s: Stream): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        s.res.off('drain', done);
        s.wakers.delete(done);
        resolve();
      };
      s.res.on('drain', done);
      s.wakers.add(done);
    });
  }

  /** A catch-up page: one read per (scope, cursor) at a time, at most CATCH_UP_READS running. */
  private readShared(p: Poller, cursor: string): Promise<ChangesPage> {
    const key = `${p.key}\n${cursor}`;
    let page = this.reads.get(key);
    if (!page) {
      page = this.limited(() => this.query(p.where, cursor));
      this.reads.set(key, page);
      this.inFlight.add(page);
      const forget = (): void => {
        this.reads.delete(key);
        this.inFlight.delete(page!);
      };
      page.then(forget, forget);
    }
    return page;
  }

  private async limited<T>(fn: () => Promise<T>): Promise<T> {
    while (this.activeReads >= CATCH_UP_READS && !this.closed)
      await new Promise<void>((resolve) => this.readQueue.push(resolve));
    if (this.closed) throw new Error('the feed hub is closed');
    this.activeReads++;
    try {
      return await fn();
    } finally {
      this.activeReads--;
      this.readQueue.shift()?.();
    }
  }

  private query(where: FeedWhere, since: string): Promise<ChangesPage> {
    const read = changes(this.opts.client, { ...where, since, limit: PAGE, horizonMs: this.opts.horizonMs });
    this.inFlight.add(read);
    const forget = (): void => {
      this.inFlight.delete(read);
    };
    read.then(forget, forget);
    return read;
  }

  private startHeartbeat(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => {
      for (const s of this.streams) if (!s.res.writableNeedDrain) s.res.write(': heartbeat\n\n');
    }, this.opts.heartbeatMs);
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }
}
