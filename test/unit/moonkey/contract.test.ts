/**
 * Our schema, fake API and the vendor's OpenAPI document must agree. The document is the
 * fixture test/fixtures/moonkey-openapi.yaml, copied verbatim from shared/seeds/.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { z } from 'zod';
import {
  DELIVERY_CHANNELS,
  FACTOR_TYPES,
  factorMethodSchema,
  factorSchema,
  sessionListItemSchema,
} from '../../../lambda/moonkey/session-record';
import { sessionsFor, userIdFor } from '../../../local/fake-sessions';

interface JsonSchema {
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  description?: string;
}

const openapi = parse(readFileSync(join(__dirname, '../../fixtures/moonkey-openapi.yaml'), 'utf8'));
const item = openapi.components.schemas.SessionListItem as JsonSchema;
const factor = item.properties?.factors?.items as JsonSchema;
const method = factor.properties?.method as JsonSchema;

const requiredOf = (schema: z.ZodObject) =>
  Object.entries(schema.shape)
    .filter(([, field]) => !(field as z.ZodType).safeParse(undefined).success)
    .map(([name]) => name)
    .sort();

describe('the record schema against the OpenAPI document', () => {
  it.each([
    ['SessionListItem', sessionListItemSchema, item],
    ['factor', factorSchema, factor],
    ['factor.method', factorMethodSchema, method],
  ] as const)('%s declares the same fields and the same required ones', (_name, schema, documented) => {
    expect(Object.keys(schema.shape).sort()).toEqual(Object.keys(documented.properties ?? {}).sort());
    expect(requiredOf(schema)).toEqual([...(documented.required ?? [])].sort());
  });

  it('lists every factor type and delivery channel the document names', () => {
    const describedTypes = factor.properties?.type?.description ?? '';
    const describedChannels = factor.properties?.delivery_channel?.description ?? '';
    for (const type of FACTOR_TYPES) expect(describedTypes).toContain(type);
    for (const channel of DELIVERY_CHANNELS) expect(describedChannels).toContain(channel);
  });
});

describe('the fake API population', () => {
  const sessions = Array.from({ length: 2000 }, (_, i) => sessionsFor(userIdFor(i), 1_764_115_200)).flat();

  it('only produces sessions our schema accepts', () => {
    for (const session of sessions) expect(sessionListItemSchema.safeParse(session).success).toBe(true);
  });

  it('uses every factor type and delivery channel, and has users with no sessions', () => {
    const factors = sessions.flatMap((s) => s.factors);
    expect(new Set(factors.map((f) => f.type))).toEqual(new Set(FACTOR_TYPES));
    expect(new Set(factors.map((f) => f.delivery_channel))).toEqual(new Set(DELIVERY_CHANNELS));
    const empty = Array.from({ length: 200 }, (_, i) => sessionsFor(userIdFor(i), 0).length).filter(
      (n) => n === 0,
    );
    expect(empty.length).toBeGreaterThan(10);
  });

  it('is deterministic per user id, and different users get different sessions', () => {
    expect(sessionsFor('user_x', 100)).toEqual(sessionsFor('user_x', 100));
    const ids = Array.from({ length: 2000 }, (_, i) => userIdFor(i));
    expect(new Set(ids).size).toBe(ids.length);
    const sessionIds = sessions.map((s) => s.id);
    expect(new Set(sessionIds).size).toBe(sessionIds.length);
  });
});
