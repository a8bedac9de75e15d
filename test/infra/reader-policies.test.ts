/**
 * The audiences' IAM managed policies, read from the synthesized template: the analyst policy must
 * grant nothing on the raw copy (its objects, its Glue table or view, the raw workgroup or its
 * results), whatever the statement (an action on a matching resource, a list condition).
 */
import type { Template } from 'aws-cdk-lib/assertions';
import { ACCOUNT_ENV, STACK_NAME, synthStack } from '../helpers/synth-stack';

type Statement = {
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
};

/** A CloudFormation value as text: `<Logical.Attr>` for GetAtt, `<Logical>` for Ref, pseudo parameters filled in. */
function render(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  if ('Fn::Join' in v) {
    const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map(render).join(sep);
  }
  if ('Fn::GetAtt' in v) return `<${(v['Fn::GetAtt'] as string[]).join('.')}>`;
  if ('Ref' in v) {
    const ref = v.Ref as string;
    return (
      { 'AWS::Partition': 'aws', 'AWS::Region': ACCOUNT_ENV.region, 'AWS::AccountId': ACCOUNT_ENV.account }[
        ref
      ] ?? `<${ref}>`
    );
  }
  return JSON.stringify(value);
}

/** Whether an IAM resource pattern (`*` and `?` wildcards) matches `arn`. */
const matches = (pattern: string, arn: string) =>
  new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  ).test(arn);

function statementsOf(template: Template, descriptionIncludes: string): Statement[] {
  const policies = Object.values(template.findResources('AWS::IAM::ManagedPolicy')).filter((p) =>
    String(p.Properties.Description).includes(descriptionIncludes),
  );
  expect(policies).toHaveLength(1);
  return policies[0]?.Properties.PolicyDocument.Statement as Statement[];
}

const resourcesOf = (s: Statement) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]).map(render);
const listPrefixes = (s: Statement) =>
  (Object.values(s.Condition?.StringLike ?? {}).flat() as unknown[]).map(String);

describe('reader policies (copies=both)', () => {
  let template: Template;
  let bucket: string;
  let resultsBucket: string;
  let rawWorkGroup: string;
  let analystWorkGroup: string;
  let table: (name: string) => string;

  beforeAll(() => {
    template = synthStack({ createDemoUsersTable: true, copies: 'both', piiPolicy: 'analytics' });
    const buckets = Object.keys(template.findResources('AWS::S3::Bucket'));
    bucket = `<${buckets.find((id) => id.startsWith('ExportBucket')) ?? ''}.Arn>`;
    resultsBucket = `<${buckets.find((id) => id.includes('ResultsBucket')) ?? ''}.Arn>`;
    const database = Object.keys(template.findResources('AWS::Glue::Database'))[0] ?? '';
    table = (name) => `arn:aws:glue:eu-west-1:123456789012:table/<${database}>/${name}`;
    const workGroups = Object.keys(template.findResources('AWS::Athena::WorkGroup'));
    rawWorkGroup = workGroups.find((id) => !id.includes('Pseudonymized')) ?? '';
    analystWorkGroup = workGroups.find((id) => id.includes('Pseudonymized')) ?? '';
    expect([bucket, resultsBucket, rawWorkGroup, analystWorkGroup].every((x) => x.length > 3)).toBe(true);
  });

  const raw = () => ({
    objects: [
      `${bucket}/moonkey/sessions/dt=2026-11-26/scheduled-20261126T020000Z.r1.w000-00000.ndjson.gz`,
      `${bucket}/moonkey/rejects/dt=2026-11-26/scheduled-20261126T020000Z.r1.w000-00000.ndjson.gz`,
      `${resultsBucket}/results/3f1c.csv`,
    ],
    listPrefixes: ['moonkey/sessions/', 'moonkey/rejects/dt=2026-11-26/', 'results/', 'moonkey/'],
    glue: [table('sessions_raw'), table('sessions')],
    workGroup: `arn:aws:athena:eu-west-1:123456789012:workgroup/<${rawWorkGroup}>`,
  });

  it('the analyst policy grants nothing on the raw prefix, its table and view, or the raw workgroup and its results', () => {
    const statements = statementsOf(template, 'analyst audience');
    const r = raw();
    for (const statement of statements) {
      const resources = resourcesOf(statement);
      for (const arn of [...r.objects, ...r.glue, r.workGroup])
        expect({ sid: statement, arn, granted: resources.some((p) => matches(p, arn)) }).toMatchObject({
          granted: false,
        });
      for (const prefix of r.listPrefixes)
        expect({ prefix, granted: listPrefixes(statement).some((p) => matches(p, prefix)) }).toMatchObject({
          granted: false,
        });
    }
  });

  it('the analyst policy reads the pseudonymized copy, its table and view, the manifests and its own workgroup', () => {
    const statements = statementsOf(template, 'analyst audience');
    const all = statements.flatMap(resourcesOf);
    const granted = (arn: string) => all.some((p) => matches(p, arn));
    expect(granted(`${bucket}/moonkey/pseudonymized/sessions/dt=2026-11-26/x.ndjson.gz`)).toBe(true);
    expect(granted(`${bucket}/moonkey/manifests/dt=2026-11-26/x.json`)).toBe(true);
    expect(granted(table('sessions_pseudonymized'))).toBe(true);
    expect(granted(table('sessions_pseudonymized_raw'))).toBe(true);
    expect(granted(`arn:aws:athena:eu-west-1:123456789012:workgroup/<${analystWorkGroup}>`)).toBe(true);
    expect(granted(`${resultsBucket}/pseudonymized-results/q.csv`)).toBe(true);
  });

  it('the security policy reads the raw copy and its table', () => {
    const all = statementsOf(template, 'security audience').flatMap(resourcesOf);
    const r = raw();
    for (const arn of [r.objects[0] ?? '', r.glue[0] ?? '', r.workGroup])
      expect(all.some((p) => matches(p, arn))).toBe(true);
  });

  it('the two workgroups write their results under separate prefixes', () => {
    const locations = Object.values(template.findResources('AWS::Athena::WorkGroup')).map((w) =>
      render(w.Properties.WorkGroupConfiguration.ResultConfiguration.OutputLocation),
    );
    expect(locations.map((l) => l.replace(/^s3:\/\/<[^>]+>\//, '')).sort()).toEqual([
      'pseudonymized-results/',
      'results/',
    ]);
  });

  it('creates the HMAC key as a random secret under a customer-managed KMS key, readable by the function only', () => {
    const secrets = Object.values(template.findResources('AWS::SecretsManager::Secret')).filter((s) =>
      String(s.Properties.Description).startsWith('HMAC-SHA256'),
    );
    expect(secrets).toHaveLength(1);
    expect(secrets[0]?.Properties.GenerateSecretString).toMatchObject({ PasswordLength: 64 });
    expect(secrets[0]?.Properties.KmsKeyId).toBeDefined();
    const env = Object.values(template.findResources('AWS::Lambda::Function'))[0]?.Properties.Environment
      .Variables;
    expect(env).toMatchObject({
      EXPORT_COPIES: 'both',
      EXPORT_PII_POLICY: 'analytics',
      EXPORT_PII_KEY_SECRET_ARN: expect.anything(),
    });
    expect(JSON.stringify(template.toJSON().Outputs)).not.toContain('SecretString');
  });
});

describe('copies=raw', () => {
  it('creates no audience policy, key secret or pseudonymized catalog', () => {
    const template = synthStack({ createDemoUsersTable: true });
    expect(Object.keys(template.findResources('AWS::IAM::ManagedPolicy'))).toEqual([]);
    expect(Object.keys(template.findResources('AWS::Athena::WorkGroup'))).toHaveLength(1);
    expect(JSON.stringify(template.toJSON())).not.toContain('sessions_pseudonymized');
    expect(STACK_NAME).toBe('MoonKeySessionExport');
  });
});
