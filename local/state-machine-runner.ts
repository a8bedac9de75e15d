import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';
import { FUNCTION_TIMEOUT_MS } from '../lambda/core/facts';
import type { StateMachineDefinitions } from './state-machine-definitions';

/** The deployed function's entry point, as the runner calls it: one phase per call. */
export type PhaseHandler = (event: unknown, context: Context) => Promise<unknown>;

/** One invocation of the function by a Task state, as a fault injector sees it. */
export interface PhaseCall {
  /** The Task state's name: Plan, Work, Commit or Abort. */
  readonly state: string;
  /** 1-based count of this state's invocations in this execution, retries included. */
  readonly count: number;
  /** The payload the function receives. */
  readonly payload: unknown;
}

/**
 * A failure Step Functions would see instead of the function's result. `at: 'before'` fails the
 * invocation before the handler runs (a Lambda service error); `at: 'after'` runs the handler
 * to the end and then loses its result (the function died or the response was lost), so the
 * retry repeats work whose side effects already happened.
 */
export interface InjectedFault {
  /** The error name Step Functions reports, e.g. `Lambda.ServiceException`, `Sandbox.Timedout`. */
  readonly error: string;
  readonly at: 'before' | 'after';
}

export interface LocalExecutionOptions {
  /** Remaining time each Work invocation starts with (Lambda's is 15 minutes). @default 2000 */
  readonly workBudgetMs?: number;
  /** Remaining time of the other phases. @default FUNCTION_TIMEOUT_MS (Lambda's 15 minutes) */
  readonly phaseBudgetMs?: number;
  /**
   * Decides, per invocation, whether to inject a fault instead of the handler's own outcome.
   * ListExecutions calls are asked too (state ListRunningExecutions or ListMoreRunningExecutions,
   * payload the call's parameters): a fault there fails the call, `at` makes no difference.
   */
  readonly faults?: (call: PhaseCall) => InjectedFault | undefined;
  /**
   * The most executions one ListExecutions page holds, below the call's MaxResults: AWS may
   * return fewer than asked for. @default MaxResults
   */
  readonly listPageSize?: number;
  /**
   * Told about every invocation as it finishes (progress printing, tests that look at S3 after
   * each step); the execution waits for a returned promise.
   */
  readonly onPhase?: (call: PhaseCall & { result?: unknown; error?: string }) => void | Promise<void>;
}

/** An event as EventBridge delivers it to a rule's target, with the bus it was put on. */
export interface PublishedEvent {
  /** The entry's EventBusName: the bus's name or ARN, as the definition gives it. */
  readonly eventBusName: string;
  readonly event: {
    readonly version: '0';
    readonly id: string;
    readonly 'detail-type': string;
    readonly source: string;
    readonly account: string;
    readonly time: string;
    readonly region: string;
    readonly resources: readonly string[];
    readonly detail: unknown;
  };
}

/** One PutMetricData call a state made. */
export interface PutMetricDataCall {
  readonly state: string;
  readonly namespace: string;
  readonly metricData: readonly {
    readonly MetricName: string;
    readonly Dimensions?: readonly { readonly Name: string; readonly Value: string }[];
    readonly Value: number;
    readonly Unit?: string;
  }[];
}

const PUT_EVENTS_RESOURCE = 'arn:aws:states:::events:putEvents';
const PUT_METRIC_DATA_RESOURCE = 'arn:aws:states:::aws-sdk:cloudwatch:putMetricData';

/** How an execution ended, in DescribeExecution's terms. */
export interface LocalExecution {
  readonly name: string;
  readonly status: 'SUCCEEDED' | 'FAILED';
  readonly output?: unknown;
  readonly error?: { Error: string; Cause: string };
  /** Invocations per Task state, retries included. */
  readonly calls: Readonly<Record<string, number>>;
  /** Names of the states entered, in order (Map iterations interleaved). */
  readonly states: readonly string[];
  /** Events the execution's PutEvents states delivered (a failed PutEvents delivers none). */
  readonly events: readonly PublishedEvent[];
  /** Metric data the execution's own PutMetricData states put (not the function's EMF lines). */
  readonly metricData: readonly PutMetricDataCall[];
}

/** What a Standard state machine says when a name was already used (see StartExecution). */
export class ExecutionAlreadyExistsError extends Error {
  override readonly name = 'ExecutionAlreadyExistsError';
}

interface Registered {
  readonly input: string;
  readonly startDate: number;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED';
  readonly done: Promise<LocalExecution>;
}

/** ListExecutions' NextToken here: where the next page starts in the list as it is then. */
const pageToken = (offset: number) => Buffer.from(JSON.stringify({ offset }), 'utf8').toString('base64');
const tokenOffset = (token: string): number => {
  const offset = (JSON.parse(Buffer.from(token, 'base64').toString('utf8')) as { offset?: unknown }).offset;
  if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0) {
    throw lambdaStyleError('Sfn.InvalidTokenException', `Invalid Token: '${token}'`);
  }
  return offset;
};

/**
 * Step Functions in this process: runs the export and launcher definitions synthesized from the
 * real stack with `aws-local-stepfunctions`, with every Task that invokes the function handed to
 * the real phase handler (a fake Lambda context whose remaining time starts at a chosen budget),
 * ListExecutions and StartExecution answered from this object's own registry of executions, with
 * Standard workflows' naming rules. Retry waits and Wait states are shortened; the Abort Task
 * first waits for the invocations still running, which is what WaitForStragglers guarantees in AWS.
 *
 * Where the interpreter (3.0.0) differs from AWS, and how the definition stays clear of it:
 * `ResultPath: "$"` sets a key named "$" (the definition omits it: "$" is the default);
 * `States.StringSplit` splits on the whole separator, AWS on each of its characters (the launcher
 * splits on single characters); inside a Map iteration `$$.Execution.Input` is the item and
 * `$$.Execution.StartTime` the iteration's start (the definition reads neither there); errors
 * are matched by the thrown error's `name`, so a function error is rethrown with its type as the
 * name and Lambda's error document as the message, as Step Functions reports them.
 */
export class LocalStepFunctions {
  private readonly executions = new Map<string, Registered>();
  private readonly clock: () => number;

  constructor(
    private readonly definitions: StateMachineDefinitions,
    private readonly handler: PhaseHandler,
    private readonly options: LocalExecutionOptions = {},
  ) {
    let last = 0;
    // Strictly increasing start times, so "the oldest running execution" is never a tie.
    this.clock = () => {
      last = Math.max(Date.now(), last + 1);
      return last;
    };
  }

  /**
   * StartExecution of the export state machine: same name and input as a running execution
   * returns that execution; a name already used otherwise is refused.
   */
  startExecution(name: string, input: unknown, options: LocalExecutionOptions = {}): Promise<LocalExecution> {
    const text = JSON.stringify(input);
    const existing = this.executions.get(name);
    if (existing) {
      if (existing.status === 'RUNNING' && existing.input === text) return existing.done;
      throw new ExecutionAlreadyExistsError(`Execution Already Exists: '${name}'`);
    }
    const startDate = this.clock();
    const entry: Registered = {
      input: text,
      startDate,
      status: 'RUNNING',
      done: this.run(name, input, { ...this.options, ...options }).then((execution) => {
        entry.status = execution.status;
        return execution;
      }),
    };
    this.executions.set(name, entry);
    return entry.done;
  }

  /**
   * What Scheduler does for a slot: start the launcher with the "Scheduled Event". Resolves to
   * the launcher's own outcome; the export execution it started (if any) is `execution(name)`.
   */
  async launchScheduledSlot(scheduledTime: string): Promise<LocalExecution> {
    const event = {
      'detail-type': 'Scheduled Event',
      source: 'aws.scheduler',
      time: scheduledTime,
      resources: ['arn:aws:scheduler:local-1:000000000000:schedule/default/local'],
      detail: {},
    };
    return this.runLauncher(`launch-${randomUUID()}`, event);
  }

  /** A started export execution by name (resolves when it ends). */
  execution(name: string): Promise<LocalExecution> | undefined {
    return this.executions.get(name)?.done;
  }

  /** Names of every export execution started so far. */
  executionNames(): string[] {
    return [...this.executions.keys()];
  }

  /**
   * Registers an execution that ListExecutions reports as RUNNING (started now, so newer than
   * every one before it) but whose states run elsewhere: many running executions without running
   * them all here. Returns the function that ends it.
   */
  runningElsewhere(name: string): () => void {
    if (this.executions.has(name))
      throw new ExecutionAlreadyExistsError(`Execution Already Exists: '${name}'`);
    let end!: () => void;
    const done = new Promise<LocalExecution>((resolve) => {
      end = () => {
        entry.status = 'SUCCEEDED';
        resolve({ name, status: 'SUCCEEDED', calls: {}, states: [], events: [], metricData: [] });
      };
    });
    const entry: Registered = { input: '{}', startDate: this.clock(), status: 'RUNNING', done };
    this.executions.set(name, entry);
    return end;
  }

  /**
   * ListExecutions with StatusFilter RUNNING, as AWS answers it: newest first, at most
   * MaxResults (default 100, at most 1000) per page, and a NextToken while the page is full, so
   * a page may be the last one yet followed by an empty page. Each page is cut from the list as
   * it is when asked, like any read of a list that changes between pages.
   */
  private listRunning(params: unknown, pageSize: number | undefined) {
    const { MaxResults, NextToken, StatusFilter } = params as {
      MaxResults?: number;
      NextToken?: string;
      StatusFilter?: string;
    };
    if (StatusFilter !== 'RUNNING')
      throw new Error(`ListExecutions without StatusFilter RUNNING: ${StatusFilter}`);
    const limit = Math.min(MaxResults || 100, 1000, pageSize ?? Number.POSITIVE_INFINITY);
    const offset = NextToken === undefined ? 0 : tokenOffset(NextToken);
    const running = [...this.executions.entries()]
      .filter(([, e]) => e.status === 'RUNNING')
      .sort(([, a], [, b]) => b.startDate - a.startDate);
    const page = running.slice(offset, offset + limit);
    return {
      Executions: page.map(([n, e]) => ({
        ExecutionArn: `${this.definitions.exportArn.replace(':stateMachine:', ':execution:')}:${n}`,
        StateMachineArn: this.definitions.exportArn,
        Name: n,
        Status: 'RUNNING',
        StartDate: new Date(e.startDate).toISOString(),
      })),
      ...(page.length === limit ? { NextToken: pageToken(offset + limit) } : {}),
    };
  }

  private async runLauncher(name: string, input: unknown): Promise<LocalExecution> {
    const calls: Record<string, number> = {};
    const handlers = {
      StartRun: async (params: unknown) => {
        calls.StartRun = (calls.StartRun ?? 0) + 1;
        const { Name, Input } = params as { Name: string; Input: unknown; StateMachineArn: string };
        try {
          // Started, not awaited (StartExecution returns at once); `execution(name)` follows it.
          this.startExecution(Name, Input).catch(() => undefined);
        } catch (error) {
          if (error instanceof ExecutionAlreadyExistsError) {
            throw lambdaStyleError('StepFunctions.ExecutionAlreadyExistsException', error.message);
          }
          throw error;
        }
        return {
          ExecutionArn: `${this.definitions.exportArn.replace(':stateMachine:', ':execution:')}:${Name}`,
          StartDate: new Date().toISOString(),
        };
      },
    };
    return this.execute(this.definitions.launcher, name, input, handlers, calls, {
      events: [],
      metricData: [],
    });
  }

  private async run(name: string, input: unknown, options: LocalExecutionOptions): Promise<LocalExecution> {
    const calls: Record<string, number> = {};
    const inFlight = new Set<Promise<unknown>>();
    const lambda = (state: string, budgetMs: number) => async (params: unknown) => {
      const { FunctionName, Payload } = params as { FunctionName: string; Payload: unknown };
      if (FunctionName !== this.definitions.functionArn) {
        throw new Error(`${state} invokes ${FunctionName}, not the export function`);
      }
      if (state === 'Abort') await Promise.allSettled([...inFlight]);
      calls[state] = (calls[state] ?? 0) + 1;
      const call: PhaseCall = { state, count: calls[state], payload: Payload };
      const fault = options.faults?.(call);
      const invocation = (async () => {
        if (fault?.at === 'before') throw lambdaStyleError(fault.error, 'injected before the handler ran');
        let result: unknown;
        try {
          result = await this.handler(structuredClone(Payload), fakeLambdaContext(budgetMs));
        } catch (error) {
          // How Step Functions reports a function error: the error type as Error, the Lambda
          // error document as Cause.
          const e = error instanceof Error ? error : new Error(String(error));
          throw lambdaStyleError(
            e.name,
            JSON.stringify({ errorType: e.name, errorMessage: e.message, trace: [] }),
          );
        }
        if (fault?.at === 'after') throw lambdaStyleError(fault.error, 'injected after the handler ran');
        // Lambda's response is JSON: what the handler returns goes through a round trip.
        return {
          StatusCode: 200,
          ExecutedVersion: '$LATEST',
          Payload: JSON.parse(JSON.stringify(result ?? null)),
        };
      })();
      inFlight.add(invocation);
      try {
        const response = await invocation;
        await options.onPhase?.({ ...call, result: response.Payload });
        return response;
      } catch (error) {
        await options.onPhase?.({ ...call, error: (error as Error).name });
        throw error;
      } finally {
        inFlight.delete(invocation);
      }
    };
    const listExecutions = (state: string) => async (params: unknown) => {
      calls[state] = (calls[state] ?? 0) + 1;
      const fault = options.faults?.({ state, count: calls[state], payload: params });
      if (fault) throw lambdaStyleError(fault.error, 'injected into ListExecutions');
      return this.listRunning(params, options.listPageSize);
    };
    const published = { events: [] as PublishedEvent[], metricData: [] as PutMetricDataCall[] };
    const executionArn = `${this.definitions.exportArn.replace(':stateMachine:', ':execution:')}:${name}`;
    const faultOf = (state: string, payload: unknown) => {
      calls[state] = (calls[state] ?? 0) + 1;
      return options.faults?.({ state, count: calls[state], payload });
    };
    // What Step Functions' EventBridge integration does: Detail sent as JSON text, the execution
    // and state machine ARNs appended to Resources, and a failed entry failing the Task with
    // EventBridge.FailedEntry (the fault injected here stands for any failure of the call).
    const putEvents = (state: string) => async (params: unknown) => {
      const { Entries } = params as {
        Entries: {
          Detail: unknown;
          DetailType: string;
          Source: string;
          EventBusName: string;
          Resources?: string[];
        }[];
      };
      const fault = faultOf(state, params);
      if (fault) throw lambdaStyleError(fault.error, 'injected into PutEvents');
      const time = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
      const entries = Entries.map((entry) => ({
        eventBusName: entry.EventBusName,
        event: {
          version: '0' as const,
          id: randomUUID(),
          'detail-type': entry.DetailType,
          source: entry.Source,
          account: '000000000000',
          time,
          region: 'local-1',
          resources: [...(entry.Resources ?? []), executionArn, this.definitions.exportArn],
          detail: JSON.parse(typeof entry.Detail === 'string' ? entry.Detail : JSON.stringify(entry.Detail)),
        },
      }));
      published.events.push(...entries);
      return { Entries: entries.map((e) => ({ EventId: e.event.id })), FailedEntryCount: 0 };
    };
    const putMetricData = (state: string) => async (params: unknown) => {
      const fault = faultOf(state, params);
      if (fault) throw lambdaStyleError(fault.error, 'injected into PutMetricData');
      const { Namespace, MetricData } = params as {
        Namespace: string;
        MetricData: PutMetricDataCall['metricData'];
      };
      published.metricData.push({ state, namespace: Namespace, metricData: MetricData });
      return {};
    };
    const byResource = (resource: string, handler: (state: string) => (params: unknown) => unknown) =>
      Object.fromEntries(
        Object.entries(this.definitions.export.States)
          .filter(([, state]) => state.Type === 'Task' && state.Resource === resource)
          .map(([state]) => [state, handler(state)]),
      );
    const work = options.workBudgetMs ?? 2_000;
    const phase = options.phaseBudgetMs ?? FUNCTION_TIMEOUT_MS;
    const handlers = {
      Plan: lambda('Plan', phase),
      Work: lambda('Work', work),
      Commit: lambda('Commit', phase),
      Abort: lambda('Abort', phase),
      ListRunningExecutions: listExecutions('ListRunningExecutions'),
      ListMoreRunningExecutions: listExecutions('ListMoreRunningExecutions'),
      ...byResource(PUT_EVENTS_RESOURCE, putEvents),
      ...byResource(PUT_METRIC_DATA_RESOURCE, putMetricData),
    };
    return this.execute(this.definitions.export, name, input, handlers, calls, published);
  }

  private async execute(
    definition: StateMachineDefinitions['export'],
    name: string,
    input: unknown,
    handlers: Record<string, (input: unknown) => unknown>,
    calls: Record<string, number>,
    published: Pick<LocalExecution, 'events' | 'metricData'>,
  ): Promise<LocalExecution> {
    const { StateMachine, ExecutionError } = await import('aws-local-stepfunctions');
    const machine = new StateMachine(definition as never, {
      validationOptions: { checkArn: false, checkPaths: false },
    });
    const stateMachineArn =
      definition === this.definitions.export
        ? this.definitions.exportArn
        : `${this.definitions.exportArn}-launcher`;
    const noWait = Object.fromEntries(Object.keys(handlers).map((state) => [state, 0]));
    const execution = machine.run(input as never, {
      overrides: {
        taskResourceLocalHandlers: handlers as never,
        waitTimeOverrides: { WaitForTurn: 20, WaitForStragglers: 0 },
        retryIntervalOverrides: noWait,
      },
      context: {
        Execution: {
          Id: `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`,
          Name: name,
        },
        StateMachine: { Id: stateMachineArn, Name: stateMachineArn.split(':').pop() },
      },
    });
    const states: string[] = [];
    const collecting = (async () => {
      for await (const event of execution.eventLogs) {
        if (event.type === 'StateEntered') states.push(event.state.name);
      }
    })();
    try {
      const output = await execution.result;
      await collecting;
      return { name, status: 'SUCCEEDED', output, calls: { ...calls }, states, ...published };
    } catch (error) {
      await collecting.catch(() => undefined);
      if (!(error instanceof ExecutionError)) throw error;
      const cause = (error as Error & { cause?: Error }).cause;
      return {
        name,
        status: 'FAILED',
        error: { Error: cause?.name ?? 'States.Runtime', Cause: cause?.message ?? error.message },
        calls: { ...calls },
        states,
        ...published,
      };
    }
  }
}

/** An error the interpreter matches by `name` against Retry and Catch, with `message` as Cause. */
function lambdaStyleError(name: string, cause: string): Error {
  const error = new Error(cause);
  error.name = name;
  return error;
}

/** The Lambda context a phase handler sees, with a compressed deadline. */
export function fakeLambdaContext(budgetMs: number): Context {
  const deadline = Date.now() + budgetMs;
  const requestId = randomUUID();
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: 'local-export',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:local-1:000000000000:function:local-export',
    memoryLimitInMB: '1024',
    awsRequestId: requestId,
    logGroupName: '/aws/lambda/local-export',
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
