/**
 * JSON without losing numbers: integers too large for a double become `bigint`.
 *
 * `JSON.parse` turns 9007199254740993 into 9007199254740992 and an amount with
 * 20 digits into a rounded float; `JSON.stringify` refuses `bigint`. The client
 * sends and reads guest JSON through these two functions instead, so an id or
 * an amount comes back exactly as the guest wrote it:
 *
 *   parseJson('{"id": 9007199254740993, "n": 1, "f": 1.5}')
 *   // { id: 9007199254740993n, n: 1, f: 1.5 }
 *   stringifyJson({ id: 9007199254740993n, n: 1 })   // '{"id":9007199254740993,"n":1}'
 *
 * Integers (no fraction, no exponent) within ±(2^53 − 1) are `number`, larger
 * ones `bigint`; every other number is a `number` (a double, as in JSON.parse).
 * The grammar is RFC 8259's, strictly: no NaN, no trailing commas, no comments.
 * Works in every engine that has `bigint` (no `JSON.rawJSON` or reviver source
 * access needed).
 */

/** A JSON value whose integers may be `bigint` (those beyond Number.MAX_SAFE_INTEGER). */
export type ExactJson = null | boolean | number | bigint | string | ExactJson[] | { [key: string]: ExactJson };

/** Deepest nesting `parseJson` accepts (the runtime itself accepts 64). */
export const MAX_PARSE_DEPTH = 512;

const WS = /[ \t\n\r]*/y;
const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
// A string token: runs of plain characters between escapes (no per-character alternation).
const STRING = /"[^"\\\u0000-\u001f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\u0000-\u001f]*)*"/y;

class Parser {
  pos = 0;

  constructor(readonly text: string) {}

  fail(what: string): never {
    throw new SyntaxError(`JSON: ${what} at position ${this.pos}`);
  }

  ws(): void {
    WS.lastIndex = this.pos;
    WS.test(this.text);
    this.pos = WS.lastIndex;
  }

  value(depth: number): ExactJson {
    this.ws();
    const c = this.text.charCodeAt(this.pos);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (depth >= MAX_PARSE_DEPTH) this.fail(`nesting deeper than ${MAX_PARSE_DEPTH}`);
      return c === 0x7b ? this.object(depth + 1) : this.array(depth + 1);
    }
    if (c === 0x22 /* " */) return this.string();
    if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) return this.number();
    for (const [word, value] of LITERALS) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return value;
      }
    }
    return this.fail(this.pos >= this.text.length ? "unexpected end" : "unexpected character");
  }

  string(): string {
    STRING.lastIndex = this.pos;
    const match = STRING.exec(this.text);
    if (match === null) return this.fail("bad string");
    this.pos = STRING.lastIndex;
    const token = match[0];
    return token.includes("\\") ? (JSON.parse(token) as string) : token.slice(1, -1);
  }

  number(): number | bigint {
    NUMBER.lastIndex = this.pos;
    const match = NUMBER.exec(this.text);
    if (match === null) return this.fail("bad number");
    this.pos = NUMBER.lastIndex;
    const token = match[0];
    const value = Number(token);
    if (match[1] === undefined && match[2] === undefined && !Number.isSafeInteger(value)) {
      return BigInt(token);
    }
    return value;
  }

  array(depth: number): ExactJson[] {
    this.pos += 1;
    const out: ExactJson[] = [];
    this.ws();
    if (this.text[this.pos] === "]") {
      this.pos += 1;
      return out;
    }
    for (;;) {
      out.push(this.value(depth));
      this.ws();
      const c = this.text[this.pos++];
      if (c === "]") return out;
      if (c !== ",") this.fail("expected ',' or ']'");
    }
  }

  object(depth: number): { [key: string]: ExactJson } {
    this.pos += 1;
    const out: { [key: string]: ExactJson } = {};
    this.ws();
    if (this.text[this.pos] === "}") {
      this.pos += 1;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.text[this.pos] !== '"') this.fail("expected a member name");
      const key = this.string();
      this.ws();
      if (this.text[this.pos++] !== ":") this.fail("expected ':'");
      const value = this.value(depth);
      if (key === "__proto__") {
        // As in JSON.parse: a "__proto__" member is data, never the prototype.
        Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
      } else {
        out[key] = value;
      }
      this.ws();
      const c = this.text[this.pos++];
      if (c === "}") return out;
      if (c !== ",") this.fail("expected ',' or '}'");
    }
  }
}

const LITERALS: readonly [string, ExactJson][] = [
  ["true", true],
  ["false", false],
  ["null", null],
];

/** Parses JSON text; integers beyond ±(2^53 − 1) come back as `bigint`. Throws SyntaxError. */
export function parseJson(text: string): ExactJson {
  const parser = new Parser(text);
  const value = parser.value(0);
  parser.ws();
  if (parser.pos !== text.length) parser.fail("unexpected data after the value");
  return value;
}

/**
 * JSON text for a value that may hold `bigint` (written as its digits).
 * Like JSON.stringify otherwise (toJSON, undefined members skipped, `indent`),
 * except that NaN and ±Infinity throw a TypeError instead of becoming null.
 */
export function stringifyJson(value: unknown, indent?: number | string): string {
  const step =
    typeof indent === "number" ? " ".repeat(Math.min(10, Math.max(0, Math.floor(indent)))) : (indent ?? "").slice(0, 10);
  const seen = new Set<object>();

  function write(key: string, input: unknown, margin: string): string | undefined {
    let v = input;
    if (typeof v === "object" && v !== null && typeof (v as { toJSON?: unknown }).toJSON === "function") {
      v = (v as { toJSON(key: string): unknown }).toJSON(key);
    }
    switch (typeof v) {
      case "bigint":
        return v.toString();
      case "number":
        if (!Number.isFinite(v)) throw new TypeError(`${v} is not JSON`);
        return JSON.stringify(v);
      case "string":
      case "boolean":
        return JSON.stringify(v);
      case "object":
        break;
      default:
        return undefined; // undefined, functions, symbols: skipped as JSON.stringify does
    }
    if (v === null) return "null";
    if (v instanceof Number || v instanceof String || v instanceof Boolean) {
      return write(key, v.valueOf(), margin);
    }
    if (seen.has(v)) throw new TypeError("a circular structure is not JSON");
    seen.add(v);
    const inner = margin + step;
    const open = step ? `\n${inner}` : "";
    const close = step ? `\n${margin}` : "";
    const sep = step ? `,\n${inner}` : ",";
    let out: string;
    if (Array.isArray(v)) {
      const items = v.map((item, i) => write(String(i), item, inner) ?? "null");
      out = items.length ? `[${open}${items.join(sep)}${close}]` : "[]";
    } else {
      const members: string[] = [];
      for (const [k, item] of Object.entries(v)) {
        const text = write(k, item, inner);
        if (text !== undefined) members.push(`${JSON.stringify(k)}:${step ? " " : ""}${text}`);
      }
      out = members.length ? `{${open}${members.join(sep)}${close}}` : "{}";
    }
    seen.delete(v);
    return out;
  }

  const text = write("", value, "");
  if (text === undefined) throw new TypeError(`${typeof value} is not JSON`);
  return text;
}
