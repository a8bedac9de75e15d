/**
 * Two small type parsers, independent of the code that writes the types (lambda/snapshot/athena-columns.ts),
 * so a template test can hold a Glue view to what Athena reads:
 * - `hiveToPresto` reads a Glue (Hive) column type (`struct<a:string>`) and spells it the way a Presto
 *   view definition must (`row(a varchar)`);
 * - `canonicalPrestoType` reads a Presto/Trino type (`row(a varchar)`) and refuses Hive spellings.
 * Both return the same canonical text (no spaces but the one between a row field and its type), so
 * two types are equal exactly when their canonical texts are.
 */

type TypeNode =
  | { readonly kind: 'primitive'; readonly name: string; readonly params: readonly number[] }
  | { readonly kind: 'array'; readonly element: TypeNode }
  | { readonly kind: 'map'; readonly key: TypeNode; readonly value: TypeNode }
  | { readonly kind: 'row'; readonly fields: readonly { readonly name: string; readonly type: TypeNode }[] };

type Token = { readonly kind: 'word' | 'number' | 'quoted' | 'punct'; readonly text: string };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  const pattern = /\s*(?:([A-Za-z_][A-Za-z0-9_]*)|(\d+)|"((?:[^"]|"")*)"|([<>(),:]))/y;
  let at = 0;
  while (at < text.length) {
    if (/^\s*$/.test(text.slice(at))) break;
    pattern.lastIndex = at;
    const m = pattern.exec(text);
    if (!m) throw new Error(`unexpected character at ${at} in "${text}"`);
    at = pattern.lastIndex;
    if (m[1] !== undefined) tokens.push({ kind: 'word', text: m[1] });
    else if (m[2] !== undefined) tokens.push({ kind: 'number', text: m[2] });
    else if (m[3] !== undefined) tokens.push({ kind: 'quoted', text: m[3].replaceAll('""', '"') });
    else tokens.push({ kind: 'punct', text: m[4] ?? '' });
  }
  return tokens;
}

class Reader {
  private at = 0;
  constructor(
    private readonly tokens: readonly Token[],
    readonly source: string,
  ) {}
  peek(): Token | undefined {
    return this.tokens[this.at];
  }
  next(what: string): Token {
    const token = this.tokens[this.at++];
    if (!token) throw new Error(`"${this.source}" ends where ${what} was expected`);
    return token;
  }
  expect(punct: string): void {
    const token = this.next(`"${punct}"`);
    if (token.text !== punct || token.kind !== 'punct') {
      throw new Error(`expected "${punct}" but found "${token.text}" in "${this.source}"`);
    }
  }
  accept(punct: string): boolean {
    const token = this.peek();
    if (token?.kind === 'punct' && token.text === punct) {
      this.at++;
      return true;
    }
    return false;
  }
  end(): void {
    const token = this.peek();
    if (token) throw new Error(`unexpected "${token.text}" after the type in "${this.source}"`);
  }
}

function numbers(reader: Reader, open: string, close: string): number[] {
  const params: number[] = [];
  if (!reader.accept(open)) return params;
  do {
    const token = reader.next('a number');
    if (token.kind !== 'number')
      throw new Error(`expected a number, found "${token.text}" in "${reader.source}"`);
    params.push(Number(token.text));
  } while (reader.accept(','));
  reader.expect(close);
  return params;
}

/** Hive primitive names and their Presto spelling. */
const HIVE_PRIMITIVES: Readonly<Record<string, string>> = {
  string: 'varchar',
  varchar: 'varchar',
  char: 'char',
  tinyint: 'tinyint',
  smallint: 'smallint',
  int: 'integer',
  integer: 'integer',
  bigint: 'bigint',
  float: 'real',
  double: 'double',
  decimal: 'decimal',
  boolean: 'boolean',
  binary: 'varbinary',
  date: 'date',
  timestamp: 'timestamp',
};

function readHive(reader: Reader): TypeNode {
  const token = reader.next('a Hive type');
  if (token.kind !== 'word')
    throw new Error(`expected a Hive type, found "${token.text}" in "${reader.source}"`);
  const word = token.text.toLowerCase();
  switch (word) {
    case 'array': {
      reader.expect('<');
      const element = readHive(reader);
      reader.expect('>');
      return { kind: 'array', element };
    }
    case 'map': {
      reader.expect('<');
      const key = readHive(reader);
      reader.expect(',');
      const value = readHive(reader);
      reader.expect('>');
      return { kind: 'map', key, value };
    }
    case 'struct': {
      reader.expect('<');
      const fields: { name: string; type: TypeNode }[] = [];
      do {
        const name = reader.next('a struct field name');
        if (name.kind !== 'word')
          throw new Error(`expected a field name, found "${name.text}" in "${reader.source}"`);
        reader.expect(':');
        fields.push({ name: name.text, type: readHive(reader) });
      } while (reader.accept(','));
      reader.expect('>');
      return { kind: 'row', fields };
    }
    default: {
      const name = HIVE_PRIMITIVES[word];
      if (!name) throw new Error(`"${token.text}" is not a Hive type (in "${reader.source}")`);
      const params = numbers(reader, '(', ')');
      // Hive's bare `decimal` is decimal(10,0); Presto always spells precision and scale.
      if (name === 'decimal') return { kind: 'primitive', name, params: [params[0] ?? 10, params[1] ?? 0] };
      return { kind: 'primitive', name, params };
    }
  }
}

/** Presto/Trino primitive names a view definition may carry. */
const PRESTO_PRIMITIVES = new Set([
  'varchar',
  'char',
  'tinyint',
  'smallint',
  'integer',
  'bigint',
  'real',
  'double',
  'decimal',
  'boolean',
  'varbinary',
  'date',
  'timestamp',
  'json',
]);
/** Names that only Hive spells this way: in a view definition they make Athena call the view stale. */
const HIVE_ONLY = {
  string: 'varchar',
  int: 'integer',
  struct: 'row(...)',
  float: 'real',
  binary: 'varbinary',
};

function readPresto(reader: Reader): TypeNode {
  const token = reader.next('a Presto type');
  if (token.kind !== 'word')
    throw new Error(`expected a Presto type, found "${token.text}" in "${reader.source}"`);
  const word = token.text.toLowerCase();
  if (word in HIVE_ONLY) {
    throw new Error(
      `"${token.text}" is a Hive type name; Presto spells it ${HIVE_ONLY[word as keyof typeof HIVE_ONLY]} (in "${reader.source}")`,
    );
  }
  if (reader.peek()?.text === '<')
    throw new Error(`"${word}<" is Hive syntax; Presto writes ${word}(...) (in "${reader.source}")`);
  switch (word) {
    case 'array': {
      reader.expect('(');
      const element = readPresto(reader);
      reader.expect(')');
      return { kind: 'array', element };
    }
    case 'map': {
      reader.expect('(');
      const key = readPresto(reader);
      reader.expect(',');
      const value = readPresto(reader);
      reader.expect(')');
      return { kind: 'map', key, value };
    }
    case 'row': {
      reader.expect('(');
      const fields: { name: string; type: TypeNode }[] = [];
      do {
        const name = reader.next('a row field name');
        if (name.kind !== 'word' && name.kind !== 'quoted') {
          throw new Error(`expected a row field name, found "${name.text}" in "${reader.source}"`);
        }
        if (reader.peek()?.text === ':')
          throw new Error(
            `"${name.text}:" is Hive syntax; a Presto row field is "name type" (in "${reader.source}")`,
          );
        fields.push({ name: name.text, type: readPresto(reader) });
      } while (reader.accept(','));
      reader.expect(')');
      return { kind: 'row', fields };
    }
    default: {
      if (!PRESTO_PRIMITIVES.has(word))
        throw new Error(`"${token.text}" is not a Presto type (in "${reader.source}")`);
      const params = numbers(reader, '(', ')');
      if (word === 'decimal' && params.length !== 2) {
        throw new Error(`a Presto decimal needs precision and scale (in "${reader.source}")`);
      }
      return { kind: 'primitive', name: word, params };
    }
  }
}

function render(type: TypeNode): string {
  switch (type.kind) {
    case 'primitive':
      return type.params.length ? `${type.name}(${type.params.join(',')})` : type.name;
    case 'array':
      return `array(${render(type.element)})`;
    case 'map':
      return `map(${render(type.key)},${render(type.value)})`;
    case 'row':
      return `row(${type.fields.map((f) => `${f.name} ${render(f.type)}`).join(',')})`;
  }
}

function parse(text: string, read: (reader: Reader) => TypeNode): string {
  const reader = new Reader(tokenize(text), text);
  const type = read(reader);
  reader.end();
  return render(type);
}

/** `array<struct<a:string,b:int>>` -> `array(row(a varchar,b integer))`; throws on anything not Hive. */
export function hiveToPresto(hiveType: string): string {
  return parse(hiveType, readHive);
}

/** The canonical text of a Presto type; throws on a Hive spelling or anything else not Presto. */
export function canonicalPrestoType(prestoType: string): string {
  return parse(prestoType, readPresto);
}
