import { Stack, Validations } from 'aws-cdk-lib';
import type { CfnWorkGroup } from 'aws-cdk-lib/aws-athena';
import { ManagedPolicy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import {
  MANIFESTS_TABLE,
  PSEUDONYMIZED_SESSIONS_TABLE,
  PSEUDONYMIZED_VIEW_NAME,
  RAW_SESSIONS_TABLE,
  READER_VIEW_NAME,
} from '../../lambda/snapshot/reader-view';
import { iam5ResourceFinding } from '../nag-finding';
import { PSEUDONYMIZED_RESULTS_PREFIX, RAW_RESULTS_PREFIX, type SessionsCatalog } from './sessions-catalog';

export interface ReaderPoliciesProps {
  readonly bucket: IBucket;
  readonly prefix: string;
  readonly catalog: SessionsCatalog;
  /** The snapshot bucket's KMS key, when it has one (reading needs kms:Decrypt through S3). */
  readonly bucketKey?: IKey;
  /** The data key the Athena results are encrypted with, when there is one. */
  readonly resultsKey?: IKey;
}

/** What one audience may read: its S3 prefixes, Glue tables and views, and one workgroup. */
interface Audience {
  readonly name: string;
  readonly description: string;
  readonly objectPrefixes: readonly string[];
  /** Glue tables and views, by name. */
  readonly tables: readonly string[];
  readonly workGroup: CfnWorkGroup;
  readonly resultsPrefix: string;
}

/**
 * One IAM managed policy per audience, for an operator to attach to their people's roles instead
 * of bucket-wide read:
 * - `analyst`: the pseudonymized copy and the manifests, the pseudonymized table and view, the
 *   analyst workgroup and its own results. Nothing of the raw copy, its table, or the raw
 *   workgroup's results (which hold raw values).
 * - `security`: everything under the prefix (raw sessions, rejects, failed users), every table,
 *   the raw workgroup and its results.
 * Created only when the stack writes a pseudonymized copy: with `raw` alone there is nothing to split.
 */
export class ReaderPolicies extends Construct {
  readonly analyst: ManagedPolicy;
  readonly security: ManagedPolicy;

  constructor(scope: Construct, id: string, props: ReaderPoliciesProps) {
    super(scope, id);
    const { catalog, prefix } = props;
    if (!catalog.pseudonymizedTable || !catalog.pseudonymizedView || !catalog.pseudonymizedWorkGroup) {
      throw new Error(
        'ReaderPolicies needs a catalog of the pseudonymized copy (SessionsCatalog pseudonymized: true)',
      );
    }
    this.analyst = this.policy(
      {
        name: 'Analyst',
        description: 'MoonKey session snapshots, analyst audience: the pseudonymized copy only',
        objectPrefixes: [`${prefix}/pseudonymized/`, `${prefix}/manifests/`],
        tables: [PSEUDONYMIZED_SESSIONS_TABLE, PSEUDONYMIZED_VIEW_NAME, MANIFESTS_TABLE],
        workGroup: catalog.pseudonymizedWorkGroup,
        resultsPrefix: PSEUDONYMIZED_RESULTS_PREFIX,
      },
      props,
    );
    this.security = this.policy(
      {
        name: 'Security',
        description:
          'MoonKey session snapshots, security audience: the raw copy (and everything else under the prefix)',
        objectPrefixes: [`${prefix}/`],
        tables: [
          RAW_SESSIONS_TABLE,
          READER_VIEW_NAME,
          MANIFESTS_TABLE,
          PSEUDONYMIZED_SESSIONS_TABLE,
          PSEUDONYMIZED_VIEW_NAME,
        ],
        workGroup: catalog.workGroup,
        resultsPrefix: RAW_RESULTS_PREFIX,
      },
      props,
    );
  }

  private policy(audience: Audience, props: ReaderPoliciesProps): ManagedPolicy {
    const stack = Stack.of(this);
    const { bucket } = props;
    const results = props.catalog.resultsBucket;
    const objectArns = audience.objectPrefixes.map((p) => bucket.arnForObjects(`${p}*`));
    const resultArn = results.arnForObjects(`${audience.resultsPrefix}*`);
    const database = props.catalog.database;
    const tableArn = (table: string) =>
      stack.formatArn({
        service: 'glue',
        resource: 'table',
        resourceName: `${database.databaseName}/${table}`,
      });
    const statements = [
      new PolicyStatement({ sid: 'ReadSnapshotObjects', actions: ['s3:GetObject'], resources: objectArns }),
      new PolicyStatement({
        sid: 'ListSnapshotPrefixes',
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': audience.objectPrefixes.map((p) => `${p}*`) } },
      }),
      new PolicyStatement({
        sid: 'LocateBuckets',
        actions: ['s3:GetBucketLocation'],
        resources: [bucket.bucketArn, results.bucketArn],
      }),
      new PolicyStatement({
        sid: 'Catalog',
        actions: ['glue:GetDatabase', 'glue:GetTable', 'glue:GetPartition', 'glue:GetPartitions'],
        resources: [
          stack.formatArn({ service: 'glue', resource: 'catalog' }),
          database.databaseArn,
          ...audience.tables.map(tableArn),
        ],
      }),
      new PolicyStatement({
        sid: 'WorkGroup',
        actions: [
          'athena:StartQueryExecution',
          'athena:StopQueryExecution',
          'athena:GetQueryExecution',
          'athena:GetQueryResults',
          'athena:GetWorkGroup',
          'athena:ListNamedQueries',
          'athena:GetNamedQuery',
          'athena:BatchGetNamedQuery',
        ],
        resources: [
          stack.formatArn({ service: 'athena', resource: 'workgroup', resourceName: audience.workGroup.ref }),
        ],
      }),
      new PolicyStatement({
        sid: 'QueryResults',
        actions: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'],
        resources: [resultArn],
      }),
      new PolicyStatement({
        sid: 'ListQueryResults',
        actions: ['s3:ListBucket'],
        resources: [results.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${audience.resultsPrefix}*`] } },
      }),
    ];
    const keys = [props.bucketKey, props.resultsKey].filter((k): k is IKey => k !== undefined);
    if (keys.length > 0)
      statements.push(
        new PolicyStatement({
          sid: 'DecryptThroughS3',
          actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
          resources: [...new Set(keys.map((k) => k.keyArn))],
          conditions: { StringEquals: { 'kms:ViaService': `s3.${stack.region}.amazonaws.com` } },
        }),
      );
    const policy = new ManagedPolicy(this, audience.name, { description: audience.description, statements });
    for (const arn of [...objectArns, resultArn])
      Validations.of(policy).acknowledge({
        id: iam5ResourceFinding(this, arn),
        reason:
          'Objects under one audience prefix: snapshot and query-result keys are chosen per run and per query.',
      });
    return policy;
  }
}
