import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { CfnNamedQuery, CfnWorkGroup } from 'aws-cdk-lib/aws-athena';
import {
  ClassificationString,
  type Column,
  Database,
  DataFormat,
  InputFormat,
  OutputFormat,
  PartitionProjectionConfiguration,
  S3Table,
  S3TableStorage,
  Schema,
  SerializationLibrary,
  type Type,
} from 'aws-cdk-lib/aws-glue';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  type IBucket,
  ObjectOwnership,
} from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import {
  FIRST_PARTITION_DATE,
  type FileKind,
  folderPrefix,
  MANIFESTS_FOLDER,
  partitionFolder,
} from '../../lambda/core/facts';
import {
  type AthenaColumn,
  type AthenaType,
  manifestColumns,
  PARTITION_COLUMN,
  sessionColumns,
} from '../../lambda/snapshot/athena-columns';
import { CHANGES_VIEW_NAME, changeViewColumns, changeViewSql } from '../../lambda/snapshot/change-view';
import {
  MANIFESTS_TABLE,
  PSEUDONYMIZED_SESSIONS_TABLE,
  PSEUDONYMIZED_VIEW_NAME,
  RAW_SESSIONS_TABLE,
  READER_VIEW_NAME,
  readerViewColumns,
  readerViewSql,
} from '../../lambda/snapshot/reader-view';
import { acknowledgeGuard, BUCKET_GUARD_REASONS } from '../policy-checks';
import { NAMED_QUERIES } from './named-queries';
import { PrestoView } from './presto-view';

/**
 * NDJSON read with the Hive JSON SerDe (org.apache.hive.hcatalog.data.JsonSerDe). AWS's Athena
 * guide warns that the OpenX SerDe can return non-deterministic results (extra or missing rows,
 * unexpected NULLs) and points to the Hive SerDe; CDK's `DataFormat.JSON` still means OpenX.
 * Gzip is read by the text input format from the `.gz` extension.
 */
export const HIVE_JSON_NDJSON = new DataFormat({
  inputFormat: InputFormat.TEXT,
  outputFormat: OutputFormat.HIVE_IGNORE_KEY_TEXT,
  serializationLibrary: SerializationLibrary.HIVE_JSON,
  classificationString: ClassificationString.JSON,
});

export interface SessionsCatalogProps {
  readonly bucket: IBucket;
  /** The job's key prefix: session lines live under `<prefix>/sessions/`, manifests under `<prefix>/manifests/`. */
  readonly prefix: string;
  readonly accessLogsBucket: IBucket;
  /**
   * @default - the stack name in snake_case
   */
  readonly databaseName?: string;
  /**
   * @default 10 GiB
   */
  readonly bytesScannedCutoffPerQuery?: number;
  /**
   * Customer-managed KMS key of the Athena results (results bucket SSE-KMS, workgroup SSE_KMS).
   * @default - SSE-S3
   */
  readonly encryptionKey?: IKey;
  /**
   * First day partition projection enumerates. The job refuses scheduled slots before
   * FIRST_PARTITION_DATE (lambda/core/facts.ts), so a later date would hide snapshots the job still
   * writes; an earlier one only enumerates empty days. Refused when later than that date.
   * @default FIRST_PARTITION_DATE ('2024-01-01')
   */
  readonly firstPartitionDate?: string;
  /**
   * Also catalog the pseudonymized copy (`<prefix>/pseudonymized/sessions/`): its table, its view
   * `sessions_pseudonymized`, and an analyst workgroup with the same named queries over it.
   * @default false
   */
  readonly pseudonymized?: boolean;
}

/** Where each workgroup writes its results in the results bucket: apart, so access can be split. */
export const RAW_RESULTS_PREFIX = 'results/';
export const PSEUDONYMIZED_RESULTS_PREFIX = 'pseudonymized-results/';

function glueType(type: AthenaType): Type {
  switch (type.kind) {
    case 'primitive':
      return {
        string: Schema.STRING,
        bigint: Schema.BIG_INT,
        int: Schema.INTEGER,
        double: Schema.DOUBLE,
        boolean: Schema.BOOLEAN,
      }[type.name];
    case 'array':
      return Schema.array(glueType(type.element));
    case 'struct':
      return Schema.struct(type.fields.map(glueColumn));
  }
}

const glueColumn = (column: AthenaColumn): Column => ({ name: column.name, type: glueType(column.type) });

/**
 * The first day the tables project: FIRST_PARTITION_DATE unless a caller asks for an earlier one.
 * Later is refused: the job accepts scheduled slots from FIRST_PARTITION_DATE on, and their
 * snapshots would land in partitions the tables never enumerate.
 */
export function firstPartitionDate(configured: string | undefined): string {
  if (configured === undefined) return FIRST_PARTITION_DATE;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(configured) || Number.isNaN(Date.parse(configured))) {
    throw new Error(`firstPartitionDate "${configured}" must be a date like ${FIRST_PARTITION_DATE}`);
  }
  if (configured > FIRST_PARTITION_DATE) {
    throw new Error(
      `firstPartitionDate ${configured} is after ${FIRST_PARTITION_DATE}, the first day the job writes scheduled snapshots for: their partitions would be invisible to Athena`,
    );
  }
  return configured;
}

/** `MoonKeySessionExport` -> `moon_key_session_export`. */
export function snakeCase(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .toLowerCase();
}

/**
 * Makes snapshots queryable without DDL: a Glue database with the tables `sessions_raw` (every line
 * of every run; columns derived from the record schema) and `manifests`, both partitioned by `dt`
 * with date projection up to NOW, so a new day is queryable the moment its files land (no MSCK
 * REPAIR, no crawler), and the view `sessions` that readers query: only the lines of each
 * snapshot's newest committed run (lambda/snapshot/reader-view.ts). An Athena workgroup with its own
 * encrypted results bucket, enforced settings and a bytes-scanned cutoff, and named queries.
 */
export class SessionsCatalog extends Construct {
  readonly database: Database;
  readonly sessionsRawTable: S3Table;
  readonly manifestsTable: S3Table;
  readonly sessionsView: PrestoView;
  /** Sessions started and ended between consecutive committed scheduled snapshots. */
  readonly changesView: PrestoView;
  readonly workGroup: CfnWorkGroup;
  readonly resultsBucket: Bucket;
  /** The pseudonymized copy's table, view and workgroup; undefined unless `pseudonymized`. */
  readonly pseudonymizedTable: S3Table | undefined;
  readonly pseudonymizedView: PrestoView | undefined;
  readonly pseudonymizedWorkGroup: CfnWorkGroup | undefined;

  constructor(scope: Construct, id: string, props: SessionsCatalogProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const databaseName = props.databaseName ?? snakeCase(stack.stackName);
    const firstDay = firstPartitionDate(props.firstPartitionDate);

    this.database = new Database(this, 'Database', {
      databaseName,
      description: 'MoonKey session snapshots (gzip NDJSON written by the export function)',
    });
    // The catalog holds no data (the snapshots stay in S3): it goes with the stack, so a redeploy
    // after `cdk destroy` can create the same fixed database name again instead of colliding.
    this.database.applyRemovalPolicy(RemovalPolicy.DESTROY);
    const table = (
      id: string,
      tableName: string,
      kind: FileKind | typeof MANIFESTS_FOLDER,
      columns: readonly AthenaColumn[],
      gzip = kind === 'sessions',
    ) => {
      const created = new S3Table(this, id, {
        database: this.database,
        tableName,
        description: `MoonKey ${kind} under s3://${props.bucket.bucketName}/${folderPrefix(props.prefix, kind)}`,
        storage: S3TableStorage.fromBucket(props.bucket),
        s3Prefix: folderPrefix(props.prefix, kind),
        dataFormat: HIVE_JSON_NDJSON,
        columns: columns.map(glueColumn),
        partitionKeys: [glueColumn(PARTITION_COLUMN)],
        partitionProjection: {
          [PARTITION_COLUMN.name]: PartitionProjectionConfiguration.date({
            min: firstDay,
            max: 'NOW',
            format: 'yyyy-MM-dd',
          }),
        },
        compressed: gzip,
        hasEncryptedData: false,
        // The job writes Hive-style `dt=` folders; spelled out so nobody has to know Athena's default.
        parameters: {
          'storage.location.template': `s3://${props.bucket.bucketName}/${folderPrefix(props.prefix, kind)}${partitionFolder(`\${${PARTITION_COLUMN.name}}`)}`,
        },
      });
      created.applyRemovalPolicy(RemovalPolicy.DESTROY);
      return created;
    };
    this.sessionsRawTable = table('SessionsRawTable', RAW_SESSIONS_TABLE, 'sessions', sessionColumns);
    this.manifestsTable = table('ManifestsTable', MANIFESTS_TABLE, MANIFESTS_FOLDER, manifestColumns);
    const qualified = (name: string) => `"${databaseName}"."${name}"`;
    this.sessionsView = new PrestoView(this, 'SessionsView', {
      database: this.database,
      databaseName,
      viewName: READER_VIEW_NAME,
      description: `MoonKey sessions of committed snapshots: the lines of ${RAW_SESSIONS_TABLE} whose run is the newest committed run of their snapshot`,
      sql: readerViewSql({
        sessionsRaw: qualified(RAW_SESSIONS_TABLE),
        manifests: qualified(MANIFESTS_TABLE),
      }),
      columns: readerViewColumns,
    });
    this.sessionsView.table.applyRemovalPolicy(RemovalPolicy.DESTROY);
    this.sessionsView.node.addDependency(this.sessionsRawTable, this.manifestsTable);
    this.changesView = new PrestoView(this, 'ChangesView', {
      database: this.database,
      databaseName,
      viewName: CHANGES_VIEW_NAME,
      description: `MoonKey session changes: for each committed scheduled snapshot, the sessions started and ended since the committed scheduled snapshot before it (read through the view ${READER_VIEW_NAME})`,
      sql: changeViewSql({ sessions: qualified(READER_VIEW_NAME), manifests: qualified(MANIFESTS_TABLE) }),
      columns: changeViewColumns,
    });
    this.changesView.table.applyRemovalPolicy(RemovalPolicy.DESTROY);
    this.changesView.node.addDependency(this.sessionsView, this.manifestsTable);
    if (props.pseudonymized) {
      // Same columns as the raw copy: a token, a network and a dropped field (NULL) are all strings.
      this.pseudonymizedTable = table(
        'SessionsPseudonymizedTable',
        PSEUDONYMIZED_SESSIONS_TABLE,
        'pseudonymized/sessions',
        sessionColumns,
        true,
      );
      this.pseudonymizedView = new PrestoView(this, 'SessionsPseudonymizedView', {
        database: this.database,
        databaseName,
        viewName: PSEUDONYMIZED_VIEW_NAME,
        description: `MoonKey sessions of committed snapshots, pseudonymized: the lines of ${PSEUDONYMIZED_SESSIONS_TABLE} whose run is the newest committed run of their snapshot`,
        sql: readerViewSql({
          sessionsRaw: qualified(PSEUDONYMIZED_SESSIONS_TABLE),
          manifests: qualified(MANIFESTS_TABLE),
        }),
        columns: readerViewColumns,
      });
      this.pseudonymizedView.table.applyRemovalPolicy(RemovalPolicy.DESTROY);
      this.pseudonymizedView.node.addDependency(this.pseudonymizedTable, this.manifestsTable);
    }

    const key = props.encryptionKey;
    this.resultsBucket = new Bucket(this, 'ResultsBucket', {
      ...(key
        ? { encryption: BucketEncryption.KMS, encryptionKey: key, bucketKeyEnabled: true }
        : { encryption: BucketEncryption.S3_MANAGED }),
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      removalPolicy: RemovalPolicy.RETAIN,
      serverAccessLogsBucket: props.accessLogsBucket,
      serverAccessLogsPrefix: 'athena-results/',
      lifecycleRules: [
        { id: 'expire-query-results', expiration: Duration.days(30) },
        { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });

    acknowledgeGuard(this.resultsBucket, {
      ...BUCKET_GUARD_REASONS,
      s3_bucket_versioning_enabled_check:
        'Query results are disposable copies that expire after 30 days; versions of them are worth nothing.',
      ...(key
        ? {}
        : {
            s3_bucket_default_encryption_kms_check:
              'SSE-S3 unless the deployer sets encryptionKey (a customer-managed key, which then also needs grants for every Athena user).',
          }),
    });

    const workGroup = (id: string, name: string, description: string, resultsPrefix: string) => {
      const created = new CfnWorkGroup(this, id, {
        name,
        description,
        state: 'ENABLED',
        recursiveDeleteOption: true,
        workGroupConfiguration: {
          enforceWorkGroupConfiguration: true,
          publishCloudWatchMetricsEnabled: true,
          bytesScannedCutoffPerQuery: props.bytesScannedCutoffPerQuery ?? 10 * 1024 ** 3,
          engineVersion: { selectedEngineVersion: 'Athena engine version 3' },
          resultConfiguration: {
            outputLocation: `s3://${this.resultsBucket.bucketName}/${resultsPrefix}`,
            encryptionConfiguration: key
              ? { encryptionOption: 'SSE_KMS', kmsKey: key.keyArn }
              : { encryptionOption: 'SSE_S3' },
          },
        },
      });
      if (!key) {
        acknowledgeGuard(created, {
          athena_workgroup_results_encrypted_at_rest_kms_check:
            'Results are SSE-S3 unless the deployer sets encryptionKey; the workgroup enforces its encryption setting either way.',
        });
      }
      return created;
    };
    this.workGroup = workGroup(
      'WorkGroup',
      `${stack.stackName}-sessions`,
      'Queries over MoonKey session snapshots',
      RAW_RESULTS_PREFIX,
    );

    for (const query of NAMED_QUERIES) {
      const named = new CfnNamedQuery(this, query.id, {
        name: query.name,
        description: query.description,
        database: databaseName,
        workGroup: this.workGroup.ref,
        queryString: query.sql(databaseName),
      });
      named.node.addDependency(this.sessionsView, this.changesView, this.manifestsTable);
    }

    // Results of queries over the raw copy hold raw values: the analysts' workgroup writes its
    // results under its own prefix, which is all of the results bucket their policy reaches.
    if (this.pseudonymizedView) {
      const analysts = workGroup(
        'PseudonymizedWorkGroup',
        `${stack.stackName}-sessions-pseudonymized`,
        'Queries over the pseudonymized copy of MoonKey session snapshots',
        PSEUDONYMIZED_RESULTS_PREFIX,
      );
      this.pseudonymizedWorkGroup = analysts;
      for (const query of NAMED_QUERIES) {
        const named = new CfnNamedQuery(this, `Pseudonymized${query.id}`, {
          name: `${query.name} (pseudonymized)`,
          description: query.description,
          database: databaseName,
          workGroup: analysts.ref,
          queryString: query.sql(databaseName, PSEUDONYMIZED_VIEW_NAME),
        });
        named.node.addDependency(this.pseudonymizedView, this.manifestsTable);
      }
    }
  }
}
