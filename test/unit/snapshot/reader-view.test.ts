import * as path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { manifestColumns, sessionColumns } from '../../../lambda/snapshot/athena-columns';
import { CHANGES_VIEW_NAME } from '../../../lambda/snapshot/change-view';
import {
  MANIFESTS_TABLE,
  RAW_SESSIONS_TABLE,
  READER_VIEW_NAME,
  readerViewColumns,
  readerViewSql,
} from '../../../lambda/snapshot/reader-view';
import { readNdjson } from '../../../local/duckdb-reader';
import { SNAPSHOT_EVENT_SCHEMA } from '../../helpers/snapshot-event-schema';

/**
 * The reader view's SQL, the very text the stack encodes into the Glue view, run by DuckDB over
 * tables named as in Glue and filled from NDJSON fixtures laid out as the job writes them
 * (test/fixtures/reader-view/README.md lists the runs). DuckDB is not Athena, but this SQL uses
 * only what both read the same way: a join, a GROUP BY with max(), string comparison.
 */
const FIXTURES = path.join(__dirname, '../../fixtures/reader-view');
const SLOT = 'scheduled-20261126T020000Z';
const AUDIT = 'audit-20261126T101500Z-ab12';
const NEXT_DAY_SLOT = 'scheduled-20261127T020000Z';

interface Row {
  dt: string;
  snapshot_id: string;
  run_id: string;
  id: string;
}

describe('the reader view SQL, run by DuckDB over tables named as in Glue', () => {
  let rows: Row[];
  let columnNames: string[];

  beforeAll(async () => {
    // Prepare: the two Glue tables as DuckDB tables of the same names.
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    try {
      await connection.run(
        `CREATE TABLE ${RAW_SESSIONS_TABLE} AS SELECT * FROM ${readNdjson(`${FIXTURES}/sessions/**/*.ndjson`, sessionColumns)}`,
      );
      await connection.run(
        `CREATE TABLE ${MANIFESTS_TABLE} AS SELECT * FROM ${readNdjson(`${FIXTURES}/manifests/**/*.json`, manifestColumns)}`,
      );
      // Act: the view's SQL with the table names bound.
      const reader = await connection.runAndReadAll(
        `SELECT * FROM (${readerViewSql({ sessionsRaw: RAW_SESSIONS_TABLE, manifests: MANIFESTS_TABLE })}) v
         ORDER BY dt, snapshot_id, id`,
      );
      rows = reader.getRowObjectsJson() as unknown as Row[];
      columnNames = reader.columnNames();
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
  });

  it('reads every fixture line into sessions_raw (the view has something to leave out)', async () => {
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    try {
      const reader = await connection.runAndReadAll(
        `SELECT count(*)::INTEGER AS n FROM ${readNdjson(`${FIXTURES}/sessions/**/*.ndjson`, sessionColumns)}`,
      );
      expect(reader.getRowObjectsJson()).toEqual([{ n: 11 }]);
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
  });

  it('shows a rerun slot through its newest committed run only, whole', () => {
    const slot = rows.filter((r) => r.snapshot_id === SLOT);
    expect(slot.map((r) => r.id)).toEqual(['s1', 's2', 's3']);
    expect(new Set(slot.map((r) => r.run_id))).toEqual(new Set(['r20261126T033000000Z-bbbbbb']));
  });

  it('ignores a failed run and a killed run even when their run ids are greater', () => {
    const runs = new Set(rows.map((r) => r.run_id));
    expect(runs.has('r20261126T050000000Z-cccccc')).toBe(false);
    expect(runs.has('r20261126T060000000Z-dddddd')).toBe(false);
    expect(rows.some((r) => r.id === 's9')).toBe(false);
  });

  it('keeps an audit committed before a failed rerun of it', () => {
    expect(rows.filter((r) => r.snapshot_id === AUDIT).map((r) => [r.id, r.run_id])).toEqual([
      ['s1', 'r20261126T101501000Z-eeeeee'],
    ]);
  });

  it('shows nothing of a slot that never committed', () => {
    expect(rows.filter((r) => r.snapshot_id === NEXT_DAY_SLOT)).toEqual([]);
  });

  it('has no duplicate session within a snapshot', () => {
    const keys = rows.map((r) => `${r.dt}/${r.snapshot_id}/${r.id}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(rows).toHaveLength(4);
  });

  it('returns the declared view columns, in order', () => {
    expect(columnNames).toEqual(readerViewColumns.map((c) => c.name));
  });
});

describe('the names readers query by', () => {
  it('are the ones the shipped completion event schema promises in its views', () => {
    const views = (SNAPSHOT_EVENT_SCHEMA.$defs as { views: { properties: Record<string, unknown> } }).views;

    expect(views.properties).toMatchObject({
      sessions: { const: READER_VIEW_NAME },
      changes: { const: CHANGES_VIEW_NAME },
      manifests: { const: MANIFESTS_TABLE },
    });
  });
});
