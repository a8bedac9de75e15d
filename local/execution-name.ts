import { randomBytes } from 'node:crypto';
import { compactUtc, scheduledSnapshotId } from '../lambda/core/facts';

/**
 * The name the scheduled-run launcher gives the export execution of a slot, e.g.
 * `scheduled-20261127T020000Z`; a deliberate rerun of the slot adds `-rerun-<n>`.
 */
export function scheduledExecutionName(scheduledTime: string): string {
  return scheduledSnapshotId(new Date(scheduledTime));
}

/** `audit-20261127T101500Z-3f9a1c2b`: sortable by start and unique. */
export function auditExecutionName(now: Date, random = randomBytes(4).toString('hex')): string {
  return `audit-${compactUtc(now)}-${random}`;
}
