const isSpace = (c: number) => c === 0x20 || c === 0x09;

/**
 * The exact JSON text of each element of `sessions` (the parsed `"sessions"` array of `text`),
 * by index, or undefined when the text cannot be indexed (see sessionItemSpans). Writing a
 * session "as the API returned it" then needs no JSON.stringify (about 5 µs per session, the
 * job's largest single cost after JSON.parse), and it is also the most faithful copy.
 */
export function rawSessionItems(text: string, sessions: readonly unknown[]): string[] | undefined {
  if (sessions.length === 0) return undefined;
  const spans = sessionItemSpans(text);
  if (spans === undefined || spans.length !== sessions.length * 2) return undefined;
  const raw: string[] = [];
  for (let i = 0; i < sessions.length; i++) raw.push(text.slice(spans[2 * i], spans[2 * i + 1]));
  return raw;
}

/**
 * [start, end) pairs of the object elements of the top-level `"sessions"` array in a JSON text,
 * or undefined whenever the text is anything but the plain case: more than one line (an NDJSON
 * record must be one line), a top-level key with an escape or a repeated `"sessions"` key (so
 * JSON.parse's "last key wins" cannot pick a different array), or an element that is not an
 * object. Undefined only means "use JSON.stringify"; it never rejects a response.
 */
export function sessionItemSpans(text: string): number[] | undefined {
  if (text.includes('\n') || text.includes('\r')) return undefined;
  const n = text.length;
  const spans: number[] = [];
  let depth = 0;
  /** Depth of the sessions array's elements while inside it; -1 outside. */
  let inArray = -1;
  let found = false;
  let elementStart = -1;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Jump to the closing quote: one not preceded by an odd number of backslashes.
      const start = i;
      let end = text.indexOf('"', i + 1);
      while (end !== -1 && text.charCodeAt(end - 1) === 0x5c) {
        let slashes = 1;
        while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++;
        if (slashes % 2 === 0) break;
        end = text.indexOf('"', end + 1);
      }
      if (end === -1) return undefined;
      i = end + 1;
      if (depth === inArray && elementStart === -1) return undefined;
      if (depth !== 1 || inArray !== -1) continue;
      let j = i;
      while (j < n && isSpace(text.charCodeAt(j))) j++;
      if (text.charCodeAt(j) !== 0x3a) continue;
      if (text.lastIndexOf('\\', end) > start) return undefined;
      if (i - start - 2 !== 8 || !text.startsWith('sessions', start + 1)) continue;
      if (found) return undefined;
      found = true;
      j++;
      while (j < n && isSpace(text.charCodeAt(j))) j++;
      if (text.charCodeAt(j) !== 0x5b) return undefined;
      depth = 2;
      inArray = 2;
      i = j + 1;
      continue;
    }
    if (c === 0x7b || c === 0x5b) {
      if (depth === inArray) {
        if (c !== 0x7b) return undefined;
        elementStart = i;
      }
      depth++;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
      if (depth === inArray && elementStart !== -1) {
        spans.push(elementStart, i + 1);
        elementStart = -1;
      } else if (inArray !== -1 && depth === inArray - 1) {
        inArray = -1;
      }
    } else if (depth === inArray && elementStart === -1 && c !== 0x2c && !isSpace(c)) {
      return undefined;
    }
    i++;
  }
  return found && depth === 0 ? spans : undefined;
}
