// What the page knows about its built-in model (www/models/): where it is, how it is labelled,
// the note shown when it loads, and the profile that says how the page drives it (completion of
// a fixed text-to-SQL prompt, greedy, one line, every question from a fresh or primed state).
// Models added under Models have no profile and get the chat defaults.

export const BUILTIN = {
  key: 'builtin',
  label: 'sql-rwkv7 (built-in text-to-SQL)',
  url: new URL('../models/sql-rwkv7-int8.safetensors', import.meta.url).href,
  size: '18.0 MiB',
  note: 'The built-in model is Gander\'s own small RWKV-7 (874K parameters plus a 65,536-token embedding and head, int8), trained to turn a question about one table into SQL. Give it a schema and a question in the format shown; it answers after "SQL:". It knows the phrasings it was trained on, not free English. Add any RWKV-7 checkpoint under Models for general text.',
  // How the page drives this model: completion of a fixed prompt format, greedy, one line,
  // every question from a fresh (or primed) state.
  profile: {
    sql: true,
    mode: 'complete', stop: ['\n'], temperature: 0, maxTokens: 80, fresh: true,
    example: 'Table: employees(name TEXT, city TEXT, salary INTEGER)\nQuestion: What is the average salary of the employees in Berlin?\nSQL:',
    ingest: 'Table: employees(name TEXT, city TEXT, salary INTEGER)\nQuestion: How many employees are there?\nSQL: SELECT COUNT(*) FROM employees;\n\nTable: employees(name TEXT, city TEXT, salary INTEGER)\nQuestion: List the name of the employees in Paris.\nSQL: SELECT name FROM employees WHERE city = \'Paris\';\n',
  },
};

/** The name the page shows for a model key: the built-in model's label, else the stored name. */
export function labelOf(key) {
  return key === BUILTIN.key ? BUILTIN.label : key;
}
