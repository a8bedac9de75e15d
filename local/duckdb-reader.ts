import { DuckDBInstance } from '@duckdb/node-api';
import {
  type AthenaColumn,
  type AthenaType,
  manifestColumns,
  sessionColumns,
} from '../lambda/snapshot/athena-columns';
import {
  MANIFESTS_TABLE,
  PSEUDONYMIZED_SESSIONS_TABLE,
  PSEUDONYMIZED_VIEW_NAME,
  RAW_SESSIONS_TABLE,
  readerViewSql,
} from '../lambda/snapshot/reader-view';

/** Glue/Hive type -> DuckDB type, so DuckDB reads with exactly the columns the Glue tables declare. */
export function duckType(type: AthenaType): string {
  switch (type.kind) {
    case 'primitive':
      return { string: 'VARCHAR', bigint: 'BIGINT', int: 'INTEGER', double: 'DOUBLE', boolean: 'BOOLEAN' }[
        type.name
      ];
    case 'array':
      return `${duckType(type.element)}[]`;
    case 'struct':
      return `STRUCT(${type.fields.map((f) => `"${f.name}" ${duckType(f.type)}`).join(', ')})`;
  }
}

/** A DuckDB table function reading NDJSON (gzip or not) with the Glue table's columns and `dt` from the path. */
export function readNdjson(glob: string, columns: readonly AthenaColumn[]): string {
  return `read_ndjson('${glob}', columns = {${columns.map((c) => `'${c.name}': '${duckType(c.type)}'`).join(', ')}},
    hive_partitioning = true, hive_types = {'dt': 'VARCHAR'}, format = 'newline_delimited')`;
}

/**
 * Runs `sql` where `sessions_raw`, `manifests` and the reader view `sessions` exist as in Glue
 * (and the pseudonymized copy's `sessions_pseudonymized_raw` and view `sessions_pseudonymized`),
 * over a local copy of `<dir>/<prefix>/` (see download-prefix.ts): the view is the stack's own SQL
 * (lambda/snapshot/reader-view.ts), so a local query reads snapshots exactly as Athena readers do.
 * A prefix with no files yet gives empty tables, not an error.
 */
export async function queryLocalSnapshots<T>(dir: string, prefix: string, sql: string): Promise<T[]> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const table = async (name: string, glob: string, columns: readonly AthenaColumn[]) => {
    try {
      await connection.run(`CREATE TABLE ${name} AS SELECT * FROM ${readNdjson(glob, columns)}`);
    } catch {
      // No file matched yet: an empty table of the same shape.
      const defs = columns.map((c) => `"${c.name}" ${duckType(c.type)}`).join(', ');
      await connection.run(`CREATE TABLE ${name} (${defs}, dt VARCHAR)`);
    }
  };
  try {
    await table(RAW_SESSIONS_TABLE, `${dir}/${prefix}/sessions/**/*.ndjson.gz`, sessionColumns);
    await table(MANIFESTS_TABLE, `${dir}/${prefix}/manifests/**/*.json`, manifestColumns);
    await connection.run(
      `CREATE VIEW sessions AS ${readerViewSql({ sessionsRaw: RAW_SESSIONS_TABLE, manifests: MANIFESTS_TABLE })}`,
    );
    await table(
      PSEUDONYMIZED_SESSIONS_TABLE,
      `${dir}/${prefix}/pseudonymized/sessions/**/*.ndjson.gz`,
      sessionColumns,
    );
    await connection.run(
      `CREATE VIEW ${PSEUDONYMIZED_VIEW_NAME} AS ${readerViewSql({ sessionsRaw: PSEUDONYMIZED_SESSIONS_TABLE, manifests: MANIFESTS_TABLE })}`,
    );
    const reader = await connection.runAndReadAll(sql);
    return reader.getRowObjectsJson() as unknown as T[];
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}
