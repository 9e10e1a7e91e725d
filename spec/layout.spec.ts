/**
 * The layout rules of lib/ (STYLE.md), checked on the source with the TypeScript parser — no
 * database, nothing imported from lib/ but the state vocabulary. Each failure lists every
 * offending `file:line` with the line's text.
 *
 * (a) collections are reached only from lib/store/ (the token store's queries too:
 *     lib/store/tokens.ts);
 * (b) events are emitted only by the notifier (lib/notify.ts; lib/events.ts defines the emitter);
 * (c) the ready-task filter is written once, in lib/store/filters.ts;
 * (d) state lists are declared once, in lib/states.ts, and the dashboard reads them (generated
 *     /ui/states.js) instead of keeping its own;
 * (e) the store's state filters take their states from TRANSITIONS (or another states.ts
 *     constant), never from a literal list.
 */
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { CONTAINER_STATUSES, TASK_STATES, TRANSITIONS, type TaskOperation } from '../lib/states';

const ROOT = path.resolve(__dirname, '..');
const STATE_NAMES: ReadonlySet<string> = new Set<string>([...TASK_STATES, ...CONTAINER_STATUSES]);

interface Source {
  /** Relative to the repository root, with forward slashes: `lib/store/claims.ts`. */
  file: string;
  sf: ts.SourceFile;
  lines: string[];
}

function walk(dir: string, ext: RegExp): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(full, ext));
    else if (ext.test(entry.name)) out.push(full);
  }
  return out.sort();
}

/** A parsed file; `file` relative to the repository root. */
function parse(file: string, text: string): Source {
  const kind = file.endsWith('.js') ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  return {
    file,
    sf: ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, kind),
    lines: text.split('\n'),
  };
}

const load = (full: string): Source =>
  parse(path.relative(ROOT, full).split(path.sep).join('/'), fs.readFileSync(full, 'utf8'));

const libSources = (): Source[] => walk(path.join(ROOT, 'lib'), /\.ts$/).map(load);
const dashboardSources = (): Source[] => walk(path.join(ROOT, 'dashboard'), /\.js$/).map(load);

/** `file:line: text` of a node. */
function at(src: Source, node: ts.Node): string {
  const line = src.sf.getLineAndCharacterOfPosition(node.getStart(src.sf)).line;
  return `${src.file}:${line + 1}: ${src.lines[line].trim()}`;
}

/** Every node of a file, depth first. */
function nodes(src: Source): ts.Node[] {
  const out: ts.Node[] = [];
  const visit = (n: ts.Node): void => {
    out.push(n);
    n.forEachChild(visit);
  };
  visit(src.sf);
  return out;
}

/** The name of a property assignment (`a:`, `'a.b':`), or null. */
function propName(p: ts.ObjectLiteralElementLike): string | null {
  if (!ts.isPropertyAssignment(p)) return null;
  if (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name)) return p.name.text;
  return null;
}

function prop(obj: ts.ObjectLiteralExpression, name: string): ts.PropertyAssignment | undefined {
  return obj.properties.find((p): p is ts.PropertyAssignment => propName(p) === name);
}

/** String literal values among an array's elements. */
function strings(arr: ts.ArrayLiteralExpression): string[] {
  return arr.elements
    .filter((e) => ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e))
    .map((e) => (e as ts.StringLiteral).text);
}

/** Array literals and union types naming three or more states: a re-declared state list. */
function stateLists(src: Source): string[] {
  const out: string[] = [];
  for (const n of nodes(src)) {
    let named: string[] = [];
    if (ts.isArrayLiteralExpression(n)) named = strings(n).filter((s) => STATE_NAMES.has(s));
    else if (ts.isUnionTypeNode(n)) {
      named = n.types
        .filter((t): t is ts.LiteralTypeNode => ts.isLiteralTypeNode(t) && ts.isStringLiteral(t.literal))
        .map((t) => (t.literal as ts.StringLiteral).text)
        .filter((s) => STATE_NAMES.has(s));
    }
    if (new Set(named).size >= 3) out.push(at(src, n));
  }
  return out;
}

/** `state: { $in|$nin: … }` filters of a file: the operator's value nodes. */
function stateFilters(src: Source): ts.Expression[] {
  const out: ts.Expression[] = [];
  for (const n of nodes(src)) {
    if (
      !ts.isPropertyAssignment(n) ||
      propName(n) !== 'state' ||
      !ts.isObjectLiteralExpression(n.initializer)
    )
      continue;
    for (const op of ['$in', '$nin']) {
      const p = prop(n.initializer, op);
      if (p) out.push(p.initializer);
    }
  }
  return out;
}

/** `.cols.` (the store context's collections), `.collection(` / `.collection<T>(` (a connection's or Db's). */
function rawCollectionAccess(src: Source): string[] {
  return nodes(src)
    .filter(
      (n) =>
        (ts.isPropertyAccessExpression(n) &&
          n.name.text === 'cols' &&
          ts.isPropertyAccessExpression(n.parent)) ||
        (ts.isCallExpression(n) &&
          ts.isPropertyAccessExpression(n.expression) &&
          n.expression.name.text === 'collection'),
    )
    .map((n) => at(src, n));
}

/** `x.emit(…)` calls. */
function emits(src: Source): string[] {
  return nodes(src)
    .filter(
      (n) =>
        ts.isCallExpression(n) &&
        ts.isPropertyAccessExpression(n.expression) &&
        n.expression.name.text === 'emit',
    )
    .map((n) => at(src, n));
}

/** Filters for "no unmet dependency": `'waitingOn.0': { $exists: false }`, or `waitingOn: { $size: 0 }`. */
function readyFilters(src: Source): string[] {
  return nodes(src)
    .filter((n): n is ts.ObjectLiteralExpression => ts.isObjectLiteralExpression(n))
    .filter((o) => {
      const first = prop(o, 'waitingOn.0')?.initializer;
      if (
        first &&
        ts.isObjectLiteralExpression(first) &&
        prop(first, '$exists')?.initializer.kind === ts.SyntaxKind.FalseKeyword
      )
        return true;
      const all = prop(o, 'waitingOn')?.initializer;
      const size = all && ts.isObjectLiteralExpression(all) ? prop(all, '$size')?.initializer : undefined;
      return size !== undefined && ts.isNumericLiteral(size) && size.text === '0';
    })
    .map((o) => at(src, o));
}

/** `TASK_STATES` / `CONTAINER_STATUSES` declared (not imported) in a file. */
function ownStateConstants(src: Source): string[] {
  return nodes(src)
    .filter(
      (n) =>
        (ts.isVariableDeclaration(n) || ts.isPropertyAssignment(n) || ts.isFunctionDeclaration(n)) &&
        n.name !== undefined &&
        ts.isIdentifier(n.name) &&
        /^(TASK_STATES|CONTAINER_STATUSES)$/.test(n.name.text),
    )
    .map((n) => at(src, n));
}

/** `state: { $in: ['…', …] }`: a literal list of states in a filter. */
function literalStateFilters(src: Source): string[] {
  return stateFilters(src)
    .filter((v) => ts.isArrayLiteralExpression(v) && strings(v).length > 0)
    .map((v) => at(src, v));
}

/** `state: { $in: name }` where `name` is not taken from TRANSITIONS, `from(op)` or a states.ts constant. */
function unsourcedStateFilters(src: Source): string[] {
  const fromTable = /\bTRANSITIONS\b|\bfrom\(|\b[A-Z_]+_(STATES|STATUSES)\b/;
  const all = nodes(src);
  return stateFilters(src)
    .filter((v): v is ts.Identifier => ts.isIdentifier(v))
    .filter((id) => {
      const decl = all
        .filter(
          (n): n is ts.VariableDeclaration =>
            ts.isVariableDeclaration(n) &&
            ts.isIdentifier(n.name) &&
            n.name.text === id.text &&
            n.pos < id.pos,
        )
        .pop();
      return !decl?.initializer || !fromTable.test(decl.initializer.getText(src.sf));
    })
    .map((id) => at(src, id));
}

/** Lines of a failure message. */
const report = (title: string, offenders: string[]): string => `${title}:\n  ${offenders.join('\n  ')}\n`;

describe('layout of lib/', function () {
  const lib = libSources();
  const inStore = (s: Source) => s.file.startsWith('lib/store/');
  const only = (file: string) => lib.filter((s) => s.file === file);

  describe('the detectors (on snippets)', function () {
    const snippet = (text: string, file = 'lib/x.ts') => parse(file, text);

    it('find raw collection access, not look-alikes', function () {
      expect(rawCollectionAccess(snippet('ctx.cols.tasks.find({});'))).to.have.lengthOf(1);
      expect(rawCollectionAccess(snippet('conn.collection("x").find();'))).to.have.lengthOf(1);
      expect(rawCollectionAccess(snippet('db.collection<Doc>("x");'))).to.have.lengthOf(1);
      expect(
        rawCollectionAccess(
          snippet(
            'const ctx = { cols: getCollections(m) };\n// ctx.cols.tasks in a comment\nconst s = ".collection(";',
          ),
        ),
      ).to.deep.equal([]);
    });

    it('find emits, not the word in comments or strings', function () {
      expect(emits(snippet('this.ev.emit("task:added", {});'))).to.deep.equal([
        'lib/x.ts:1: this.ev.emit("task:added", {});',
      ]);
      expect(emits(snippet('// x.emit(\nconst s = "a.emit(";'))).to.deep.equal([]);
    });

    it('find both spellings of the ready filter, not the blocked one', function () {
      expect(
        readyFilters(snippet("const f = { state: 'pending', 'waitingOn.0': { $exists: false } };")),
      ).to.have.lengthOf(1);
      expect(readyFilters(snippet('const f = { "waitingOn.0": { $exists: false } };'))).to.have.lengthOf(1);
      expect(readyFilters(snippet('const f = { waitingOn: { $size: 0 } };'))).to.have.lengthOf(1);
      expect(readyFilters(snippet("const f = { 'waitingOn.0': { $exists: true } };"))).to.deep.equal([]);
      expect(readyFilters(snippet('const u = { $set: { waitingOn: [] } };'))).to.deep.equal([]);
    });

    it('find lists and unions of 3+ states, not pairs, calls or single states', function () {
      const found = (t: string) => stateLists(snippet(t)).length;
      expect(found("const F = ['succeeded', 'failed', 'cancelled'];")).to.equal(1);
      expect(found("for (const s of ['succeeded', 'running', 'pending', 'failed'] as const) {}")).to.equal(1);
      expect(found("type Done = 'succeeded' | 'failed' | 'cancelled';")).to.equal(1);
      expect(found("const p = ['pending', 'running'];")).to.equal(0);
      expect(found("moveDelta('pending', 'running', 1, 0, 0);")).to.equal(0);
      expect(
        found(
          "const f = { state: 'pending' }; const e = ['task:failed', 'task:cancelled', 'task:succeeded'];",
        ),
      ).to.equal(0);
      expect(found("const x = ['pending', 'pending', 'pending'];")).to.equal(0);
      expect(found("const ok = [...SATISFYING_TASK_STATES, 'x'];")).to.equal(0);
      expect(ownStateConstants(snippet('const TASK_STATES = [];', 'dashboard/x.js'))).to.have.lengthOf(1);
      expect(
        ownStateConstants(snippet("import { TASK_STATES } from './states.js';", 'dashboard/x.js')),
      ).to.deep.equal([]);
    });

    it('find literal and unsourced state filters, not those from the table', function () {
      expect(literalStateFilters(snippet("f({ state: { $in: ['pending', 'running'] } });"))).to.have.lengthOf(
        1,
      );
      expect(literalStateFilters(snippet("f({ state: { $nin: ['failed'] } });"))).to.have.lengthOf(1);
      expect(
        literalStateFilters(snippet('f({ state: { $in: [...SATISFYING_TASK_STATES] } });')),
      ).to.deep.equal([]);
      expect(
        unsourcedStateFilters(snippet("const allowed = ['failed'];\nf({ state: { $in: allowed } });")),
      ).to.have.lengthOf(1);
      expect(
        unsourcedStateFilters(snippet("const allowed = from('retry');\nf({ state: { $in: allowed } });")),
      ).to.deep.equal([]);
      expect(
        unsourcedStateFilters(
          snippet('const allowed = [...TRANSITIONS[a].from];\nf({ state: { $in: allowed } });'),
        ),
      ).to.deep.equal([]);
    });
  });

  it('reads every source file (sanity)', function () {
    expect(lib.length).to.be.above(30);
    expect(lib.map((s) => s.file)).to.include.members([
      'lib/store/filters.ts',
      'lib/notify.ts',
      'lib/states.ts',
      'lib/auth.ts',
    ]);
  });

  it('(a) reaches collections only from lib/store/', function () {
    // the rule has something to find: the store itself works this way
    expect(lib.filter(inStore).flatMap(rawCollectionAccess)).to.have.length.above(0);
    const offenders = lib.filter((s) => !inStore(s)).flatMap(rawCollectionAccess);
    const files = [...new Set(offenders.map((o) => o.slice(0, o.indexOf(':'))))];
    expect(files, report('raw collection access outside lib/store/', offenders)).to.deep.equal([]);
  });

  it('(b) emits events only from lib/notify.ts (lib/events.ts defines the emitter)', function () {
    expect(only('lib/notify.ts').flatMap(emits)).to.have.length.above(0);
    const offenders = lib
      .filter((s) => s.file !== 'lib/notify.ts' && s.file !== 'lib/events.ts')
      .flatMap(emits);
    expect(offenders, report('.emit( outside lib/notify.ts', offenders)).to.deep.equal([]);
  });

  it("(c) writes the ready filter ('waitingOn.0': { $exists: false }) only in lib/store/filters.ts", function () {
    expect(
      only('lib/store/filters.ts').flatMap(readyFilters),
      'the ready filter is not in lib/store/filters.ts any more',
    ).to.have.lengthOf(1);
    const offenders = lib.filter((s) => s.file !== 'lib/store/filters.ts').flatMap(readyFilters);
    expect(
      offenders,
      report('the ready filter written outside lib/store/filters.ts', offenders),
    ).to.deep.equal([]);
  });

  it('(d) declares state lists only in lib/states.ts', function () {
    expect(only('lib/states.ts').flatMap(stateLists)).to.have.length.above(0);
    const offenders = lib.filter((s) => s.file !== 'lib/states.ts').flatMap(stateLists);
    expect(offenders, report('a list of 3+ states outside lib/states.ts', offenders)).to.deep.equal([]);
  });

  it('(d) the dashboard keeps no TASK_STATES / CONTAINER_STATUSES (or other state list) of its own', function () {
    const dashboard = dashboardSources();
    expect(dashboard.map((s) => s.file)).to.include('dashboard/app.js');
    const offenders = [...dashboard.flatMap(ownStateConstants), ...dashboard.flatMap(stateLists)];
    expect(
      offenders,
      report('dashboard/*.js declares states itself (read them from /ui/states.js)', offenders),
    ).to.deep.equal([]);
  });

  it("(e) the store never filters on a literal state list (state: { $in: ['…'] })", function () {
    const offenders = lib.filter(inStore).flatMap(literalStateFilters);
    expect(offenders, report("state: { $in: ['…'] } literal in lib/store/", offenders)).to.deep.equal([]);
  });

  it('(e) a named state list in a store filter comes from TRANSITIONS or states.ts', function () {
    // the store does filter on named lists (namedTransition, deleteTask, bulkAction)
    expect(lib.filter(inStore).flatMap((s) => stateFilters(s).filter(ts.isIdentifier))).to.have.length.above(
      2,
    );
    const offenders = lib.filter(inStore).flatMap(unsourcedStateFilters);
    expect(
      offenders,
      report('state filter whose list does not come from TRANSITIONS / states.ts', offenders),
    ).to.deep.equal([]);
  });

  it('(e) every admin transition in lib/store/transitions.ts takes its from-states from TRANSITIONS', function () {
    const [src] = only('lib/store/transitions.ts');
    if (!src) throw new Error('lib/store/transitions.ts is missing');
    const all = nodes(src);
    const fn = (name: string) =>
      all.find((n): n is ts.FunctionDeclaration => ts.isFunctionDeclaration(n) && n.name?.text === name);
    // from(op) reads the table
    expect(
      fn('from')?.body?.getText(src.sf),
      `${src.file}: function from(op) should return TRANSITIONS[op].from`,
    ).to.match(/TRANSITIONS\[op\]\.from/);
    // namedTransition's filter is from(op)
    expect(
      fn('namedTransition')?.body?.getText(src.sf),
      `${src.file}: namedTransition should filter on from(op)`,
    ).to.match(/const allowed = from\(op\)[\s\S]*state: \{ \$in: allowed \}/);
    // and every admin operation goes through one of them: from('op'), namedTransition(ctx, t, 'op' | c ? 'a' : 'b', …)
    const looked = new Set<string>();
    const literalsIn = (e: ts.Node): void => {
      if (ts.isStringLiteral(e)) looked.add(e.text);
      e.forEachChild(literalsIn);
    };
    for (const n of all) {
      if (!ts.isCallExpression(n) || !ts.isIdentifier(n.expression)) continue;
      if (n.expression.text === 'from' && n.arguments[0]) literalsIn(n.arguments[0]);
      if (n.expression.text === 'namedTransition' && n.arguments[2]) literalsIn(n.arguments[2]);
    }
    const admin = (Object.keys(TRANSITIONS) as TaskOperation[]).filter(
      (op) => TRANSITIONS[op].by === 'admin',
    );
    expect(admin).to.include.members(['retry', 'cancel', 'skip', 'reset', 'delete']);
    const missing = admin.filter((op) => !looked.has(op));
    expect(missing, `admin operations of TRANSITIONS whose states ${src.file} never looks up`).to.deep.equal(
      [],
    );
  });
});
