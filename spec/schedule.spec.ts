/**
 * The pure parts of schedules (lib/schedule.ts, lib/pipeline.ts), no database: cron validation,
 * slots across daylight-saving changes, jitter, run names and definition diffs.
 */
import { expect } from 'chai';
import { runContainerName, ValidationError } from '../lib';
import { diffDefinitions, resolveRun, definePipeline } from '../lib/pipeline';
import { jitterOf, nextSlot, resolveSchedule, slotsBetween, validateCron } from '../lib/schedule';

const isoList = (ds: Date[]): string[] => ds.map((d) => d.toISOString());

describe('schedule (pure)', function () {
  it('accepts 5 and 6 fields and nicknames, refuses the rest with the path', function () {
    expect(validateCron(' */5 * * * * ')).to.equal('*/5 * * * *');
    expect(validateCron('*/10 * * * * *')).to.equal('*/10 * * * * *');
    expect(validateCron('@hourly')).to.equal('@hourly');
    for (const bad of ['', '* * * *', '0 0 0 * * * 2027', '0 25 * * *', 'every hour', 5]) {
      expect(() => validateCron(bad), String(bad))
        .to.throw(ValidationError)
        .with.nested.property('details.path', 'cron');
    }
    const r = resolveSchedule('p', { cron: '0 * * * *' });
    expect(r).to.deep.equal({
      name: 'p',
      pipeline: 'p',
      cron: '0 * * * *',
      timezone: 'UTC',
      overlap: 'skip',
      catchupWindowMs: 365 * 86_400_000,
      jitterMs: 0,
      paused: false,
      pauseOnFailure: false,
    });
  });

  it('Europe/Berlin hourly: 23 slots on the spring-forward day, 25 on the fall-back day, all distinct instants', function () {
    // local days: 2026-03-29 00:00 CET = 03-28T23:00Z … 24:00 CEST = 03-29T22:00Z
    const spring = slotsBetween(
      '0 * * * *',
      'Europe/Berlin',
      new Date('2026-03-28T23:00:00Z'),
      new Date('2026-03-29T21:59:59Z'),
      100,
    );
    expect(spring).to.have.length(23);
    expect(new Set(isoList(spring)).size).to.equal(23);
    const fall = slotsBetween(
      '0 * * * *',
      'Europe/Berlin',
      new Date('2026-10-24T22:00:00Z'),
      new Date('2026-10-25T22:59:59Z'),
      100,
    );
    expect(fall).to.have.length(25);
    expect(isoList(fall).slice(1, 5)).to.deep.equal([
      '2026-10-24T23:00:00.000Z',
      '2026-10-25T00:00:00.000Z',
      '2026-10-25T01:00:00.000Z',
      '2026-10-25T02:00:00.000Z',
    ]);
    expect(nextSlot('30 2 * * *', 'Europe/Berlin', new Date('2026-03-28T12:00:00Z'))!.toISOString()).to.equal(
      '2026-03-29T01:00:00.000Z',
    );
    expect(nextSlot('30 2 * * *', 'Europe/Berlin', new Date('2026-10-25T00:30:00Z'))!.toISOString()).to.equal(
      '2026-10-26T01:30:00.000Z',
    );
  });

  it('jitter is the same for a slot everywhere, below jitterMs, and spreads slots', function () {
    const slot = new Date('2026-05-01T01:00:00Z');
    expect(jitterOf('s', slot, 0)).to.equal(0);
    expect(jitterOf('s', slot, 60_000)).to.equal(jitterOf('s', new Date(slot.getTime()), 60_000));
    const spread = new Set(
      Array.from({ length: 50 }, (_, i) => jitterOf('s', new Date(slot.getTime() + i * 3_600_000), 60_000)),
    );
    expect(spread.size).to.be.above(40);
    for (const j of spread) expect(j).to.be.within(0, 59_999);
  });

  it('run names and definition diffs', async function () {
    expect(runContainerName('epf', new Date('2026-03-29T01:00:00Z'))).to.equal(
      'epf@2026-03-29T01:00:00.000Z',
    );
    const a = await resolveRun(
      definePipeline('p', {
        tasks: [
          { name: 'x', data: 1 },
          { name: 'y', dependsOn: ['x'] },
        ],
      }),
      new Date(),
      undefined as never,
    );
    const sameShape = await resolveRun(
      definePipeline('p', {
        tasks: [
          { name: 'y', dependsOn: ['x'] },
          { name: 'x', data: 2 },
        ],
      }),
      new Date(),
      undefined as never,
    );
    expect(sameShape.hash).to.equal(a.hash); // order and data do not count
    expect(diffDefinitions(a, sameShape)).to.equal(null);
    const b = await resolveRun(
      definePipeline('p', {
        tasks: [
          { name: 'x', weight: 5 },
          { name: 'z', dependsOn: ['x'] },
        ],
      }),
      new Date(),
      undefined as never,
    );
    expect(diffDefinitions(a, b)).to.deep.equal({
      fromHash: a.hash,
      toHash: b.hash,
      added: ['z'],
      removed: ['y'],
      dependenciesChanged: [],
      settingsChanged: ['x'],
    });
    await resolveRun(
      definePipeline('p', { tasks: [{ name: 'x', dependsOn: ['x'] }] }),
      new Date(),
      undefined as never,
    ).then(
      () => expect.fail('a cycle must be refused'),
      (e: unknown) => expect(e).to.be.instanceOf(ValidationError),
    );
  });
});
