import { runIdOfKey, SnapshotKeys } from '../../../lambda/snapshot/snapshot-keys';

const RUN = 'r20261126T020004512Z-3fa9c1';
const SLOT = 'scheduled-20261126T020000Z';
// 23:30 at UTC-5 is 04:30 UTC the next day: the partition is the UTC date.
const keys = new SnapshotKeys('p/q', SLOT, Date.parse('2026-11-26T04:30:00Z') / 1000, RUN);

describe('SnapshotKeys', () => {
  it('lays out data, manifests and run state as the README and the Glue tables expect', () => {
    expect(keys.dt).toBe('2026-11-26');
    expect(keys.fileKey('rejects', 's002-00017-abc', 3)).toBe(
      `p/q/rejects/dt=2026-11-26/${SLOT}.${RUN}.s002-00017-abc-00003.ndjson.gz`,
    );
    expect(keys.tableLocation()).toBe('p/q/sessions/');
    expect(keys.manifestKey()).toBe(`p/q/manifests/dt=2026-11-26/${SLOT}.${RUN}.json`);
    expect(keys.manifestKey('r20261126T030000000Z-aaaaaa')).toBe(
      `p/q/manifests/dt=2026-11-26/${SLOT}.r20261126T030000000Z-aaaaaa.json`,
    );
    expect(keys.planKey()).toBe(`p/q/runs/dt=2026-11-26/${SLOT}/${RUN}/plan.json`);
    expect(keys.workStepKey(2, 17, 'abc')).toBe(
      `p/q/runs/dt=2026-11-26/${SLOT}/${RUN}/work/002/00017-abc.json`,
    );
    expect(keys.failedWorkKey(2, 17, 'abc')).toBe(
      `p/q/runs/dt=2026-11-26/${SLOT}/${RUN}/work/002/00017-abc.failed.json`,
    );
  });

  it('names the prefixes a listing of the slot, of this run or of another run uses', () => {
    const other = 'r20261126T030000000Z-aaaaaa';
    expect(keys.slotFilePrefix('failed-users')).toBe(`p/q/failed-users/dt=2026-11-26/${SLOT}.`);
    expect(keys.runFilePrefix('sessions')).toBe(`p/q/sessions/dt=2026-11-26/${SLOT}.${RUN}.`);
    expect(keys.slotManifestPrefix()).toBe(`p/q/manifests/dt=2026-11-26/${SLOT}.`);
    expect(keys.slotStatePrefix()).toBe(`p/q/runs/dt=2026-11-26/${SLOT}/`);
    expect(keys.runStatePrefix()).toBe(`p/q/runs/dt=2026-11-26/${SLOT}/${RUN}/`);
    expect(keys.runStatePrefix(other)).toBe(`p/q/runs/dt=2026-11-26/${SLOT}/${other}/`);
    expect(keys.uploadRecordPrefix()).toBe(`p/q/runs/dt=2026-11-26/${SLOT}/${RUN}/uploads/`);
    expect(keys.uploadRecordPrefix(other)).toBe(`p/q/runs/dt=2026-11-26/${SLOT}/${other}/uploads/`);
    expect(keys.workStatePrefix()).toBe(`p/q/runs/dt=2026-11-26/${SLOT}/${RUN}/work/`);
  });

  it('gives every upload a record of its own, named from its key and upload id', () => {
    const a = keys.uploadRecordKey(keys.fileKey('sessions', 'w', 0), 'upload-1');
    const b = keys.uploadRecordKey(keys.fileKey('sessions', 'w', 0), 'upload-2');
    const c = keys.uploadRecordKey(keys.fileKey('sessions', 'w', 1), 'upload-1');

    expect(new Set([a, b, c]).size).toBe(3);
    expect(a).toMatch(new RegExp(`^p/q/runs/dt=2026-11-26/${SLOT}/${RUN}/uploads/[0-9a-f]{32}\\.json$`));
    expect(keys.uploadRecordKey(keys.fileKey('sessions', 'w', 0), 'upload-1')).toBe(a);
  });
});

describe('runIdOfKey', () => {
  it('reads the run id from data, manifest and run-state keys of the slot', () => {
    expect(runIdOfKey(keys.fileKey('sessions', 'w', 0), keys.slotFilePrefix('sessions'))).toBe(RUN);
    expect(runIdOfKey(keys.manifestKey(), keys.slotManifestPrefix())).toBe(RUN);
    expect(runIdOfKey(keys.planKey(), keys.slotStatePrefix())).toBe(RUN);
  });

  it('answers undefined for keys that are not ours, so they are never deleted', () => {
    expect(runIdOfKey('elsewhere/x.json', keys.slotManifestPrefix())).toBeUndefined();
    expect(runIdOfKey(`${keys.slotManifestPrefix()}notes.json`, keys.slotManifestPrefix())).toBeUndefined();
    expect(runIdOfKey(`${keys.slotManifestPrefix()}`, keys.slotManifestPrefix())).toBeUndefined();
    // Another slot's key, its prefix as long as this slot's: what follows it is a run id too.
    const otherSlot = new SnapshotKeys(
      'p/q',
      'scheduled-20261126T030000Z',
      Date.parse('2026-11-26T04:30:00Z') / 1000,
      RUN,
    );
    expect(runIdOfKey(otherSlot.manifestKey(), keys.slotManifestPrefix())).toBeUndefined();
  });
});
