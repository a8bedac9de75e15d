import { App } from 'aws-cdk-lib';
import { addPolicyChecks } from './policy-checks';
import { propsFromContext } from './props-from-context';
import { SessionExportStack } from './session-export-stack';

const app = new App();
new SessionExportStack(app, 'MoonKeySessionExport', {
  ...propsFromContext(app.node),
  description: 'MoonKey session snapshots: scheduled export to S3, Athena tables, alarms',
});
addPolicyChecks(app);
