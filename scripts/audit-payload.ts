import { auditRequestSchema } from '../lambda/run/run-plan';

/** Raised for bad command-line arguments; the scripts print it and exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * Runs the `main` of a command that talks to the deployed stack (`npm run audit`, `npm run smoke`)
 * and exits with its code: 64 for a usage error (printed as is), 1 for any other failure.
 */
export function runStackCommand(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(
        error instanceof UsageError ? error.message : `${name} failed: ${(error as Error).message}`,
      );
      process.exit(error instanceof UsageError ? 64 : 1);
    },
  );
}

/** The flags that describe an audit, shared by `npm run export` and `npm run audit`. */
export const AUDIT_OPTIONS = {
  reason: { type: 'string' },
  user: { type: 'string', multiple: true },
  'dry-run': { type: 'boolean', default: false },
} as const;

export interface AuditPayload {
  readonly reason: string;
  readonly userIds?: string[];
  readonly dryRun: boolean;
}

/**
 * The audit payload for the flags given, checked with the handler's own schema, so a bad
 * reason or user list is refused here, before anything is invoked, in the handler's words.
 */
export function auditPayloadFromArgs(
  values: { reason?: string; user?: string[]; 'dry-run'?: boolean },
  usage: string,
): AuditPayload {
  const parsed = auditRequestSchema.safeParse({
    reason: values.reason,
    ...(values.user ? { userIds: values.user } : {}),
    dryRun: values['dry-run'] ?? false,
  });
  if (!parsed.success) {
    const flag = (path: PropertyKey | undefined) =>
      path === 'userIds' ? '--user' : path === 'reason' ? '--reason' : '--dry-run';
    throw new UsageError(
      `${parsed.error.issues.map((i) => `${flag(i.path[0])} ${i.message}`).join('; ')}\n${usage}`,
    );
  }
  const { reason, userIds, dryRun } = parsed.data;
  return { reason, ...(userIds ? { userIds: [...userIds] } : {}), dryRun };
}
