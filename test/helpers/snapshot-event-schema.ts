import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';

/** The JSON Schema the repository ships for the completion events, compiled once. */
export const SNAPSHOT_EVENT_SCHEMA = JSON.parse(
  readFileSync(join(__dirname, '..', '..', 'schemas', 'snapshot-event.schema.json'), 'utf8'),
) as Record<string, unknown>;

const validate = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true }).compile(
  SNAPSHOT_EVENT_SCHEMA,
);

/** The schema's complaints about an event, as `path: message` lines; empty when it is valid. */
export function snapshotEventProblems(event: unknown): string[] {
  if (validate(event)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message ?? e.keyword}`);
}
