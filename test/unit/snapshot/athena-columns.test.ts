import { z } from 'zod';
import {
  type ExportedSessionRecord,
  exportedSessionRecordSchema,
} from '../../../lambda/moonkey/session-record';
import {
  type AthenaColumn,
  type AthenaType,
  athenaColumnsOf,
  hiveType,
  manifestColumns,
  PARTITION_COLUMN,
  prestoType,
  sessionColumns,
} from '../../../lambda/snapshot/athena-columns';
import { emptyCounts } from '../../../lambda/snapshot/manifest';
import { FACTOR_MAKERS, sessionsFor, userIdFor } from '../../../local/fake-sessions';

/** Every field path of a JSON value that has no column (arrays checked element by element). */
function uncovered(value: unknown, type: AthenaType, path: string): string[] {
  if (value === null || value === undefined) return [];
  if (type.kind === 'array') {
    return Array.isArray(value)
      ? value.flatMap((v, i) => uncovered(v, type.element, `${path}[${i}]`))
      : [path];
  }
  if (type.kind === 'struct') {
    if (typeof value !== 'object' || Array.isArray(value)) return [path];
    return Object.entries(value as Record<string, unknown>).flatMap(([key, v]) => {
      const field = type.fields.find((f) => f.name === key);
      return field ? uncovered(v, field.type, `${path}.${key}`) : [`${path}.${key}`];
    });
  }
  const ok =
    type.name === 'string'
      ? typeof value === 'string'
      : type.name === 'boolean'
        ? typeof value === 'boolean'
        : type.name === 'double'
          ? typeof value === 'number'
          : Number.isInteger(value);
  return ok ? [] : [`${path} (${JSON.stringify(value)} is not ${type.name})`];
}

const asStruct = (columns: readonly AthenaColumn[]): AthenaType => ({ kind: 'struct', fields: columns });

/** Records as the job writes them: the fake API's sessions (every factor kind) plus the snapshot fields. */
function exportedRecords(): ExportedSessionRecord[] {
  const records: ExportedSessionRecord[] = [];
  for (let i = 0; i < 40; i++) {
    for (const session of sessionsFor(userIdFor(i), 1_760_000_000)) {
      records.push(
        exportedSessionRecordSchema.parse({
          ...session,
          snapshot_id: 'scheduled-20261126T020000Z',
          run_id: 'r20261126T020001123Z-abc123',
          snapshot_at: 1_764_122_400,
          observed_at: 1_764_122_461,
        }),
      );
    }
  }
  return records;
}

describe('sessionColumns', () => {
  it('has a column of the right type for every field of every exported record', () => {
    // Prepare
    const records = exportedRecords();
    // Act
    const missing = records.flatMap((r) => uncovered(r, asStruct(sessionColumns), 'record'));
    // Assess
    expect(records.length).toBeGreaterThan(40);
    expect([...new Set(missing)]).toEqual([]);
  });

  it('covers every factor kind the fake API generates', () => {
    const methodFields = new Set(
      exportedRecords().flatMap((r) => r.factors.flatMap((f) => Object.keys(f.method))),
    );
    expect(FACTOR_MAKERS.length).toBeGreaterThan(0);
    const factors = sessionColumns.find((c) => c.name === 'factors');
    const text = factors ? hiveType(factors.type) : '';
    for (const field of methodFields) expect(text).toContain(`${field}:`);
  });

  it("types the API's times as double (the contract's `number`), our snapshot_at as bigint, factors as array<struct>", () => {
    const byName = Object.fromEntries(sessionColumns.map((c) => [c.name, hiveType(c.type)]));
    for (const name of ['started_at', 'expires_at', 'last_active_at', 'updated_at', 'created_at']) {
      expect(byName[name]).toBe('double');
    }
    expect(byName.snapshot_at).toBe('bigint');
    expect(byName.factors).toMatch(
      /^array<struct<delivery_channel:string,type:string,method:struct<.*last_verified_at:double.*>>>$/,
    );
    expect(byName.device_fingerprint).toBe('struct<user_agent:string,ip:string>');
    expect(byName.snapshot_id).toBe('string');
  });

  it('follows the schema: a field added to the record schema becomes a column', () => {
    const extended = exportedSessionRecordSchema.extend({
      risk_score: z.number(),
      tags: z.array(z.string()),
    });
    const columns = athenaColumnsOf(extended).map((c) => `${c.name} ${hiveType(c.type)}`);
    expect(columns).toContain('risk_score double');
    expect(columns).toContain('tags array<string>');
    expect(columns).toHaveLength(athenaColumnsOf(exportedSessionRecordSchema).length + 2);
  });

  it("has the commit protocol's run_id (string) and observed_at (epoch seconds) on every line", () => {
    const byName = Object.fromEntries(sessionColumns.map((c) => [c.name, hiveType(c.type)]));
    expect(byName.run_id).toBe('string');
    expect(byName.observed_at).toBe('bigint');
    expect(sessionColumns.map((c) => c.name).filter((n) => n === 'run_id')).toHaveLength(1);
  });
});

describe('manifestColumns', () => {
  it('has the run_id of the run a manifest commits, after snapshot_id', () => {
    const names = manifestColumns.map((c) => c.name);
    expect(names.indexOf('run_id')).toBe(names.indexOf('snapshot_id') + 1);
    const runId = manifestColumns.find((c) => c.name === 'run_id');
    expect(runId && hiveType(runId.type)).toBe('string');
  });

  it('lists the files of each kind as key, bytes and records', () => {
    const files = manifestColumns.find((c) => c.name === 'files');
    const fileList = 'array<struct<key:string,bytes:bigint,records:bigint>>';

    expect(files && hiveType(files.type)).toBe(
      `struct<sessions:${fileList},rejects:${fileList},failed_users:${fileList},pseudonymized_sessions:${fileList},pseudonymized_rejects:${fileList}>`,
    );
  });

  it('has a bigint field for every count a manifest carries, users_not_found included', () => {
    const counts = manifestColumns.find((c) => c.name === 'counts')?.type;
    const fields = counts?.kind === 'struct' ? counts.fields : [];

    expect(fields.map((f) => f.name).sort()).toEqual(Object.keys(emptyCounts()).sort());
    expect(fields.map((f) => hiveType(f.type))).toEqual(fields.map(() => 'bigint'));
    expect(fields.map((f) => f.name)).toContain('users_not_found');
  });
});

describe('prestoType', () => {
  it('spells Hive types the way Presto/Trino view definitions do', () => {
    const type: AthenaType = {
      kind: 'array',
      element: {
        kind: 'struct',
        fields: [
          { name: 'a', type: { kind: 'primitive', name: 'string' } },
          { name: 'b', type: { kind: 'primitive', name: 'int' } },
          { name: 'c', type: { kind: 'array', element: { kind: 'primitive', name: 'bigint' } } },
          { name: 'd', type: { kind: 'primitive', name: 'double' } },
          { name: 'e', type: { kind: 'primitive', name: 'boolean' } },
        ],
      },
    };
    expect(prestoType(type)).toBe('array(row(a varchar,b integer,c array(bigint),d double,e boolean))');
    expect(hiveType(type)).toBe('array<struct<a:string,b:int,c:array<bigint>,d:double,e:boolean>>');
  });

  it('rejects a field that is not a valid Athena column name', () => {
    const bad = z.object({ 'Bad-Name': z.string() });
    expect(() => athenaColumnsOf(bad)).toThrow(/Bad-Name is not a valid Athena column name/);
    // A lower-case start is not enough: the whole name must be a Hive identifier.
    expect(() => athenaColumnsOf(z.object({ userId: z.string() }))).toThrow(
      /userId is not a valid Athena column name/,
    );
    expect(() => athenaColumnsOf(z.object({ 'user-id': z.string() }))).toThrow(
      /user-id is not a valid Athena column name/,
    );
  });

  it('names every column once in each table (Glue refuses a duplicate)', () => {
    for (const columns of [sessionColumns, manifestColumns]) {
      const names = columns.map((c) => c.name);
      expect(new Set(names).size).toBe(names.length);
    }
  });

  it('partitions both tables by dt, a string column (the dt=YYYY-MM-DD path segment)', () => {
    expect(PARTITION_COLUMN.name).toBe('dt');
    expect(hiveType(PARTITION_COLUMN.type)).toBe('string');
  });

  it('keeps the partition column out of the data columns', () => {
    expect(sessionColumns.map((c) => c.name)).not.toContain(PARTITION_COLUMN.name);
    expect(manifestColumns.map((c) => c.name)).not.toContain(PARTITION_COLUMN.name);
  });
});

describe('athenaColumnsOf', () => {
  it('maps every JSON Schema type zod emits, a nullable one as its type, nested fields by name', () => {
    const schema = z.object({
      s: z.string(),
      n: z.int(),
      d: z.number(),
      b: z.boolean(),
      maybe: z.string().nullable(),
      list: z.array(z.object({ x: z.int() })),
      nested: z.object({ deep: z.object({ y: z.boolean() }) }),
    });

    expect(athenaColumnsOf(schema).map((c) => `${c.name} ${hiveType(c.type)}`)).toEqual([
      's string',
      'n bigint',
      'd double',
      'b boolean',
      'maybe string',
      'list array<struct<x:bigint>>',
      'nested struct<deep:struct<y:boolean>>',
    ]);
  });

  it.each([
    [
      'a union of types',
      z.object({ u: z.union([z.string(), z.number()]) }),
      'Cannot map u to an Athena column: JSON Schema type ["string","number"]',
    ],
    [
      'null alone',
      z.object({ a: z.object({ x: z.null() }) }),
      'Cannot map a.x to an Athena column: JSON Schema type "null"',
    ],
    [
      'a tuple (an array without items)',
      z.object({ t: z.tuple([z.string()]) }),
      'Cannot map t to an Athena column: array without items',
    ],
    [
      'a union inside an array',
      z.object({ l: z.array(z.union([z.string(), z.int()])) }),
      'Cannot map l[] to an Athena column: JSON Schema type undefined',
    ],
  ])('refuses %s, naming the field by its path', (_, schema, message) => {
    expect(() => athenaColumnsOf(schema)).toThrow(new Error(message));
  });

  it('names a bad field by its full path', () => {
    expect(() => athenaColumnsOf(z.object({ outer: z.object({ Bad: z.string() }) }))).toThrow(
      new Error('Field outer.Bad is not a valid Athena column name (lower-case letters, digits, _)'),
    );
  });
});
