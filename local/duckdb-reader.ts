import { DuckDBInstance } from '@duckdb/node-api';
import {
  DATA_FILE_SUFFIX,
  folderPrefix,
  MANIFEST_SUFFIX,
  MANIFESTS_FOLDER,
  PARTITION_KEY,
} from '../lambda/core/facts';
import {
  type AthenaColumn,
  type AthenaType,
  manifestColumns,
  sessionColumns,
} from '../lambda/snapshot/athena-columns';
import { CHANGES_VIEW_NAME, changeViewSql } from '../lambda/snapshot/change-view';
import {
  MANIFESTS_TABLE,
  PSEUDONYMIZED_SESSIONS_TABLE,
  PSEUDONYMIZED_VIEW_NAME,
  RAW_SESSIONS_TABLE,
  READER_VIEW_NAME,
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
    hive_partitioning = true, hive_types = {'${PARTITION_KEY}': 'VARCHAR'}, format = 'newline_delimited')`;
}

/**
 * DuckDB macros standing in for the Trino functions the named queries call, with Trino's
 * meaning for the arguments they pass: `date_format(date, '%Y-%m-%d')` (Trino's MySQL-style
 * format; DuckDB's strftime reads these three specifiers the same) and `from_unixtime(seconds)`.
 */
export const TRINO_FUNCTION_STAND_INS = [
  'CREATE MACRO date_format(d, f) AS strftime(d, f)',
  'CREATE MACRO from_unixtime(s) AS to_timestamp(s)',
] as const;

/**
 * Runs `sql` where `sessions_raw`, `manifests`, the reader view `sessions`, the change view
 * `session_changes` and the pseudonymized copy's `sessions_pseudonymized_raw` and view
 * `sessions_pseudonymized` exist as in Glue, over a local copy of `<dir>/<prefix>/` (see
 * download-prefix.ts): the views are the stack's own SQL (lambda/snapshot/reader-view.ts,
 * change-view.ts), so a local query reads snapshots exactly as Athena readers do. With
 * `database`, they live in a schema of that name (a named query's `"<db>"."sessions"` resolves)
 * and unqualified names still work. A prefix with no files yet gives empty tables, not an error.
 */
export async function queryLocalSnapshots<T>(
  dir: string,
  prefix: string,
  sql: string,
  options: { readonly database?: string } = {},
): Promise<T[]> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const schema = `"${options.database ?? 'main'}"`;
  const name = (relation: string) => `${schema}."${relation}"`;
  const table = async (relation: string, glob: string, columns: readonly AthenaColumn[]) => {
    try {
      await connection.run(`CREATE TABLE ${name(relation)} AS SELECT * FROM ${readNdjson(glob, columns)}`);
    } catch {
      // No file matched yet: an empty table of the same shape.
      const defs = columns.map((c) => `"${c.name}" ${duckType(c.type)}`).join(', ');
      await connection.run(`CREATE TABLE ${name(relation)} (${defs}, ${PARTITION_KEY} VARCHAR)`);
    }
  };
  try {
    for (const macro of TRINO_FUNCTION_STAND_INS) await connection.run(macro);
    if (options.database) await connection.run(`CREATE SCHEMA ${schema}`);
    await table(
      RAW_SESSIONS_TABLE,
      `${dir}/${folderPrefix(prefix, 'sessions')}**/*${DATA_FILE_SUFFIX}`,
      sessionColumns,
    );
    await table(
      MANIFESTS_TABLE,
      `${dir}/${folderPrefix(prefix, MANIFESTS_FOLDER)}**/*${MANIFEST_SUFFIX}`,
      manifestColumns,
    );
    await table(
      PSEUDONYMIZED_SESSIONS_TABLE,
      `${dir}/${folderPrefix(prefix, 'pseudonymized/sessions')}**/*${DATA_FILE_SUFFIX}`,
      sessionColumns,
    );
    await connection.run(
      `CREATE VIEW ${name(READER_VIEW_NAME)} AS ${readerViewSql({ sessionsRaw: name(RAW_SESSIONS_TABLE), manifests: name(MANIFESTS_TABLE) })}`,
    );
    await connection.run(
      `CREATE VIEW ${name(PSEUDONYMIZED_VIEW_NAME)} AS ${readerViewSql({ sessionsRaw: name(PSEUDONYMIZED_SESSIONS_TABLE), manifests: name(MANIFESTS_TABLE) })}`,
    );
    await connection.run(
      `CREATE VIEW ${name(CHANGES_VIEW_NAME)} AS ${changeViewSql({ sessions: name(READER_VIEW_NAME), manifests: name(MANIFESTS_TABLE) })}`,
    );
    if (options.database) await connection.run(`SET schema = '${options.database}'`);
    const reader = await connection.runAndReadAll(sql);
    return reader.getRowObjectsJson() as unknown as T[];
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}
