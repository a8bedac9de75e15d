import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { TrinoSQL } from 'dt-sql-parser/dist/parser/trino';
import { NAMED_QUERIES } from '../../infra/constructs/named-queries';
import {
  type AthenaColumn,
  type AthenaType,
  manifestColumns,
  sessionColumns,
} from '../../lambda/snapshot/athena-columns';
import { changeViewColumns, changeViewSql } from '../../lambda/snapshot/change-view';
import { readerViewSql } from '../../lambda/snapshot/reader-view';

/**
 * Athena engine v3 is Trino, and no Trino runs here (DuckDB, which the local tests use, accepts
 * queries Trino rejects). So every shipped query is held to what can be checked offline: Trino's
 * grammar (dt-sql-parser's TrinoSQL, built from Trino's own ANTLR grammar), and Trino's UNNEST rule,
 * which a grammar cannot see: an array of rows expands into one column per row field
 * (trino docs, sql/select.md "UNNEST"), so the alias must name every field.
 */

interface ShippedQuery {
  readonly name: string;
  readonly sql: string;
}

const ROOT = path.join(__dirname, '../..');
/** The README and every page of docs/: wherever a query is shown to a reader, it is checked. */
const DOC_FILES = [
  'README.md',
  ...readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/**
 * Every ```sql block of the docs, with the file it is in, its place there (1-based) and the
 * dialect its first line declares.
 */
function docSqlBlocks(): { file: string; place: number; dialect: string; sql: string }[] {
  return DOC_FILES.flatMap((file) =>
    [...readFileSync(path.join(ROOT, file), 'utf8').matchAll(/```sql\n([\s\S]*?)```/g)].map((m, i) => {
      const sql = m[1] ?? '';
      const dialect = /^-- (Trino|DuckDB)\b/.exec(sql)?.[1] ?? 'undeclared';
      return { file, place: i + 1, dialect, sql };
    }),
  );
}

const TRINO_QUERIES: readonly ShippedQuery[] = [
  ...NAMED_QUERIES.map((q) => ({ name: `named query "${q.name}"`, sql: q.sql('moon_key_session_export') })),
  {
    name: 'the reader view',
    sql: readerViewSql({ sessionsRaw: '"db"."sessions_raw"', manifests: '"db"."manifests"' }),
  },
  {
    name: 'the change view',
    sql: changeViewSql({ sessions: '"db"."sessions"', manifests: '"db"."manifests"' }),
  },
  ...docSqlBlocks()
    .filter((b) => b.dialect === 'Trino')
    .map((b) => ({ name: `${b.file} sql block ${b.place}`, sql: b.sql })),
];

/** The type of a column path such as `s.factors` or `files.sessions` in either table, if any. */
function typeOfPath(expression: string): AthenaType | undefined {
  const parts = expression.replaceAll('"', '').split('.');
  // A leading table alias (`s.factors`) is not a column: try with and without it.
  for (const start of [0, 1]) {
    let fields: readonly AthenaColumn[] = [...sessionColumns, ...manifestColumns];
    let type: AthenaType | undefined;
    for (const part of parts.slice(start)) {
      type = fields.find((f) => f.name === part)?.type;
      if (!type) break;
      fields = type.kind === 'struct' ? type.fields : [];
    }
    if (type) return type;
  }
  return undefined;
}

/**
 * Problems with every `UNNEST(<column>) [WITH ORDINALITY] [AS] alias(names)` in `sql`, by Trino's
 * rule: an array of rows needs one name per field, an array of scalars exactly one name.
 */
function unnestAliasProblems(sql: string): string[] {
  const problems: string[] = [];
  const unnest =
    /UNNEST\s*\(\s*([\w."]+)\s*\)\s*(WITH\s+ORDINALITY\s+)?(?:AS\s+)?(\w+)?\s*(?:\(([^)]*)\))?/gi;
  for (const m of sql.matchAll(unnest)) {
    const [text, expression = '', ordinality, , names] = m;
    const type = typeOfPath(expression);
    if (type?.kind !== 'array') {
      problems.push(`${text}: ${expression} is not an array column`);
      continue;
    }
    const expected = [
      ...(type.element.kind === 'struct' ? type.element.fields.map((f) => f.name) : ['<value>']),
      ...(ordinality ? ['<ordinality>'] : []),
    ];
    const given = (names ?? '')
      .split(',')
      .map((n) => n.trim())
      .filter((n) => n !== '');
    if (given.length !== expected.length) {
      problems.push(
        `${text}: Trino yields ${expected.length} columns (${expected.join(', ')}), alias names ${given.length}`,
      );
    } else if (type.element.kind === 'struct') {
      const mismatched = given.filter((n, i) => expected[i] !== '<ordinality>' && n !== expected[i]);
      if (mismatched.length > 0) {
        problems.push(`${text}: alias names must follow the row fields in order (${expected.join(', ')})`);
      }
    }
  }
  return problems;
}

/** Trino's reserved keywords (trino docs, language/reserved.md): usable as identifiers only when quoted. */
const TRINO_RESERVED = new Set(
  `ALTER AND AS AUTO BETWEEN BY CASE CAST CONSTRAINT CREATE CROSS CUBE CURRENT_CATALOG CURRENT_DATE
  CURRENT_PATH CURRENT_ROLE CURRENT_SCHEMA CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER DEALLOCATE DELETE
  DESCRIBE DISTINCT DROP ELSE END ESCAPE EXCEPT EXECUTE EXISTS EXTRACT FALSE FOR FROM FULL GROUP GROUPING
  HAVING IN INNER INSERT INTERSECT INTO IS JOIN JSON_ARRAY JSON_EXISTS JSON_OBJECT JSON_QUERY JSON_TABLE
  JSON_VALUE LEFT LIKE LISTAGG LOCALTIME LOCALTIMESTAMP NATURAL NORMALIZE NOT NULL ON OR ORDER OUTER
  PREPARE RECURSIVE RIGHT ROLLUP SELECT SKIP TABLE THEN TRIM TRUE UESCAPE UNION UNNEST USING VALUES WHEN
  WHERE WITH`
    .split(/\s+/)
    .map((k) => k.toLowerCase()),
);

function allNames(columns: readonly AthenaColumn[]): string[] {
  const names: string[] = [];
  const walk = (type: AthenaType) => {
    if (type.kind === 'array') walk(type.element);
    if (type.kind === 'struct') {
      for (const f of type.fields) {
        names.push(f.name);
        walk(f.type);
      }
    }
  };
  for (const c of columns) {
    names.push(c.name);
    walk(c.type);
  }
  return names;
}

describe('shipped Athena SQL (Trino, Athena engine v3)', () => {
  const trino = new TrinoSQL();
  /** The parser takes one statement; a trailing `;` and leading comment lines are not the query. */
  const statement = (sql: string) => sql.trim().replace(/;$/, '');

  it('covers the nine named queries, the reader view, the change view, the README blocks and those of docs/', () => {
    expect(NAMED_QUERIES).toHaveLength(9);
    expect(TRINO_QUERIES.map((q) => q.name)).toEqual(
      expect.arrayContaining(['the reader view', 'the change view']),
    );
    expect(TRINO_QUERIES.filter((q) => q.name.startsWith('README.md ')).length).toBeGreaterThanOrEqual(4);
    expect(TRINO_QUERIES.filter((q) => q.name.startsWith('docs/')).length).toBeGreaterThanOrEqual(1);
  });

  it('declares the dialect on the first line of every sql block of the README and docs/', () => {
    expect(docSqlBlocks().filter((b) => b.dialect === 'undeclared')).toEqual([]);
  });

  it.each(TRINO_QUERIES)('$name parses with the Trino grammar', ({ sql }) => {
    expect(trino.validate(statement(sql)).map((e) => e.message)).toEqual([]);
  });

  it.each(TRINO_QUERIES)('$name names every column UNNEST yields in Trino', ({ sql }) => {
    expect(unnestAliasProblems(sql)).toEqual([]);
  });

  it('catches the alias DuckDB accepts and Trino rejects (the old Factor mix query)', () => {
    // Prepare: the query as shipped before, which DuckDB ran and Athena would fail to analyse.
    const old = 'SELECT f.type FROM sessions s CROSS JOIN UNNEST(s.factors) AS t(f)';
    // Act / Assess: it is valid grammar, so only the alias rule can catch it.
    expect(trino.validate(old)).toEqual([]);
    expect(unnestAliasProblems(old)).toEqual([
      expect.stringContaining('Trino yields 3 columns (delivery_channel, type, method), alias names 1'),
    ]);
    expect(
      unnestAliasProblems('SELECT 1 FROM x CROSS JOIN UNNEST(factors) AS f(type, delivery_channel, method)'),
    ).toEqual([expect.stringContaining('must follow the row fields in order')]);
  });

  it('never divides by an integer literal (bigint / bigint truncates in Trino, not in DuckDB)', () => {
    const divisions = TRINO_QUERIES.flatMap((q) =>
      [...q.sql.matchAll(/\/\s*\d+(?![\d.])/g)].map((m) => `${q.name}: ${m[0]}`),
    );
    expect(divisions).toEqual([]);
  });

  it('uses no Trino reserved word as a column or field name (the view types and queries leave them bare)', () => {
    const reserved = [
      ...allNames(sessionColumns),
      ...allNames(manifestColumns),
      ...allNames(changeViewColumns),
    ].filter((n) => TRINO_RESERVED.has(n));
    expect(reserved).toEqual([]);
  });
});
