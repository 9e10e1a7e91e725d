import { expect } from 'chai';
import { CONTAINER_STATUSES, deriveContainerStatus, emptyCounts, TASK_STATES } from '../lib/states';

describe('states', function () {
  it('are frozen vocabularies', function () {
    expect(Object.isFrozen(TASK_STATES)).to.equal(true);
    expect(Object.isFrozen(CONTAINER_STATUSES)).to.equal(true);
    expect(TASK_STATES).to.include.members(['pending', 'running', 'succeeded', 'failed', 'skipped', 'cancelled']);
  });

  it('derives the container status from counts', function () {
    const c = (p: Partial<ReturnType<typeof emptyCounts>>) => ({ ...emptyCounts(), ...p });
    expect(deriveContainerStatus(c({}), 'pending')).to.equal('pending');
    expect(deriveContainerStatus(c({ pending: 3 }), 'pending')).to.equal('pending');
    expect(deriveContainerStatus(c({ pending: 2, running: 1 }), 'pending')).to.equal('running');
    expect(deriveContainerStatus(c({ pending: 2, succeeded: 1 }), 'pending')).to.equal('running');
    expect(deriveContainerStatus(c({ succeeded: 2, skipped: 1 }), 'running')).to.equal('succeeded');
    expect(deriveContainerStatus(c({ succeeded: 2, failed: 1 }), 'running')).to.equal('failed');
    expect(deriveContainerStatus(c({ succeeded: 2, cancelled: 1 }), 'running')).to.equal('cancelled');
    expect(deriveContainerStatus(c({ succeeded: 2, pending: 1 }), 'succeeded')).to.equal('running');
    // pending tasks blocked behind a failure: the counters alone keep the current status
    expect(deriveContainerStatus(c({ failed: 1, pending: 1 }), 'running')).to.equal('running');
    expect(deriveContainerStatus(c({ failed: 1, pending: 1 }), 'failed')).to.equal('failed');
  });
});
