// `model.sql(table, question, {state, grammar, anyValue, signal})`: the text-to-SQL workflow of the demo
// model, as the CLI's `gander sql` runs it (src/cli/sql.rs). Prompt format (contract): without a
// state `Table: NAME(cols)\nQuestion: Q\nSQL:`; with a state primed from the `Table:` line and
// solved examples (`Question: …\nSQL: …;\n` each), only `Question: Q\nSQL:`. Greedy, one line,
// under the grammar of the table's own SQL unless `grammar: false`; its text literals are runs
// of the question's words unless `anyValue: true` (the CLI's `--any-value`).

import * as wasm from './gander.js';
import { BadInputError, GanderError, toGanderError } from './errors.js';
import { wasmMemoryBytes } from './wasm.js';
import { checkOptions, is } from './options.js';

/** The longest answer (one statement of a few dozen tokens), as in the CLI. */
const SQL_MAX_TOKENS = 80;

const SQL_OPTIONS = {
  state: [(v) => v instanceof Uint8Array || v instanceof ArrayBuffer, 'state bytes (from saveState or ModelStore.getState)'],
  grammar: is.bool,
  anyValue: is.bool,
  signal: is.signal,
};

/** `{schema, grammar}` for a table line (BadInputError naming the problem); with a question,
 *  the grammar's text literals are runs of its words. */
export function sqlTable(line, question) {
  if (typeof line !== 'string') throw new BadInputError('sql: the table must be a string such as "cars(brand TEXT, price REAL)"');
  if (question !== undefined && typeof question !== 'string') throw new BadInputError('sqlTable: the question must be a string');
  if (!wasmMemoryBytes()) throw new GanderError('WASM_LOAD', 'sqlTable needs the wasm module: call it after Gander.load() or await Gander.init()');
  try { return wasm.sqlTable(line, question); } catch (e) { throw toGanderError(e); }
}

export async function askSql(model, table, question, options = {}) {
  checkOptions('model.sql', options, SQL_OPTIONS);
  const { state, grammar = true, anyValue = false, signal } = options ?? {};
  if (typeof question !== 'string' || !question.trim() || question.includes('\n')) {
    throw new BadInputError('model.sql: give the question as one non-empty line');
  }
  const t = sqlTable(table, anyValue ? undefined : question.trim());
  const s = model.session();
  try {
    if (state) await s.loadState(state);
    const prompt = state ? `Question: ${question.trim()}\nSQL:` : `Table: ${t.schema}\nQuestion: ${question.trim()}\nSQL:`;
    let out = '';
    const opts = { temperature: 0, maxTokens: SQL_MAX_TOKENS, stop: '\n', signal };
    if (grammar) opts.grammar = t.grammar;
    for await (const ev of s.generate(prompt, opts)) out += ev.text;
    return out.trim();
  } finally {
    await s.dispose();
  }
}
