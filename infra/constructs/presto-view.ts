import { Stack, Token } from 'aws-cdk-lib';
import { CfnTable, type IDatabase } from 'aws-cdk-lib/aws-glue';
import { Construct } from 'constructs';
import { type AthenaColumn, hiveType, prestoType } from '../../lambda/snapshot/athena-columns';

/** Athena's catalog name for the Glue Data Catalog, as Athena writes it into the views it creates. */
export const ATHENA_CATALOG = 'awsdatacatalog';
const VIEW_PREFIX = '/* Presto View: ';
const VIEW_SUFFIX = ' */';
/** What Trino (HiveMetadata.PRESTO_VIEW_EXPANDED_TEXT_MARKER) and Athena store as a view's expanded text. */
export const PRESTO_VIEW_EXPANDED_TEXT = '/* Presto View */';
/** The SerDe a view's storage descriptor names: Hive's default (LazySimpleSerDe). */
export const VIEW_SERDE = 'org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe';

/**
 * The JSON inside a Presto view: Trino's ConnectorViewDefinition. `runAsInvoker` and `path` are
 * written because newer Trino releases require `path` when they decode a view (older ones ignore
 * unknown fields); Athena's own views name the catalog `awsdatacatalog`.
 */
export interface PrestoViewDefinition {
  readonly originalSql: string;
  readonly catalog: string;
  readonly schema: string;
  readonly columns: readonly { readonly name: string; readonly type: string }[];
  readonly runAsInvoker: boolean;
  readonly path: readonly unknown[];
}

/** `/* Presto View: <base64 of the JSON> *\/`, the ViewOriginalText Trino and Athena read. */
export function encodePrestoView(definition: PrestoViewDefinition): string {
  return `${VIEW_PREFIX}${Buffer.from(JSON.stringify(definition), 'utf8').toString('base64')}${VIEW_SUFFIX}`;
}

/** The inverse of `encodePrestoView` (tests read the synthesized view back with it). */
export function decodePrestoView(text: string): PrestoViewDefinition {
  if (!text.startsWith(VIEW_PREFIX) || !text.endsWith(VIEW_SUFFIX)) {
    throw new Error(`not a Presto view text: ${text.slice(0, 40)}`);
  }
  const encoded = text.slice(VIEW_PREFIX.length, text.length - VIEW_SUFFIX.length);
  return JSON.parse(Buffer.from(encoded, 'base64').toString('utf8')) as PrestoViewDefinition;
}

export interface PrestoViewProps {
  readonly database: IDatabase;
  /** The database name as a plain string: it goes into the base64 definition, which cannot hold a token. */
  readonly databaseName: string;
  readonly viewName: string;
  readonly description: string;
  /** The view's SELECT (no `CREATE VIEW`), in Trino SQL. */
  readonly sql: string;
  /** The columns the SELECT returns, in order. */
  readonly columns: readonly AthenaColumn[];
}

/**
 * An Athena view declared in Glue without running DDL, encoded the way Athena and Trino store the
 * views they create: TableType VIRTUAL_VIEW, the definition base64-encoded in ViewOriginalText,
 * the `/* Presto View *\/` marker as ViewExpandedText, and the `presto_view=true` parameter. Glue
 * keeps the columns in Hive spelling (what the console and other Glue readers show); the definition
 * carries them in Presto spelling (what Athena checks the SELECT's result against).
 */
export class PrestoView extends Construct {
  readonly table: CfnTable;
  readonly definition: PrestoViewDefinition;

  constructor(scope: Construct, id: string, props: PrestoViewProps) {
    super(scope, id);
    if (Token.isUnresolved(props.databaseName)) {
      throw new Error('PrestoView needs the database name as a plain string (it is encoded into the view)');
    }
    this.definition = {
      originalSql: props.sql,
      catalog: ATHENA_CATALOG,
      schema: props.databaseName,
      columns: props.columns.map((c) => ({ name: c.name, type: prestoType(c.type) })),
      runAsInvoker: false,
      path: [],
    };
    this.table = new CfnTable(this, 'View', {
      catalogId: Stack.of(this).account,
      databaseName: props.database.databaseName,
      tableInput: {
        name: props.viewName,
        description: props.description,
        tableType: 'VIRTUAL_VIEW',
        parameters: { presto_view: 'true', comment: 'Presto View' },
        viewOriginalText: encodePrestoView(this.definition),
        viewExpandedText: PRESTO_VIEW_EXPANDED_TEXT,
        partitionKeys: [],
        storageDescriptor: {
          columns: props.columns.map((c) => ({ name: c.name, type: hiveType(c.type) })),
          // Never read (a view has no files), but it must be there: Athena fails a storage
          // descriptor without SerDe info with HIVE_METASTORE_ERROR, and an empty `{}` is what a
          // provisioner may drop before the Glue call. Hive's default SerDe names a real class, so
          // Glue readers that load or print the library see nothing odd.
          serdeInfo: { serializationLibrary: VIEW_SERDE },
        },
      },
    });
    // The database name is a plain string here, not a reference: order the creation explicitly.
    this.table.node.addDependency(props.database);
  }
}
