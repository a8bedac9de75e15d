import type { Template } from 'aws-cdk-lib/assertions';
import { canonicalPrestoType, hiveToPresto } from '../helpers/glue-types';
import { synthStack } from '../helpers/synth-stack';

/**
 * Every Glue view the stack declares, held to what Athena reads, from the synthesized template
 * alone (the base64 is decoded here, not with the code that wrote it). Athena stores the views it
 * creates as a Glue table of type VIRTUAL_VIEW with the parameters presto_view=true and
 * comment="Presto View" (Trino's isTrinoView checks both), the definition as
 * `/* Presto View: <base64 JSON> *\/` in ViewOriginalText and `/* Presto View *\/` as
 * ViewExpandedText. The known ways a view declared outside Athena breaks on the first query:
 * - a column type in the JSON spelt the Hive way (`string`, `struct<...>`), or differing from the
 *   type the SELECT returns: Athena reports the view as stale;
 * - a storage descriptor without SerDe info: `HIVE_METASTORE_ERROR: Table storage descriptor is
 *   missing SerDe info` (Trino's Glue converter refuses a null SerdeInfo; an empty `{}` is what
 *   Terraform's provider dropped before sending, hashicorp/terraform-provider-aws#28517, and a
 *   provisioner may drop an empty object, so a SerDe library must be named).
 */

// biome-ignore lint/suspicious/noExplicitAny: template resources are checked field by field.
type Json = Record<string, any>;

interface GlueColumn {
  readonly Name: string;
  readonly Type: string;
}

interface GlueTable {
  readonly logicalId: string;
  readonly database: string;
  readonly input: Json;
}

const VIEW_TEXT = /^\/\* Presto View: ([A-Za-z0-9+/]+={0,2}) \*\/$/;
/** The fields of Trino's ConnectorViewDefinition, the JSON Athena engine v3 decodes. */
const DEFINITION_FIELDS = new Set([
  'originalSql',
  'catalog',
  'schema',
  'columns',
  'comment',
  'owner',
  'runAsInvoker',
  'path',
]);

/** The database name of a Glue table: a plain string or a Ref to an AWS::Glue::Database of the template. */
function databaseNameOf(template: Template, table: Json): string {
  const name = table.Properties.DatabaseName;
  if (typeof name === 'string') return name;
  const database = template.toJSON().Resources[name?.Ref];
  if (database?.Type !== 'AWS::Glue::Database')
    throw new Error(`DatabaseName ${JSON.stringify(name)} is no Glue database`);
  return database.Properties.DatabaseInput.Name;
}

function glueTables(template: Template): GlueTable[] {
  return Object.entries(template.findResources('AWS::Glue::Table')).map(([logicalId, table]) => ({
    logicalId,
    database: databaseNameOf(template, table),
    input: table.Properties.TableInput,
  }));
}

function decodeView(text: unknown): Json {
  const match = typeof text === 'string' ? VIEW_TEXT.exec(text) : null;
  if (!match?.[1])
    throw new Error(`ViewOriginalText is not "/* Presto View: <base64> */": ${String(text).slice(0, 60)}`);
  return JSON.parse(Buffer.from(match[1], 'base64').toString('utf8'));
}

/** Splits `a, f(b, c), d` at the commas outside parentheses. */
function topLevelItems(list: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      items.push(list.slice(start, i).trim());
      start = i + 1;
    }
  }
  items.push(list.slice(start).trim());
  return items;
}

type ColumnSource =
  | { readonly output: string; readonly schema: string; readonly table: string; readonly column: string }
  /** A string literal: Trino types it varchar (a `varchar(n)` literal is cast by the view's column type). */
  | { readonly output: string; readonly literal: 'varchar' };

/** `( SELECT ... ) alias` relations: the alias and the SELECT inside the parentheses. */
function derivedTables(sql: string): Map<string, string> {
  const derived = new Map<string, string>();
  for (let i = sql.indexOf('('); i >= 0; i = sql.indexOf('(', i + 1)) {
    if (!/^\(\s*SELECT\s/i.test(sql.slice(i))) continue;
    let depth = 0;
    let end = i;
    for (; end < sql.length; end++) {
      if (sql[end] === '(') depth++;
      else if (sql[end] === ')' && --depth === 0) break;
    }
    const alias = /^\)\s+(?:AS\s+)?(\w+)/i.exec(sql.slice(end))?.[1];
    if (alias) derived.set(alias, sql.slice(i + 1, end));
  }
  return derived;
}

/**
 * Where each output column of a view's SELECT comes from. Items may be `alias."column"`,
 * `lag(alias."column") OVER (...)` or `max(alias."column")` (each typed as the column), or a
 * string literal, each `[AS "name"]`; an alias names a `"schema"."table"` or a `( SELECT ... )`
 * traced the same way. Anything else is reported (this test would have to learn to type it
 * before it could vouch for it).
 */
function columnSources(sql: string): ColumnSource[] {
  const select = /^\s*SELECT\s+([\s\S]*?)\s+FROM\s/i.exec(sql);
  if (!select?.[1]) throw new Error(`no SELECT ... FROM in ${sql.slice(0, 60)}`);
  const relations = new Map<string, { schema: string; table: string }>();
  for (const m of sql.matchAll(/\b(?:FROM|JOIN)\s+"([^"]+)"\."([^"]+)"\s+(?:AS\s+)?(\w+)/gi)) {
    relations.set(m[3] ?? '', { schema: m[1] ?? '', table: m[2] ?? '' });
  }
  const derived = derivedTables(sql);
  return topLevelItems(select[1]).map((item): ColumnSource => {
    const literal = /^'[^']*'\s+AS\s+"?(\w+)"?$/i.exec(item);
    if (literal) return { output: literal[1] ?? '', literal: 'varchar' };
    const m =
      /^(?:(?:lag|max)\()?(\w+)\."([^"]+)"(?:\)(?:\s+OVER\s+\([^()]*\))?)?(?:\s+AS\s+"?(\w+)"?)?$/i.exec(
        item,
      );
    if (!m) throw new Error(`cannot trace the select item ${item} to a table column`);
    const [alias, column, as] = [m[1] ?? '', m[2] ?? '', m[3]];
    const relation = relations.get(alias);
    if (relation) return { output: as ?? column, ...relation, column };
    const inner = derived.get(alias);
    const source = inner === undefined ? undefined : columnSources(inner).find((c) => c.output === column);
    if (!source) throw new Error(`cannot trace the select item ${item} to a table column`);
    return { ...source, output: as ?? column };
  });
}

/** Runs `check`, turning a throw into a problem line. */
function problemOf(what: string, check: () => void): string[] {
  try {
    check();
    return [];
  } catch (error) {
    return [`${what}: ${(error as Error).message}`];
  }
}

describe('the test’s own type translators', () => {
  it('spells nested Hive struct, array and map types the Presto way', () => {
    expect(hiveToPresto('array<struct<a:string,b:int,c:array<bigint>,d:struct<e:double,f:boolean>>>')).toBe(
      'array(row(a varchar,b integer,c array(bigint),d row(e double,f boolean)))',
    );
    expect(hiveToPresto('map<string, array<float>>')).toBe('map(varchar,array(real))');
    expect(hiveToPresto('decimal')).toBe('decimal(10,0)');
    expect(hiveToPresto('decimal(12,2)')).toBe('decimal(12,2)');
    expect(hiveToPresto('date')).toBe('date');
    expect(hiveToPresto('timestamp')).toBe('timestamp');
  });

  it('refuses what is not a Hive type', () => {
    expect(() => hiveToPresto('varchar(')).toThrow();
    expect(() => hiveToPresto('row(a varchar)')).toThrow(/not a Hive type/);
    expect(() => hiveToPresto('struct<a:string')).toThrow(/ends where/);
  });

  it('reads Presto types into the same canonical text, whatever the spacing', () => {
    expect(canonicalPrestoType('array( row( a varchar, b integer ) )')).toBe(
      'array(row(a varchar,b integer))',
    );
    expect(canonicalPrestoType('map(varchar,bigint)')).toBe('map(varchar,bigint)');
    expect(canonicalPrestoType('row("a b" double)')).toBe('row(a b double)');
  });

  it.each([
    ['string', /Hive type name; Presto spells it varchar/],
    ['int', /Presto spells it integer/],
    ['struct<a:string>', /Presto spells it row/],
    ['array<varchar>', /Hive syntax/],
    ['row(a:varchar)', /Hive syntax/],
    ['array(string)', /Presto spells it varchar/],
    ['text', /not a Presto type/],
  ])('refuses %s as a Presto type', (text, message) => {
    expect(() => canonicalPrestoType(text)).toThrow(message);
  });
});

describe('every Glue view of the stack, against what Athena expects of a view', () => {
  let tables: GlueTable[];
  let views: GlueTable[];

  beforeAll(() => {
    tables = glueTables(synthStack({ createDemoUsersTable: true }));
    views = tables.filter((t) => t.input.TableType === 'VIRTUAL_VIEW');
  });

  it('finds the views and the tables they read (the checks below are not vacuous)', () => {
    expect(views.map((v) => v.input.Name)).toEqual(['sessions', 'session_changes']);
    expect(tables.length).toBeGreaterThan(views.length);
  });

  it('gives every table and view of the catalog SerDe info that names a SerDe library', () => {
    const problems = tables.flatMap((t) => {
      const serde = t.input.StorageDescriptor?.SerdeInfo;
      const library = serde?.SerializationLibrary;
      return typeof library === 'string' && library.length > 0
        ? []
        : [
            `${t.input.Name}: StorageDescriptor.SerdeInfo is ${JSON.stringify(serde)}, with no SerializationLibrary`,
          ];
    });
    expect(problems).toEqual([]);
  });

  it('stores each view the way Athena stores the views it creates', () => {
    const problems = views.flatMap((v) => {
      const found: string[] = [];
      const { input } = v;
      if (input.TableType !== 'VIRTUAL_VIEW') found.push(`${input.Name}: TableType ${input.TableType}`);
      if (input.Parameters?.presto_view !== 'true')
        found.push(`${input.Name}: Parameters.presto_view is not "true"`);
      if (input.Parameters?.comment !== 'Presto View')
        found.push(`${input.Name}: Parameters.comment is not "Presto View"`);
      if (input.ViewExpandedText !== '/* Presto View */')
        found.push(`${input.Name}: ViewExpandedText ${input.ViewExpandedText}`);
      if (!VIEW_TEXT.test(input.ViewOriginalText ?? ''))
        found.push(`${input.Name}: ViewOriginalText lacks the Presto View marker`);
      // Athena's Glue guide: a table with no partition keys must still list them as [].
      if (!Array.isArray(input.PartitionKeys) || input.PartitionKeys.length > 0) {
        found.push(`${input.Name}: PartitionKeys ${JSON.stringify(input.PartitionKeys)} is not []`);
      }
      return found;
    });
    expect(problems).toEqual([]);
  });

  it('encodes a definition with the fields Athena writes: SQL, catalog, schema, columns, no owner, not run as invoker', () => {
    const problems = views.flatMap((v) => {
      const found: string[] = [];
      const name = v.input.Name;
      let definition: Json;
      try {
        definition = decodeView(v.input.ViewOriginalText);
      } catch (error) {
        return [`${name}: ${(error as Error).message}`];
      }
      for (const key of Object.keys(definition)) {
        if (!DEFINITION_FIELDS.has(key)) found.push(`${name}: unknown field "${key}" in the view definition`);
      }
      if (typeof definition.originalSql !== 'string' || !/^\s*SELECT\s/i.test(definition.originalSql)) {
        found.push(`${name}: originalSql is not a SELECT`);
      }
      if (definition.catalog !== 'awsdatacatalog')
        found.push(`${name}: catalog ${definition.catalog} is not awsdatacatalog`);
      if (definition.schema !== v.database)
        found.push(`${name}: schema ${definition.schema} is not its database ${v.database}`);
      if (!Array.isArray(definition.columns) || definition.columns.length === 0)
        found.push(`${name}: no columns`);
      // Athena's own views carry no owner and runAsInvoker false (open-source Trino, reading them
      // from Glue, calls them "run-as definer" views without a run-as identity, trinodb/trino#18573);
      // Trino refuses an owner together with runAsInvoker true.
      if (definition.runAsInvoker !== false)
        found.push(`${name}: runAsInvoker is ${definition.runAsInvoker}, not false`);
      if ('owner' in definition)
        found.push(`${name}: carries an owner (${definition.owner}); Athena's views do not`);
      return found;
    });
    expect(problems).toEqual([]);
  });

  it('types every view column the Presto way, equal to its Glue column and to the base table column it selects', () => {
    const problems = views.flatMap((v) => {
      const name = v.input.Name;
      const definition = decodeView(v.input.ViewOriginalText);
      const columns = definition.columns as { name: string; type: string }[];
      const glueColumns = v.input.StorageDescriptor.Columns as GlueColumn[];
      const found: string[] = [];
      if (columns.map((c) => c.name).join() !== glueColumns.map((c) => c.Name).join()) {
        found.push(
          `${name}: definition columns ${columns.map((c) => c.name)} differ from Glue columns ${glueColumns.map((c) => c.Name)}`,
        );
      }
      // Every branch of a UNION ALL must return the declared columns, each typed as declared.
      const branches = (definition.originalSql as string).split(/\bUNION ALL\b/i);
      for (const [b, branch] of branches.entries()) {
        const branchName = branches.length > 1 ? `${name} (branch ${b + 1})` : name;
        let sources: ColumnSource[] = [];
        found.push(...problemOf(`${branchName}: originalSql`, () => (sources = columnSources(branch))));
        if (sources.length !== columns.length) {
          found.push(
            `${branchName}: the SELECT returns ${sources.length} columns, the definition lists ${columns.length}`,
          );
        }
        columns.forEach((column, i) => {
          const where = `${branchName}.${column.name}`;
          let presto = '';
          found.push(
            ...problemOf(`${where} in the definition`, () => (presto = canonicalPrestoType(column.type))),
          );
          if (!presto) return;
          const glue = glueColumns.find((c) => c.Name === column.name);
          found.push(
            ...problemOf(`${where} in Glue`, () => {
              if (!glue) throw new Error('no such Glue column');
              const translated = hiveToPresto(glue.Type);
              if (translated !== presto)
                throw new Error(`${glue.Type} is ${translated}, the definition says ${presto}`);
            }),
          );
          const source = sources[i];
          if (!source) return;
          if ('literal' in source) {
            if (source.output !== column.name || source.literal !== presto)
              found.push(`${where}: a ${source.literal} literal named ${source.output}`);
            return;
          }
          found.push(
            ...problemOf(`${where} from ${source.schema}.${source.table}.${source.column}`, () => {
              if (source.output !== column.name) throw new Error(`the SELECT names it ${source.output}`);
              const base = tables.find((t) => t.database === source.schema && t.input.Name === source.table);
              if (!base) throw new Error('no such Glue table in the stack');
              const baseColumns = [
                ...(base.input.StorageDescriptor?.Columns ?? []),
                ...(base.input.PartitionKeys ?? []),
              ] as GlueColumn[];
              const baseColumn = baseColumns.find((c) => c.Name === source.column);
              if (!baseColumn) throw new Error('no such column in the base table');
              const translated = hiveToPresto(baseColumn.Type);
              if (translated !== presto)
                throw new Error(`${baseColumn.Type} is ${translated}, the definition says ${presto}`);
            }),
          );
        });
      }
      return found;
    });
    expect(problems).toEqual([]);
  });
});
