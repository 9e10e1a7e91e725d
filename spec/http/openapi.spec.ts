/**
 * The OpenAPI document on a real server: valid OpenAPI 3.0.3 (@seriousme/openapi-schema-validator,
 * in process), an operation for every registered route with the statuses it can answer, records
 * that reach clients whole through the response serializers, and 405 + Allow on a wrong method.
 * (CI also runs Schemathesis against `pts serve`: scripts/schemathesis.sh.)
 */
import { expect } from 'chai';
import { Validator } from '@seriousme/openapi-schema-validator';
import { useTestDatabase } from '../helpers/db';
import { startFixture, type HttpFixture } from './support';

interface Operation {
  responses: Record<
    string,
    { description: string; content?: Record<string, { schema?: Record<string, unknown> }> }
  >;
  requestBody?: unknown;
  parameters?: Array<{ in: string; name: string }>;
}
type Doc = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown> };
};

/** `[method, path]` of every route of the app, from fastify's route tree (HEAD left out). */
function registeredRoutes(tree: string): Array<[string, string]> {
  const stack: string[] = [];
  const out: Array<[string, string]> = [];
  for (const line of tree.split('\n')) {
    const m = /^([│ ]*)[├└]── (\S+) \(([^)]+)\)$/.exec(line);
    if (!m) continue;
    const depth = m[1].length / 4;
    stack.length = depth;
    stack.push(m[2]);
    const path = stack.join('');
    for (const method of m[3].split(', ')) if (method !== 'HEAD') out.push([method, path]);
  }
  return out;
}

describe('http OpenAPI document', function () {
  const db = useTestDatabase();
  let f: HttpFixture;
  let doc: Doc;
  before(async function () {
    f = await startFixture(db);
    const res = await f.call('GET', '/openapi.json', { token: null });
    expect(res.status).to.equal(200);
    doc = res.body as Doc;
  });
  after(async function () {
    await f?.close();
  });

  it('is valid OpenAPI 3.0.3, without 3.1 syntax', async function () {
    expect(doc.openapi).to.equal('3.0.3');
    const result = await new Validator().validate(
      structuredClone(doc) as unknown as Parameters<Validator['validate']>[0],
    );
    expect(result.errors ?? [], JSON.stringify(result.errors)).to.deep.equal([]);
    expect(result.valid).to.equal(true);
    const text = JSON.stringify(doc);
    expect(text).not.to.include('"required":[]');
    expect(text).not.to.match(/"exclusiveM(in|ax)imum":\d/);
    expect(text).not.to.include('"type":"null"');
    expect(text).not.to.include('Default Response');
    expect(Object.keys(doc.components.schemas)).to.include.members([
      'TaskRecord',
      'ContainerSummary',
      'Change',
    ]);
  });

  it('has an operation with its statuses for every registered route', function () {
    const routes = registeredRoutes(f.server.app.printRoutes({ commonPrefix: false }));
    expect(routes.length).to.be.greaterThan(25);
    for (const [method, path] of routes) {
      const where = `${method} ${path}`;
      const op = doc.paths[path.replace(/:(\w+)/g, '{$1}')]?.[method.toLowerCase()];
      expect(op, where).to.be.an('object');
      const statuses = Object.keys(op.responses);
      expect(
        statuses.some((s) => s.startsWith('2')),
        where,
      ).to.equal(true);
      expect(statuses, where).to.include('503');
      for (const [status, response] of Object.entries(op.responses)) {
        expect(response.description, `${where} ${status}`).to.be.a('string').and.not.equal('');
        if (status === '204') expect(response.content, `${where} 204`).to.equal(undefined);
        else expect(response.content, `${where} ${status}`).to.be.an('object');
        if (Number(status) >= 400 && response.content?.['application/json']) {
          const schema = response.content['application/json'].schema as {
            required?: string[];
            anyOf?: Array<{ required?: string[] }>;
          };
          for (const branch of schema.anyOf ?? [schema])
            expect(branch.required, `${where} ${status}: the error envelope`).to.include('error');
        }
      }
      if (!path.startsWith('/api/v1/')) continue;
      expect(statuses, where).to.include.members(['400', '401']);
      if (path.includes(':name') && !(method === 'PUT' && path === '/api/v1/containers/:name'))
        expect(statuses, where).to.include.members(['403', '404']);
      if (op.requestBody) expect(statuses, where).to.include.members(['413', '415']);
    }
    expect(doc.paths['/api/v1/containers/{name}'].put.responses).to.have.keys(
      '200',
      '201',
      '400',
      '401',
      '403',
      '413',
      '415',
      '503',
    );
    // Bodies the server lets you leave out are optional in the document.
    const bodyRequired = (path: string, method: string) =>
      (doc.paths[path][method].requestBody as { required?: boolean }).required;
    expect(bodyRequired('/api/v1/containers/{name}', 'put')).to.equal(false);
    expect(bodyRequired('/api/v1/containers/{name}/actions/retry', 'post')).to.equal(false);
    expect(bodyRequired('/api/v1/containers/{name}/worker-config', 'put')).to.equal(false);
    expect(bodyRequired('/api/v1/containers/{name}/tasks', 'post')).to.equal(true);
    expect(JSON.stringify(doc)).not.to.include('x-optional-body');
    expect(doc.paths['/api/v1/claim'].post.responses).to.include.keys('200', '204', '403');
    expect(doc.paths['/api/v1/containers/{name}/tasks/{task}/succeed'].post.responses).to.include.keys('409');
    expect(Object.keys(doc.paths['/api/v1/events'].get.responses['200'].content ?? {})).to.deep.equal([
      'text/event-stream',
    ]);
  });

  it('states the limits the server enforces', function () {
    const body = doc.paths['/api/v1/containers/{name}/tasks'].post.requestBody as {
      content: {
        'application/json': {
          schema: {
            properties: { tasks: { items: { properties: Record<string, Record<string, unknown>> } } };
          };
        };
      };
    };
    const spec = body.content['application/json'].schema.properties.tasks.items.properties;
    expect(spec.weight).to.include({ minimum: 0, exclusiveMinimum: true, maximum: 1e6 });
    expect(spec.maxRetries).to.include({ minimum: 0, maximum: 1000 });
    expect(spec.retryDelayMs).to.include({ maximum: 365 * 86_400_000 });
    expect(spec.maxRetryDelayMs).to.include({ maximum: 365 * 86_400_000 });
    expect(spec.name).to.include({ minLength: 1, maxLength: 512 });
    const pattern = new RegExp(spec.name.pattern as string, 'u');
    for (const ok of ['a', ' a ', 'resize/42', 'é✓']) expect(pattern.test(ok), ok).to.equal(true);
    for (const bad of ['', '   ', '\u3000', 'a\u0000b', 'a\nb', '\u007f'])
      expect(pattern.test(bad), JSON.stringify(bad)).to.equal(false);
  });

  it('serializes records whole (free-form parts, every field of the library record)', async function () {
    const metadata = { team: { name: 'x', tags: ['a', { deep: [1, null, true] }] } };
    expect((await f.call('PUT', '/api/v1/containers/oa-rec', { body: { metadata } })).status).to.equal(201);
    const data = { nested: { list: [1, { y: 'z' }], empty: {} }, n: 1.5 };
    const add = await f.call('POST', '/api/v1/containers/oa-rec/tasks', {
      body: { tasks: [{ name: 'a/1', data, weight: 0.5, key: null }] },
    });
    expect(add.status).to.equal(200);
    const c = await f.client.getTaskContainer('oa-rec');
    const lib = JSON.parse(JSON.stringify((await c!.getTask('a/1'))!.toJSON())) as Record<string, unknown>;
    const got = await f.call('GET', '/api/v1/containers/oa-rec/tasks/a%2F1');
    expect(got.status).to.equal(200);
    expect(got.body).to.deep.equal(lib);
    expect(got.body.taskData).to.deep.equal(data);
    expect(got.body.allowedActions).to.deep.equal(['cancel', 'skip', 'reset', 'delete', 'markSucceeded']);
    expect(add.body.tasks[0]).to.deep.equal(lib);
    const summary = await f.call('GET', '/api/v1/containers/oa-rec');
    expect(summary.body).to.deep.equal(JSON.parse(JSON.stringify(await c!.summary())));
    expect(summary.body.metadata).to.deep.equal(metadata);

    const claim = await f.call('POST', '/api/v1/claim', {
      body: { container: 'oa-rec', owner: 'w' },
      token: f.token.worker,
    });
    expect(claim.status).to.equal(200);
    const result = { out: [{ k: 'v' }], more: { a: 1 } };
    const done = await f.call('POST', '/api/v1/containers/oa-rec/tasks/a%2F1/succeed', {
      body: { token: claim.body.token, result, processingData: { at: 3 } },
      token: f.token.worker,
    });
    expect(done.status).to.equal(200);
    expect(done.body.task.result).to.deep.equal(result);
    expect(done.body.task.processingData).to.deep.equal({ at: 3 });
    const after = JSON.parse(JSON.stringify((await c!.getTask('a/1'))!.toJSON())) as Record<string, unknown>;
    expect(done.body.task).to.deep.equal(after);
  });

  it('answers 405 with Allow for a wrong method on a known path, 404 for an unknown path', async function () {
    const cases: Array<[string, string, string]> = [
      ['PATCH', '/api/v1/containers/x', 'DELETE, GET, HEAD, PUT'],
      ['POST', '/api/v1/containers/x/tasks/t', 'DELETE, GET, HEAD'],
      ['DELETE', '/api/v1/claim', 'POST'],
      ['PUT', '/api/v1/containers', 'GET, HEAD'],
      ['POST', '/healthz', 'GET, HEAD'],
      ['GET', '/api/v1/containers/x/actions/retry', 'POST'],
    ];
    for (const [method, path, allow] of cases) {
      const res = await f.call(method, path, { token: null });
      expect(res.status, `${method} ${path}`).to.equal(405);
      expect(res.headers.get('allow'), `${method} ${path}`).to.equal(allow);
      expect(res.body.error.code).to.equal('PTS_METHOD_NOT_ALLOWED');
    }
    const missing = await f.call('GET', '/api/v1/nope');
    expect(missing.status).to.equal(404);
    expect(missing.body.error.code).to.equal('PTS_NOT_FOUND');
  });
});
