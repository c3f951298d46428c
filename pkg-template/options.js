// Checking options objects: unknown names and bad values are refused with a message that names
// the option (a typo such as `temprature` must not be silently ignored).

import { BadInputError } from './errors.js';

/** The quantisations a model can be converted to: Rust's `Quant::ALL` (src/format/gander.rs),
 *  in the same order (tests/quant.rs checks that the two lists agree). */
export const QUANTS = ['f32', 'f16', 'int8', 'q4'];

export const is = {
  oneOf: (...vals) => [(v) => vals.includes(v), `one of ${vals.map((x) => JSON.stringify(x)).join(', ')}`],
  bool: [(v) => typeof v === 'boolean', 'true or false'],
  func: [(v) => typeof v === 'function', 'a function'],
  signal: [(v) => typeof AbortSignal !== 'undefined' && v instanceof AbortSignal, 'an AbortSignal'],
  url: [(v) => typeof v === 'string' || (typeof URL !== 'undefined' && v instanceof URL), 'a URL or string'],
  string: [(v) => typeof v === 'string', 'a string'],
  posInt: [(v) => Number.isInteger(v) && v > 0, 'a positive integer'],
};

/** Check `opts` against `spec` ({name: [test, description]}); undefined values are skipped. */
export function checkOptions(where, opts, spec) {
  if (opts === undefined || opts === null) return {};
  if (typeof opts !== 'object' || Array.isArray(opts)) {
    throw new BadInputError(`${where}: options must be an object`);
  }
  for (const [k, v] of Object.entries(opts)) {
    const rule = spec[k];
    if (!rule) {
      throw new BadInputError(`${where}: unknown option \`${k}\` (known: ${Object.keys(spec).join(', ')})`);
    }
    if (v !== undefined && !rule[0](v)) {
      throw new BadInputError(`${where}: option \`${k}\` must be ${rule[1]}, got ${describe(v)}`);
    }
  }
  return opts;
}

function describe(v) {
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (typeof v === 'object') return v.constructor ? v.constructor.name : 'an object';
  return String(v);
}

/** Token ids as a Uint32Array, refusing anything that is not a non-negative integer. */
export function toIds(where, ids) {
  if (ids instanceof Uint32Array) return ids;
  if (!ids || typeof ids.length !== 'number') {
    throw new BadInputError(`${where}: expected token ids (an array of integers or a Uint32Array)`);
  }
  const out = new Uint32Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i];
    if (!Number.isInteger(t) || t < 0 || t > 0xffffffff) {
      throw new BadInputError(`${where}: token id at index ${i} is ${describe(t)}, not a non-negative integer`);
    }
    out[i] = t;
  }
  return out;
}
