import { Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * The text cdk-nag prints for a resource in an IAM5 finding (`<Logical.Arn>/prefix/*`,
 * `arn:<AWS::Partition>:...`), so an acknowledgement names the exact wildcard it accepts
 * instead of silencing the whole rule on the construct.
 */
export function nagResourceText(scope: IConstruct, arn: string): string {
  return render(Stack.of(scope).resolve(arn));
}

function render(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value !== 'object' || value === null) return String(value);
  const v = value as Record<string, unknown>;
  if ('Fn::Join' in v) {
    const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map(render).join(sep);
  }
  if ('Fn::GetAtt' in v) return `<${(v['Fn::GetAtt'] as string[]).join('.')}>`;
  if ('Ref' in v) return `<${v.Ref as string}>`;
  return JSON.stringify(value);
}

/** `AwsSolutions-IAM5[Resource::<text>]` for one wildcard resource. */
export function iam5ResourceFinding(scope: IConstruct, arn: string): string {
  return `AwsSolutions-IAM5[Resource::${nagResourceText(scope, arn)}]`;
}
