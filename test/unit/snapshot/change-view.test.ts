import { hiveType } from '../../../lambda/snapshot/athena-columns';
import { changeViewColumns } from '../../../lambda/snapshot/change-view';
import { readerViewColumns } from '../../../lambda/snapshot/reader-view';

/**
 * The change view's declared columns, what the stack gives Glue beside the SQL (Glue refuses a view
 * whose columns differ from its SELECT's; test/unit/snapshot/change-view-duckdb.test.ts runs the SQL on DuckDB and
 * compares). Readers query by these names and types.
 */
const typeOf = (name: string) => {
  const column = readerViewColumns.find((c) => c.name === name);
  return column ? hiveType(column.type) : `no column ${name}`;
};

describe('changeViewColumns', () => {
  it('leads with the change, the snapshot it is seen in, and the snapshot before it', () => {
    expect(changeViewColumns.slice(0, 6).map((c) => `${c.name} ${hiveType(c.type)}`)).toEqual([
      'change string',
      `dt ${typeOf('dt')}`,
      `snapshot_id ${typeOf('snapshot_id')}`,
      `snapshot_at ${typeOf('snapshot_at')}`,
      `previous_dt ${typeOf('dt')}`,
      `previous_snapshot_id ${typeOf('snapshot_id')}`,
    ]);
    expect(typeOf('dt')).toBe('string');
    expect(typeOf('snapshot_at')).toBe('bigint');
  });

  it("then has every field of the session, as the reader view types it, and no line's own run_id", () => {
    const fields = changeViewColumns.slice(6);
    const sessionFields = readerViewColumns.filter(
      (c) => !['snapshot_id', 'run_id', 'snapshot_at', 'dt'].includes(c.name),
    );

    expect(fields.map((c) => c.name)).toEqual(sessionFields.map((c) => c.name));
    expect(fields.map((c) => hiveType(c.type))).toEqual(sessionFields.map((c) => hiveType(c.type)));
    expect(fields.map((c) => c.name)).toEqual(
      expect.arrayContaining(['id', 'user_id', 'factors', 'observed_at']),
    );
    expect(changeViewColumns.map((c) => c.name)).not.toContain('run_id');
  });
});
