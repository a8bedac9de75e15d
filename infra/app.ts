import { App } from 'aws-cdk-lib';
import { addPolicyChecks } from './policy-checks';
import { propsFromContext } from './props-from-context';
import { SessionExportStack } from './session-export-stack';
import { STACK_NAME } from './stack-outputs';

const app = new App();
new SessionExportStack(app, STACK_NAME, {
  ...propsFromContext(app.node),
  description: 'MoonKey session snapshots: scheduled export to S3, Athena tables, alarms',
});
addPolicyChecks(app);
