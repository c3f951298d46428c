// What the page knows about its built-in model (www/models/): where it is, how it is labelled,
// the note shown when it loads, and the profile that says how the page drives it (completion of
// a fixed text-to-SQL prompt, greedy, one line, every question from a fresh or primed state).
// Models added under Models have no profile and get the chat defaults.

export const BUILTIN = {
  key: 'builtin',
  label: 'sql-rwkv7 (built-in text-to-SQL)',
  url: new URL('../models/sql-rwkv7-int8.safetensors', import.meta.url).href,
  size: '18.0 MiB',
  note: 'The built-in model is Gander\'s own small RWKV-7 (C = 128, 4 layers, int8), trained on the CPU to turn a question about one table into SQL. Give it a schema and a question in the format shown; it answers after "SQL:". With "only the table\'s columns" on, its answer can only name the table\'s own columns. It is small: it gets plainly worded questions about new tables right only some of the time (tools/sql/README.md has the numbers). To teach it a table, put solved examples in the box below and ingest them; then ask only "Question: … SQL:". Add any RWKV-7 checkpoint under Models for general text.',
  // How the page drives this model: completion of a fixed prompt format, greedy, one line,
  // every question from a fresh (or primed) state.
  profile: {
    sql: true,
    mode: 'complete', stop: ['\n'], temperature: 0, maxTokens: 80, fresh: true,
    example: 'Table: employees(name TEXT, city TEXT, salary INTEGER)\nQuestion: What is the average salary of the employees in Berlin?\nSQL:',
    // After the ingest box's examples are primed, the question goes without its Table line.
    afterIngest: 'Question: What is the average salary of the employees in Finance?\nSQL:',
    ingest: 'Table: staff(f1 TEXT, f2 TEXT, f3 INTEGER)\nQuestion: How many employees are in Sales?\nSQL: SELECT COUNT(*) FROM staff WHERE f2 = \'Sales\';\nQuestion: Who earns the most?\nSQL: SELECT f1 FROM staff ORDER BY f3 DESC LIMIT 1;\nQuestion: What is the average salary?\nSQL: SELECT AVG(f3) FROM staff;\n',
  },
};

/** The name the page shows for a model key: the built-in model's label, else the stored name. */
export function labelOf(key) {
  return key === BUILTIN.key ? BUILTIN.label : key;
}
