/**
 * Hostile input over HTTP, table-driven: every route that takes input (path params, query,
 * body) gets malformed values — wrong types, NUL, lone surrogates (JSON `\ud800` escapes),
 * over-long names, `$`/`.` keys, `__proto__`/`constructor` keys, operator objects, bracket
 * queries, 1000-level nesting, a 20 MB body, malformed JSON, unknown fields, bad cursors and
 * limits, negative and huge numbers. Every request must answer a 4xx `{ error: { code, message } }`
 * within a few seconds, and every pts_* collection must be byte-for-byte unchanged afterwards.
 * The requests are authenticated as admin (and carry a live lease token on the worker routes),
 * so only the hostile part can make them fail.
 */
import { expect } from 'chai';
import { useTestDatabase } from '../helpers/db';
import { startFixture, type HttpFixture } from '../http/support';
import { dumpPts } from './helpers';

/* eslint-disable @typescript-eslint/no-explicit-any -- response bodies are checked field by field */

interface Input {
  label: string;
  method: string;
  path: string;
  /** JSON-encoded body (`raw` is sent verbatim instead). */
  body?: unknown;
  raw?: string;
  contentType?: string;
}

const C = 'h';
const deepJson = (n: number): string => '{"d":'.repeat(n) + '1' + '}'.repeat(n);
const BAD_PATH_NAMES: Array<[string, string]> = [
  ['NUL', 'a%00b'],
  ['control char', 'a%0Ab'],
  ['513 chars', 'n'.repeat(513)],
  ['lone surrogate (UTF-8 of U+D800)', '%ED%A0%80'],
  ['truncated percent-escape', '%E0%A4%A'],
];
const BAD_LIMITS = ['abc', '0', '-1', '1.5', '1e400', '99999999999999999999', '1001', ''];
const BAD_CURSORS = ['%25%25%25', 'garbage', '1.2.notanid', 'eyJ2IjoyfQ', 'c'.repeat(201)];
/** Invalid user data (taskData, metadata, processingData, result, custom) as raw JSON. */
const BAD_DATA_JSON: Array<[string, string]> = [
  ['$ key', '{"$set":{"a":1}}'],
  ['$where key', '{"$where":"sleep(1000)"}'],
  ['dotted key', '{"a.b":1}'],
  ['operator value', '{"a":{"$ne":null}}'],
  ['NUL key', '{"a\\u0000":1}'],
  ['lone surrogate key', '{"k\\udc00":1}'],
  ['lone surrogate value', '{"k":"a\\ud800b"}'],
  ['__proto__ key', '{"__proto__":{"polluted":true}}'],
  ['constructor.prototype key', '{"constructor":{"prototype":{"polluted":true}}}'],
  ['1000-deep nesting', deepJson(1000)],
  ['huge number (1e400)', '{"n":1e400}'],
];
/** Values that are never a valid name, as raw JSON. */
const BAD_NAME_JSON: Array<[string, string]> = [
  ['number', '42'],
  ['null', 'null'],
  ['empty', '""'],
  ['NUL', '"a\\u0000b"'],
  ['lone surrogate', '"a\\ud800b"'],
  ['513 chars', JSON.stringify('n'.repeat(513))],
  ['operator object $ne', '{"$ne":null}'],
  ['operator object $gt', '{"$gt":""}'],
  ['array', '["a"]'],
];
const BAD_INTS = ['-1', '1.5', '"1000"', '1e400', '9007199254740993000', 'true', '{"$gt":0}', 'null'];

describe('reliability: hostile HTTP input', function () {
  const db = useTestDatabase();
  let f: HttpFixture;
  let token = 0;

  before(async function () {
    f = await startFixture(db, { dashboard: true });
    const c = await f.client.getOrCreateTaskContainer(C);
    await c.addTasks([{ name: 'p' }, { name: 'r' }, { name: 'q' }]);
    const lease = await f.client.claimNext(
      { container: C, names: ['r'] },
      { owner: 'w', leaseMs: 3_600_000 },
    );
    token = lease!.token;
  });
  after(async function () {
    await f?.close();
  });

  function inputs(): Input[] {
    const out: Input[] = [];
    const add = (label: string, method: string, path: string, raw?: string, contentType?: string): void => {
      out.push({ label, method, path, raw, contentType });
    };
    const base = `/api/v1/containers/${C}`;
    // ---- path params: every route with :name / :task
    const named: Array<[string, (n: string) => string, string?]> = [
      ['GET', (n) => `/api/v1/containers/${n}`],
      ['PUT', (n) => `/api/v1/containers/${n}`, '{}'],
      ['DELETE', (n) => `/api/v1/containers/${n}`],
      ['POST', (n) => `/api/v1/containers/${n}/tasks`, '{"tasks":[{"name":"z"}]}'],
      ['GET', (n) => `/api/v1/containers/${n}/tasks`],
      ['GET', (n) => `/api/v1/containers/${n}/tasks/p`],
      ['GET', (n) => `${base}/tasks/${n}`],
      ['POST', (n) => `/api/v1/containers/${n}/actions/retry`, '{}'],
      ['POST', (n) => `/api/v1/containers/${n}/actions/cancel`, '{}'],
      ['POST', (n) => `/api/v1/containers/${n}/actions/reset`, '{}'],
      ['POST', (n) => `/api/v1/containers/${n}/actions/resume`],
      ['POST', (n) => `/api/v1/containers/${n}/tasks/p/skip`],
      ['POST', (n) => `${base}/tasks/${n}/skip`],
      ['GET', (n) => `/api/v1/containers/${n}/worker-config`],
      ['PUT', (n) => `/api/v1/containers/${n}/worker-config`, '{"pollIntervalMs":500}'],
      ['POST', (n) => `/api/v1/containers/${n}/tasks/r/heartbeat`, `{"token":${token}}`],
      ['POST', (n) => `${base}/tasks/${n}/heartbeat`, `{"token":${token}}`],
      ['POST', (n) => `/api/v1/containers/${n}/tasks/r/succeed`, `{"token":${token}}`],
      ['POST', (n) => `${base}/tasks/${n}/succeed`, `{"token":${token}}`],
      ['POST', (n) => `/api/v1/containers/${n}/tasks/r/fail`, `{"token":${token},"error":{"message":"x"}}`],
      ['POST', (n) => `${base}/tasks/${n}/fail`, `{"token":${token},"error":{"message":"x"}}`],
      ['GET', (n) => `/api/v1/containers/${n}/changes`],
      ['GET', (n) => `/api/v1/containers/${n}/events`],
    ];
    for (const [method, path, raw] of named)
      for (const [what, n] of BAD_PATH_NAMES) add(`path ${what}`, method, path(n), raw);
    add('path traversal', 'GET', '/ui/..%2F..%2Fpackage.json');
    add('path traversal (encoded dots)', 'GET', '/ui/%2e%2e/%2e%2e/package.json');

    // ---- query strings
    const queried: Array<[string, string[]]> = [
      ['/api/v1/containers', ['limit', 'cursor', 'status', 'prefix']],
      [`${base}/tasks`, ['limit', 'cursor', 'state']],
      ['/api/v1/changes', ['limit', 'since']],
      [`${base}/changes`, ['limit', 'since']],
      ['/api/v1/events', ['since']],
      [`${base}/events`, ['since']],
      [base, []],
      [`${base}/tasks/p`, []],
      [`${base}/worker-config`, []],
      ['/api/v1/whoami', []],
    ];
    for (const [path, fields] of queried) {
      add('unknown query field', 'GET', `${path}?bogus=1`);
      add('bracket operator on access_token', 'GET', `${path}?access_token[$ne]=x`);
      for (const field of fields) {
        add(`${field}[$gt]=`, 'GET', `${path}?${field}[$gt]=`);
        add(`${field}[$ne]=x`, 'GET', `${path}?${field}[$ne]=x`);
        if (field === 'limit') for (const v of BAD_LIMITS) add(`limit=${v}`, 'GET', `${path}?limit=${v}`);
        if (field === 'cursor' || field === 'since')
          for (const v of BAD_CURSORS) add(`${field}=${v.slice(0, 20)}`, 'GET', `${path}?${field}=${v}`);
        if (field === 'status' || field === 'state') {
          add(`${field}=bogus`, 'GET', `${path}?${field}=bogus`);
          add(`${field}=valid&${field}[$gt]=`, 'GET', `${path}?${field}=pending&${field}[$gt]=`);
          add(`${field} × 11`, 'GET', `${path}?${Array(11).fill(`${field}=pending`).join('&')}`);
        }
        if (field === 'prefix') add('prefix 513 chars', 'GET', `${path}?prefix=${'p'.repeat(513)}`);
      }
    }
    add('Last-Event-ID garbage', 'GET', `${base}/events`); // header set below
    out[out.length - 1].contentType = 'last-event-id';

    // ---- bodies: generic malformations for every route with a body
    const bodied: Array<[string, string, string]> = [
      ['PUT', '/api/v1/containers/h-new', '{}'],
      ['POST', `${base}/tasks`, '{"tasks":[{"name":"z"}]}'],
      ['POST', `${base}/actions/retry`, '{}'],
      ['POST', `${base}/actions/cancel`, '{"task":"p"}'],
      ['POST', `${base}/actions/reset`, '{}'],
      ['PUT', `${base}/worker-config`, '{"pollIntervalMs":500}'],
      ['POST', '/api/v1/claim', `{"owner":"w","container":"${C}","names":["p"]}`],
      ['POST', `${base}/tasks/r/heartbeat`, `{"token":${token}}`],
      ['POST', `${base}/tasks/r/succeed`, `{"token":${token}}`],
      ['POST', `${base}/tasks/r/fail`, `{"token":${token},"error":{"message":"x"}}`],
    ];
    const big = 'x'.repeat(20 * 1024 * 1024);
    for (const [method, path, valid] of bodied) {
      const inner = valid.slice(1, -1);
      const withField = (kv: string): string => `{${inner}${inner ? ',' : ''}${kv}}`;
      add('malformed JSON', method, path, valid.slice(0, -1));
      add('trailing garbage', method, path, `${valid}x`);
      for (const j of ['[]', '"str"', '42', 'true']) add(`body ${j}`, method, path, j);
      add('unknown field', method, path, withField('"zzz":1'));
      add('top-level __proto__', method, path, withField('"__proto__":{"polluted":true}'));
      add('top-level constructor.prototype', method, path, withField('"constructor":{"prototype":{"x":1}}'));
      add('top-level $where', method, path, withField('"$where":"1"'));
      add('1000-deep unknown field', method, path, withField(`"deep":${deepJson(1000)}`));
      add('text/plain', method, path, valid, 'text/plain');
      add('20 MB body', method, path, `{"pad":"${big}"}`);
    }
    // resume and skip take no body: a malformed or huge one is still rejected by the parser
    for (const path of [`${base}/actions/resume`, `${base}/tasks/p/skip`]) {
      add('malformed JSON', 'POST', path, '{"x":');
      add('20 MB body', 'POST', path, `{"pad":"${big}"}`);
    }

    // ---- bodies: field by field
    const field = (label: string, method: string, path: string, json: string): void =>
      add(label, method, path, json);
    for (const [what, v] of BAD_DATA_JSON) {
      field(`metadata ${what}`, 'PUT', '/api/v1/containers/h-new', `{"metadata":${v}}`);
      field(
        `task data ${what}`,
        'POST',
        `${base}/tasks`,
        `{"tasks":[{"name":"ok"},{"name":"z","data":${v}}]}`,
      );
      field(`worker custom ${what}`, 'PUT', `${base}/worker-config`, `{"custom":${v}}`);
      field(
        `processingData ${what}`,
        'POST',
        `${base}/tasks/r/heartbeat`,
        `{"token":${token},"processingData":${v}}`,
      );
      field(`result ${what}`, 'POST', `${base}/tasks/r/succeed`, `{"token":${token},"result":${v}}`);
      field(
        `fail processingData ${what}`,
        'POST',
        `${base}/tasks/r/fail`,
        `{"token":${token},"error":{"message":"x"},"processingData":${v}}`,
      );
    }
    for (const [what, v] of BAD_NAME_JSON) {
      field(`task name ${what}`, 'POST', `${base}/tasks`, `{"tasks":[{"name":${v}}]}`);
      field(`dependsOn ${what}`, 'POST', `${base}/tasks`, `{"tasks":[{"name":"z","dependsOn":[${v}]}]}`);
      field(
        `key ${what}`,
        'POST',
        `${base}/tasks`,
        `{"tasks":[{"name":"z","key":${v === 'null' ? '1' : v}}]}`,
      );
      for (const a of ['retry', 'cancel', 'reset'])
        field(`${a} task ${what}`, 'POST', `${base}/actions/${a}`, `{"task":${v}}`);
      field(`claim owner ${what}`, 'POST', '/api/v1/claim', `{"owner":${v},"container":"${C}"}`);
      field(`claim container ${what}`, 'POST', '/api/v1/claim', `{"owner":"w","container":${v}}`);
      field(
        `claim names ${what}`,
        'POST',
        '/api/v1/claim',
        `{"owner":"w","container":"${C}","names":[${v}]}`,
      );
      field(`claim key ${what}`, 'POST', '/api/v1/claim', `{"owner":"w","container":"${C}","key":${v}}`);
      // A failure message is not a name: up to 10000 characters are fine (the over-long case is
      // 'fail message 10001 chars' below).
      if (what !== '513 chars') {
        field(
          `fail message ${what}`,
          'POST',
          `${base}/tasks/r/fail`,
          `{"token":${token},"error":{"message":${v === '""' ? '1' : v}}}`,
        );
      }
    }
    for (const v of BAD_INTS) {
      field(`claim leaseMs ${v}`, 'POST', '/api/v1/claim', `{"owner":"w","container":"${C}","leaseMs":${v}}`);
      field(`claim waitMs ${v}`, 'POST', '/api/v1/claim', `{"owner":"w","container":"${C}","waitMs":${v}}`);
      field(
        `heartbeat leaseMs ${v}`,
        'POST',
        `${base}/tasks/r/heartbeat`,
        `{"token":${token},"leaseMs":${v}}`,
      );
      for (const verb of ['heartbeat', 'succeed'])
        field(`${verb} token ${v}`, 'POST', `${base}/tasks/r/${verb}`, `{"token":${v}}`);
      field(`maxRetries ${v}`, 'POST', `${base}/tasks`, `{"tasks":[{"name":"z","maxRetries":${v}}]}`);
      field(`retryDelayMs ${v}`, 'POST', `${base}/tasks`, `{"tasks":[{"name":"z","retryDelayMs":${v}}]}`);
      field(`pollIntervalMs ${v}`, 'PUT', `${base}/worker-config`, `{"pollIntervalMs":${v}}`);
    }
    const misc: Array<[string, string, string, string]> = [
      ['claim without owner', 'POST', '/api/v1/claim', `{"container":"${C}"}`],
      ['claim waitMs 30001', 'POST', '/api/v1/claim', `{"owner":"w","container":"${C}","waitMs":30001}`],
      [
        'claim leaseMs above 7 days',
        'POST',
        '/api/v1/claim',
        `{"owner":"w","container":"${C}","leaseMs":604800001}`,
      ],
      ['claim names as a string', 'POST', '/api/v1/claim', `{"owner":"w","container":"${C}","names":"p"}`],
      [
        'claim 1001 names',
        'POST',
        '/api/v1/claim',
        `{"owner":"w","container":"${C}","names":${JSON.stringify(Array.from({ length: 1001 }, (_, i) => `n${i}`))}}`,
      ],
      ['tasks as a string', 'POST', `${base}/tasks`, '{"tasks":"z"}'],
      ['tasks missing', 'POST', `${base}/tasks`, '{}'],
      ['task without name', 'POST', `${base}/tasks`, '{"tasks":[{}]}'],
      ['task unknown field', 'POST', `${base}/tasks`, '{"tasks":[{"name":"z","nope":1}]}'],
      ['weight -1', 'POST', `${base}/tasks`, '{"tasks":[{"name":"z","weight":-1}]}'],
      ['weight 0', 'POST', `${base}/tasks`, '{"tasks":[{"name":"z","weight":0}]}'],
      ['weight 1e400', 'POST', `${base}/tasks`, '{"tasks":[{"name":"z","weight":1e400}]}'],
      ['weight string', 'POST', `${base}/tasks`, '{"tasks":[{"name":"z","weight":"heavy"}]}'],
      ['backoff bogus', 'POST', `${base}/tasks`, '{"tasks":[{"name":"z","backoff":"bogus"}]}'],
      ['dependsOn as a string', 'POST', `${base}/tasks`, '{"tasks":[{"name":"z","dependsOn":"p"}]}'],
      ['dependsOn a missing task', 'POST', `${base}/tasks`, '{"tasks":[{"name":"z","dependsOn":["nope"]}]}'],
      ['self dependency', 'POST', `${base}/tasks`, '{"tasks":[{"name":"z","dependsOn":["z"]}]}'],
      ['failurePolicy bogus', 'PUT', '/api/v1/containers/h-new', '{"failurePolicy":"bogus"}'],
      ['failurePolicy operator', 'PUT', '/api/v1/containers/h-new', '{"failurePolicy":{"$ne":null}}'],
      ['metadata array', 'PUT', '/api/v1/containers/h-new', '{"metadata":[1]}'],
      ['metadata string', 'PUT', '/api/v1/containers/h-new', '{"metadata":"m"}'],
      ['custom array', 'PUT', `${base}/worker-config`, '{"custom":[1]}'],
      ['custom string', 'PUT', `${base}/worker-config`, '{"custom":"c"}'],
      ['heartbeat without token', 'POST', `${base}/tasks/r/heartbeat`, '{}'],
      [
        'percentageComplete 101',
        'POST',
        `${base}/tasks/r/heartbeat`,
        `{"token":${token},"percentageComplete":101}`,
      ],
      [
        'percentageComplete -1',
        'POST',
        `${base}/tasks/r/heartbeat`,
        `{"token":${token},"percentageComplete":-1}`,
      ],
      [
        'percentageComplete 1e400',
        'POST',
        `${base}/tasks/r/heartbeat`,
        `{"token":${token},"percentageComplete":1e400}`,
      ],
      [
        'percentageComplete string',
        'POST',
        `${base}/tasks/r/heartbeat`,
        `{"token":${token},"percentageComplete":"half"}`,
      ],
      [
        'percentageComplete true',
        'POST',
        `${base}/tasks/r/heartbeat`,
        `{"token":${token},"percentageComplete":true}`,
      ],
      [
        'statusText 4097 chars',
        'POST',
        `${base}/tasks/r/heartbeat`,
        `{"token":${token},"statusText":"${'s'.repeat(4097)}"}`,
      ],
      [
        'statusText lone surrogate',
        'POST',
        `${base}/tasks/r/heartbeat`,
        `{"token":${token},"statusText":"a\\ud800"}`,
      ],
      [
        'statusText operator',
        'POST',
        `${base}/tasks/r/heartbeat`,
        `{"token":${token},"statusText":{"$ne":1}}`,
      ],
      ['statusText number', 'POST', `${base}/tasks/r/heartbeat`, `{"token":${token},"statusText":5}`],
      ['stale token', 'POST', `${base}/tasks/r/heartbeat`, `{"token":${token + 1000}}`],
      ['fail without error', 'POST', `${base}/tasks/r/fail`, `{"token":${token}}`],
      ['fail error string', 'POST', `${base}/tasks/r/fail`, `{"token":${token},"error":"boom"}`],
      ['fail error without message', 'POST', `${base}/tasks/r/fail`, `{"token":${token},"error":{}}`],
      [
        'fail error unknown field',
        'POST',
        `${base}/tasks/r/fail`,
        `{"token":${token},"error":{"message":"x","extra":1}}`,
      ],
      [
        'fail message 10001 chars',
        'POST',
        `${base}/tasks/r/fail`,
        `{"token":${token},"error":{"message":"${'m'.repeat(10_001)}"}}`,
      ],
      [
        'fail code 201 chars',
        'POST',
        `${base}/tasks/r/fail`,
        `{"token":${token},"error":{"message":"x","code":"${'c'.repeat(201)}"}}`,
      ],
      [
        'fail retryable string',
        'POST',
        `${base}/tasks/r/fail`,
        `{"token":${token},"error":{"message":"x"},"retryable":"yes"}`,
      ],
      [
        'fail retryable "false"',
        'POST',
        `${base}/tasks/r/fail`,
        `{"token":${token},"error":{"message":"x"},"retryable":"false"}`,
      ],
      ['skip a running task', 'POST', `${base}/tasks/r/skip`, ''],
      ['skip a missing task', 'POST', `${base}/tasks/nope/skip`, ''],
    ];
    for (const [label, method, path, json] of misc)
      field(label, method, path, json === '' ? (undefined as never) : json);
    return out;
  }

  async function send(
    inp: Input,
  ): Promise<{ status: number | 'timeout' | 'error'; body: any; detail?: string }> {
    const headers: Record<string, string> = { authorization: `Bearer ${f.token.admin}` };
    if (inp.contentType === 'last-event-id') headers['last-event-id'] = 'garbage';
    else if (inp.raw !== undefined) headers['content-type'] = inp.contentType ?? 'application/json';
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 10_000);
    try {
      const r = await fetch(f.url + inp.path, {
        method: inp.method,
        headers,
        body: inp.raw,
        signal: ac.signal,
      });
      const text = await r.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON: reported below
      }
      return { status: r.status, body };
    } catch (err) {
      return ac.signal.aborted
        ? { status: 'timeout', body: null }
        : { status: 'error', body: null, detail: String(err) };
    } finally {
      clearTimeout(timer);
      ac.abort();
    }
  }

  it('answers every hostile input with a 4xx JSON error and changes nothing', async function () {
    this.timeout(120_000);
    const started = Date.now();
    const list = inputs();
    const before = await dumpPts(db.connection);
    const failures: string[] = [];
    const routes = new Set<string>();
    const ROUTE_OF = /\/(api\/v1\/[a-z]+)(\/[^/?]+)?(\/[a-z-]+)?(\/[^/?]+)?(\/[a-z-]+)?/;
    for (let i = 0; i < list.length; i += 8) {
      await Promise.all(
        list.slice(i, i + 8).map(async (inp) => {
          const m = ROUTE_OF.exec(inp.path);
          routes.add(
            `${inp.method} ${m ? [m[1], m[2] && ':p', m[3], m[4] && ':p', m[5]].filter(Boolean).join('') : inp.path.split('/').slice(0, 2).join('/')}`,
          );
          const r = await send(inp);
          const what = `${inp.method} ${inp.path.slice(0, 90)} [${inp.label}] body=${String(inp.raw ?? '').slice(0, 60)}`;
          if (typeof r.status !== 'number' || r.status < 400 || r.status > 499) {
            failures.push(`${what}: got ${r.status} ${r.detail ?? JSON.stringify(r.body)?.slice(0, 150)}`);
          } else if (
            typeof r.body?.error?.code !== 'string' ||
            !r.body.error.code.startsWith('PTS_') ||
            typeof r.body.error.message !== 'string'
          ) {
            failures.push(
              `${what}: ${r.status} without { error: { code, message } }: ${JSON.stringify(r.body)?.slice(0, 150)}`,
            );
          }
        }),
      );
    }
    const after = await dumpPts(db.connection);
    const unchanged = after === before;
    console.log(
      `[reliability] http-hostile: ${list.length} inputs × ${routes.size} routes, ` +
        `${list.length - failures.length} as required (4xx JSON error), database ${unchanged ? 'unchanged' : 'CHANGED'}, ${Date.now() - started} ms`,
    );
    expect(
      failures,
      `${failures.length} of ${list.length} inputs misbehaved:\n${failures.join('\n')}`,
    ).to.deep.equal([]);
    expect(after, 'the database changed').to.equal(before);
  });
});
