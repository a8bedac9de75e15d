/** A JSON text cut to a length, and the length the whole text would have had. */
export interface BoundedJson {
  readonly text: string;
  readonly length: number;
}

type Frame =
  | { readonly array: readonly unknown[]; index: number }
  | {
      readonly object: Readonly<Record<string, unknown>>;
      readonly keys: string[];
      index: number;
      wrote: boolean;
    };

/**
 * JSON.stringify for a value that came from JSON.parse, without recursion and without building
 * more than `maxChars` of text. JSON.stringify recurses once per level: an item nested 100,000
 * deep (JSON.parse takes it) overflows the stack, and a 40 MB item would be copied whole just to
 * be cut. Here the walk keeps its own stack on the heap and stops appending at the limit, while
 * still counting the full length. Output matches JSON.stringify for JSON data (same key order,
 * same number formatting, `undefined` members skipped, non-finite numbers as null).
 */
export function boundedJson(value: unknown, maxChars: number): BoundedJson {
  let text = '';
  let length = 0;
  const emit = (piece: string) => {
    length += piece.length;
    const room = maxChars - text.length;
    if (room > 0) text += piece.length <= room ? piece : piece.slice(0, room);
  };
  const stack: Frame[] = [];
  const visit = (v: unknown) => {
    if (v === null || v === undefined || typeof v === 'function' || typeof v === 'symbol') emit('null');
    else if (typeof v === 'number') emit(Number.isFinite(v) ? String(v) : 'null');
    else if (typeof v === 'string' || typeof v === 'boolean') emit(JSON.stringify(v));
    else if (typeof v === 'bigint') emit(v.toString());
    else if (Array.isArray(v)) {
      emit('[');
      stack.push({ array: v, index: 0 });
    } else {
      const object = v as Record<string, unknown>;
      emit('{');
      stack.push({ object, keys: Object.keys(object), index: 0, wrote: false });
    }
  };
  visit(value);
  while (stack.length > 0) {
    const frame = stack[stack.length - 1] as Frame;
    if ('array' in frame) {
      if (frame.index === frame.array.length) {
        emit(']');
        stack.pop();
        continue;
      }
      if (frame.index > 0) emit(',');
      visit(frame.array[frame.index++]);
    } else {
      if (frame.index === frame.keys.length) {
        emit('}');
        stack.pop();
        continue;
      }
      const key = frame.keys[frame.index++] as string;
      const member = frame.object[key];
      if (member === undefined || typeof member === 'function' || typeof member === 'symbol') continue;
      if (frame.wrote) emit(',');
      frame.wrote = true;
      emit(`${JSON.stringify(key)}:`);
      visit(member);
    }
  }
  return { text, length };
}
