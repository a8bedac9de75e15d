import { Duration, Validations } from 'aws-cdk-lib';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { acknowledgeGuard } from '../policy-checks';

/**
 * Where runs that did not happen (or did not finish) wait for a person: events Scheduler could not
 * deliver (the message is the original event), and asynchronous invocations that failed or expired
 * in Lambda's queue (the message is Lambda's invocation record, the event under `requestPayload`).
 * `npm run replay` takes either and reruns the same snapshot slot (docs/operating.md: "Failure queue").
 */
export class FailureQueue extends Construct {
  readonly queue: Queue;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.queue = new Queue(this, 'Queue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.queue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue IS the dead-letter queue (of scheduled events Scheduler could not deliver to the launcher); nothing consumes it automatically, so a DLQ of its own would never receive anything.',
    });
    acknowledgeGuard(this.queue, {
      sqs_dlq_check:
        'This queue IS the dead-letter queue (Scheduler DLQ and Lambda on-failure destination); a DLQ of its own would never receive anything.',
    });
  }
}
