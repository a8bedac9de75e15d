import { z } from 'zod';
import { PARTITION_KEY } from '../core/facts';
import { exportedSessionRecordSchema } from '../moonkey/session-record';
import type { Manifest } from './manifest';

/**
 * The Glue/Athena columns of the two tables the stack declares, as plain data: no CDK here, so the
 * stack, the DuckDB test and anyone writing DDL by hand all read the same list.
 *
 * The sessions columns are DERIVED from `exportedSessionRecordSchema` (via zod's JSON Schema
 * output), never restated: add a field to the record schema and it becomes a column. JSON Schema
 * `integer` (our epoch seconds) becomes `bigint`, objects become `struct<...>`, arrays `array<...>`.
 * Optional fields are ordinary columns (NULL when absent); keys MoonKey adds later that the schema
 * does not name are kept in the NDJSON but ignored by the Hive JSON SerDe until the schema names them.
 */
export type AthenaPrimitive = 'string' | 'bigint' | 'int' | 'double' | 'boolean';

export type AthenaType =
  | { readonly kind: 'primitive'; readonly name: AthenaPrimitive }
  | { readonly kind: 'array'; readonly element: AthenaType }
  | { readonly kind: 'struct'; readonly fields: readonly AthenaColumn[] };

export interface AthenaColumn {
  readonly name: string;
  readonly type: AthenaType;
}

/** The partition column of both tables: the `dt=YYYY-MM-DD` path segment (UTC date of the snapshot). */
export const PARTITION_COLUMN: AthenaColumn = {
  name: PARTITION_KEY,
  type: { kind: 'primitive', name: 'string' },
};

/** Hive/Glue type text, e.g. `array<struct<type:string,method:struct<...>>>`. */
export function hiveType(type: AthenaType): string {
  switch (type.kind) {
    case 'primitive':
      return type.name;
    case 'array':
      return `array<${hiveType(type.element)}>`;
    case 'struct':
      return `struct<${type.fields.map((f) => `${f.name}:${hiveType(f.type)}`).join(',')}>`;
  }
}

/**
 * Presto/Trino type text, e.g. `array(row(type varchar,method row(...)))`: the spelling of a view's
 * column types in its Presto view definition (Glue keeps the Hive spelling, `hiveType`, beside it).
 * Field names are bare: every name passed COLUMN_NAME below, and none is a Trino reserved word
 * (test/unit/snapshot/athena-columns.test.ts checks the list).
 */
export function prestoType(type: AthenaType): string {
  switch (type.kind) {
    case 'primitive':
      return { string: 'varchar', bigint: 'bigint', int: 'integer', double: 'double', boolean: 'boolean' }[
        type.name
      ];
    case 'array':
      return `array(${prestoType(type.element)})`;
    case 'struct':
      return `row(${type.fields.map((f) => `${f.name} ${prestoType(f.type)}`).join(',')})`;
  }
}

/** The subset of JSON Schema that zod emits for our record schema. */
interface JsonSchemaNode {
  readonly type?: string | readonly string[];
  readonly properties?: Readonly<Record<string, JsonSchemaNode>>;
  readonly items?: JsonSchemaNode;
}

/** A Hive identifier: Athena/Glue column and struct field names must be lower-case words. */
const COLUMN_NAME = /^[a-z_][a-z0-9_]*$/;

function typeFromJsonSchema(node: JsonSchemaNode, path: string): AthenaType {
  const types = (Array.isArray(node.type) ? node.type : [node.type]).filter((t) => t !== 'null');
  const [only] = types;
  if (types.length !== 1 || only === undefined) {
    throw new Error(`Cannot map ${path} to an Athena column: JSON Schema type ${JSON.stringify(node.type)}`);
  }
  switch (only) {
    case 'string':
      return { kind: 'primitive', name: 'string' };
    case 'integer':
      return { kind: 'primitive', name: 'bigint' };
    case 'number':
      return { kind: 'primitive', name: 'double' };
    case 'boolean':
      return { kind: 'primitive', name: 'boolean' };
    case 'array':
      if (!node.items) throw new Error(`Cannot map ${path} to an Athena column: array without items`);
      return { kind: 'array', element: typeFromJsonSchema(node.items, `${path}[]`) };
    case 'object':
      return { kind: 'struct', fields: columnsFromJsonSchema(node, path) };
    default:
      throw new Error(`Cannot map ${path} to an Athena column: JSON Schema type "${only}"`);
  }
}

function columnsFromJsonSchema(node: JsonSchemaNode, path: string): AthenaColumn[] {
  return Object.entries(node.properties ?? {}).map(([name, child]) => {
    const childPath = path ? `${path}.${name}` : name;
    if (!COLUMN_NAME.test(name)) {
      throw new Error(`Field ${childPath} is not a valid Athena column name (lower-case letters, digits, _)`);
    }
    return { name, type: typeFromJsonSchema(child, childPath) };
  });
}

/** Derives the columns of any zod object schema (what `sessionColumns` is made of). */
export function athenaColumnsOf(schema: z.ZodType): AthenaColumn[] {
  const json = z.toJSONSchema(schema, { io: 'output', unrepresentable: 'throw' }) as JsonSchemaNode;
  return columnsFromJsonSchema(json, '');
}

/** Columns of the sessions table, in record order: one per field of an exported NDJSON line. */
export const sessionColumns: readonly AthenaColumn[] = athenaColumnsOf(exportedSessionRecordSchema);

const str: AthenaType = { kind: 'primitive', name: 'string' };
const big: AthenaType = { kind: 'primitive', name: 'bigint' };
const struct = (fields: Record<string, AthenaType>): AthenaType => ({
  kind: 'struct',
  fields: Object.entries(fields).map(([name, type]) => ({ name, type })),
});
const fileList: AthenaType = { kind: 'array', element: struct({ key: str, bytes: big, records: big }) };

/**
 * Manifest fields that are not columns, and why. `satisfies` below makes tsc fail when
 * `Manifest` gains a field that is neither a column nor listed here.
 */
export const MANIFEST_FIELDS_WITHOUT_COLUMN = {
  dt: 'it is the partition column (same value as the dt= path segment); Hive forbids a data column of the same name',
  settings:
    'free-form (nested objects of varying shape); read the JSON file itself for the effective settings',
} as const satisfies Partial<Record<keyof Manifest, string>>;

type ManifestColumnTypes = {
  readonly [K in Exclude<keyof Manifest, keyof typeof MANIFEST_FIELDS_WITHOUT_COLUMN>]: AthenaType;
};

/**
 * The manifest is a TypeScript interface (lambda/snapshot/manifest.ts), not a zod schema, so its columns
 * are listed here, checked against that interface by the compiler.
 */
const manifestColumnTypes = {
  manifest_version: { kind: 'primitive', name: 'int' },
  snapshot_id: str,
  run_id: str,
  trigger: str,
  reason: str,
  status: str,
  error: struct({ type: str, message: str, step: str }),
  superseded_by: str,
  snapshot_at: big,
  started_at: str,
  finished_at: str,
  duration_ms: big,
  table_location: str,
  counts: struct({
    users_scanned: big,
    users_unusable: big,
    users_processed: big,
    users_with_sessions: big,
    users_not_found: big,
    sessions_exported: big,
    users_failed: big,
    items_rejected: big,
    requests: big,
    retries: big,
  }),
  files: struct({
    sessions: fileList,
    rejects: fileList,
    failed_users: fileList,
    pseudonymized_sessions: fileList,
    pseudonymized_rejects: fileList,
  }),
  failed_users: { kind: 'array', element: struct({ user_id: str, error: str, error_type: str }) },
  failed_users_truncated: { kind: 'primitive', name: 'boolean' },
  pii: struct({ copies: str, policy: str, key_fingerprint: str }),
} as const satisfies ManifestColumnTypes;

/** Columns of the manifests table (one row per manifest file). */
export const manifestColumns: readonly AthenaColumn[] = Object.entries(manifestColumnTypes).map(
  ([name, type]) => ({ name, type }),
);
