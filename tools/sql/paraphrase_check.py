"""Checks the hand-written paraphrase test set (issue 19, tools/sql/paraphrase_set.json).

The set is a test set only: it was written before the next model was trained and must never be
used for training, for choosing the generator's phrasings, or for tuning.

For every table: a valid identifier, SQLite types TEXT/INTEGER/REAL, 12-25 rows whose values
match the column types. For every question: its table exists; the question is not duplicated;
every identifier its SQL names is the table or one of its columns; the SQL is in the language of
`gander sql`'s grammar (src/grammar/sql.rs: one SELECT of `*`, DISTINCT columns, or columns and
aggregates, numeric aggregates over numeric columns only; WHERE `col op literal` joined by AND or
OR, text only with = / !=, literals of the column's type; GROUP BY one column; ORDER BY one
column or aggregate; LIMIT; `;`, one space between words, upper-case keywords), with two style
rules on top (ORDER BY always says ASC or DESC; AND and OR are not mixed, since the grammar has
no parentheses); it runs on SQLite over the table's rows and returns at least one row and at
least one non-NULL value; and an ORDER BY ... LIMIT k answer is not decided by a tie (the sort
keys of the first k + 1 rows differ), since eval.py compares ordered answers in order.

Then it prints counts per table and per kind, and exits 1 naming every question that fails.

    python3 tools/sql/paraphrase_check.py [--set tools/sql/paraphrase_set.json] [--jsonl OUT.jsonl]

--jsonl also writes the set in eval.py's format (table, schema, rows, prompt, gold, shots), so
`python3 tools/sql/eval.py --model M --data OUT.jsonl` measures a model on it. Standard library only.
"""
import argparse
import json
import os
import re
import sqlite3
import sys
from collections import Counter

MIN_QUESTIONS = 150
MIN_TABLES = 8
MIN_ROWS, MAX_ROWS = 12, 25
TYPES = {"TEXT", "INTEGER", "REAL"}
KEYWORDS = {"SELECT", "DISTINCT", "FROM", "WHERE", "AND", "OR", "GROUP", "BY", "ORDER", "ASC", "DESC",
            "LIMIT", "COUNT", "SUM", "AVG", "MIN", "MAX"}
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KINDS = ["group by", "order/limit", "range", "where-and/or", "distinct", "count", "aggregate", "plain select"]


def strip_literals(sql):
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


class Grammar:
    """Recognises the language of src/grammar/sql.rs for one table (see the module docstring)."""

    def __init__(self, table):
        self.name = table["name"]
        self.types = {c: t for c, t in table["columns"]}

    def parse(self, sql):
        """None when `sql` is in the language, else what is wrong."""
        self.s, self.i = sql, 0
        try:
            self.lit("SELECT ")
            self.select()
            self.lit(f" FROM {self.name}")
            if self.opt(" WHERE "):
                self.where()
            if self.opt(" GROUP BY "):
                self.col()
            if self.opt(" ORDER BY "):
                if not self.agg():
                    self.col()
                if not (self.opt(" ASC") or self.opt(" DESC")):
                    raise ValueError("ORDER BY without ASC or DESC")
            if self.opt(" LIMIT "):
                self.match(r"[0-9]{1,9}", "a LIMIT count")
            self.lit(";")
            if self.i != len(self.s):
                raise ValueError("text after `;`")
        except ValueError as e:
            return f"{e} at `{self.s[self.i:self.i + 25]}`"
        return None

    def opt(self, text):
        if self.s.startswith(text, self.i):
            self.i += len(text)
            return True
        return False

    def lit(self, text):
        if not self.opt(text):
            raise ValueError(f"expected `{text}`")

    def match(self, pattern, what):
        m = re.compile(pattern).match(self.s, self.i)
        if not m:
            raise ValueError(f"expected {what}")
        self.i = m.end()
        return m.group(0)

    def col(self, want=None):
        start = self.i
        name = self.match(IDENT.pattern, "a column")
        if name not in self.types:
            self.i = start
            raise ValueError(f"`{name}` is not a column of {self.name}")
        if want and self.types[name] not in want:
            self.i = start
            raise ValueError(f"`{name}` is {self.types[name]}, expected {'/'.join(sorted(want))}")
        return name

    def agg(self):
        for text in ("COUNT(*)",):
            if self.opt(text):
                return True
        if self.opt("COUNT(DISTINCT ") or self.opt("COUNT("):
            self.col()
            self.lit(")")
            return True
        for f in ("SUM(", "AVG(", "MIN(", "MAX("):
            if self.opt(f):
                self.col({"INTEGER", "REAL"})
                self.lit(")")
                return True
        return False

    def select(self):
        if self.opt("*"):
            return
        if self.opt("DISTINCT "):
            self.col()
            while self.opt(", "):
                self.col()
            return
        while True:
            if not self.agg():
                self.col()
            if not self.opt(", "):
                return

    def where(self):
        joins = set()
        while True:
            c = self.col()
            ty = self.types[c]
            if ty == "TEXT":
                if not (self.opt(" = ") or self.opt(" != ")):
                    raise ValueError(f"text column `{c}` compared with something other than = or !=")
                self.match(r"'(?:[^'\r\n]|'')*'", "a quoted text literal")
            else:
                self.match(r" (=|!=|<=|>=|<|>) ", "a comparison")
                self.match(r"-?[0-9]{1,18}(?![0-9.])" if ty == "INTEGER" else r"-?[0-9]{1,15}(\.[0-9]{1,15})?(?![0-9.])",
                           f"an {ty} literal for `{c}`")
            if self.opt(" AND "):
                joins.add("AND")
            elif self.opt(" OR "):
                joins.add("OR")
            else:
                break
        if len(joins) > 1:
            raise ValueError("AND and OR mixed (the grammar has no parentheses)")


def features(sql):
    """The kinds a gold query shows (a query can show several)."""
    up = strip_literals(sql)
    f = set()
    if " GROUP BY " in up:
        f.add("group by")
    if " ORDER BY " in up or " LIMIT " in up:
        f.add("order/limit")
    if "DISTINCT" in up:
        f.add("distinct")
    if re.search(r"\bCOUNT\(", up):
        f.add("count")
    if re.search(r"\b(SUM|AVG|MIN|MAX)\(", up):
        f.add("aggregate")
    where = re.search(r" WHERE (.*?)(?: GROUP BY | ORDER BY | LIMIT |;)", up)
    if where:
        conds = re.split(r" AND | OR ", where.group(1))
        ops = [re.match(r"(\w+) (\S+) ", c + " ") for c in conds]
        by_col = {}
        for m in ops:
            if m:
                by_col.setdefault(m.group(1), set()).add(m.group(2))
        is_range = " AND " in where.group(1) and any(o & {">", ">="} and o & {"<", "<="} for o in by_col.values())
        if is_range:
            f.add("range")
        elif " AND " in where.group(1) or " OR " in where.group(1):
            f.add("where-and/or")
    if not f:
        f.add("plain select")
    return f


def primary(fs):
    return next(k for k in KINDS if k in fs)


def build(table):
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TABLE {table['name']} (" + ", ".join(f"{c} {t}" for c, t in table["columns"]) + ")")
    db.executemany(f"INSERT INTO {table['name']} VALUES (" + ",".join("?" * len(table["columns"])) + ")", table["rows"])
    return db


def table_problems(t):
    out = []
    name = t.get("name", "?")
    if not IDENT.fullmatch(str(name)):
        out.append(f"table `{name}`: not an identifier")
    cols = t.get("columns", [])
    if not cols:
        out.append(f"table `{name}`: no columns")
    seen = set()
    for c in cols:
        if len(c) != 2 or not IDENT.fullmatch(str(c[0])) or c[1] not in TYPES:
            out.append(f"table `{name}`: bad column {c!r} (want [identifier, TEXT|INTEGER|REAL])")
        elif c[0].lower() in seen:
            out.append(f"table `{name}`: duplicate column `{c[0]}`")
        else:
            seen.add(c[0].lower())
    rows = t.get("rows", [])
    if not MIN_ROWS <= len(rows) <= MAX_ROWS:
        out.append(f"table `{name}`: {len(rows)} rows (want {MIN_ROWS}-{MAX_ROWS})")
    for r, row in enumerate(rows):
        if len(row) != len(cols):
            out.append(f"table `{name}` row {r}: {len(row)} values for {len(cols)} columns")
            continue
        for v, (c, ty) in zip(row, cols):
            ok = (isinstance(v, str) if ty == "TEXT" else
                  isinstance(v, int) and not isinstance(v, bool) if ty == "INTEGER" else
                  isinstance(v, (int, float)) and not isinstance(v, bool))
            if not ok:
                out.append(f"table `{name}` row {r}: {c} = {v!r} is not {ty}")
    return out


def order_tie(db, sql):
    """A reason when an ORDER BY ... LIMIT k answer depends on how SQLite breaks a tie, else None."""
    m = re.search(r" ORDER BY (.+?)(?: ASC| DESC)? LIMIT ([0-9]+);$", sql)
    if not m:
        return None
    key, k = m.group(1), int(m.group(2))
    head = sql[: sql.index(" ORDER BY ")]
    base = re.sub(r"^SELECT .*? FROM ", f"SELECT {key} FROM ", head, count=1)
    keys = [r[0] for r in db.execute(base).fetchall()]
    desc = " DESC LIMIT " in sql
    keys.sort(key=lambda v: (v is None, v), reverse=desc)
    top = keys[: k + 1]
    if len(set(top)) < len(top):
        return f"tie in the sort key among the first {k + 1} rows: {top}"
    return None


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default=os.path.join(here, "paraphrase_set.json"))
    ap.add_argument("--jsonl", help="also write the set in eval.py's JSON-lines format here")
    a = ap.parse_args()
    data = json.load(open(a.set))
    tables = {t["name"]: t for t in data["tables"]}
    questions = data["questions"]
    fails = [p for t in data["tables"] for p in table_problems(t)]
    if len(tables) != len(data["tables"]):
        fails.append("two tables share a name")
    if len(tables) < MIN_TABLES:
        fails.append(f"{len(tables)} tables (want at least {MIN_TABLES})")
    if len(questions) < MIN_QUESTIONS:
        fails.append(f"{len(questions)} questions (want at least {MIN_QUESTIONS})")
    dbs = {n: build(t) for n, t in tables.items() if not table_problems(t)}

    seen_q = {}
    per_table = Counter()
    per_kind = Counter()
    per_feature = Counter()
    extra = Counter()
    lines = []
    for n, q in enumerate(questions):
        text, sql, tname = q.get("question", ""), q.get("sql", ""), q.get("table", "")
        tag = f"question {n} ({tname}): {text!r}"
        norm = " ".join(text.lower().split())
        if norm in seen_q:
            fails.append(f"{tag}: duplicates question {seen_q[norm]}")
        seen_q.setdefault(norm, n)
        if tname not in tables:
            fails.append(f"{tag}: no table `{tname}`")
            continue
        t = tables[tname]
        if tname not in dbs:
            fails.append(f"{tag}: its table is malformed")
            continue
        cols = {c for c, _ in t["columns"]}
        unknown = [w for w in IDENT.findall(strip_literals(sql)) if w.upper() not in KEYWORDS and w != tname and w not in cols]
        if unknown:
            fails.append(f"{tag}: names {sorted(set(unknown))}, not columns of {tname}")
        bad = Grammar(t).parse(sql)
        if bad:
            fails.append(f"{tag}: outside the SQL grammar: {bad}")
        try:
            rows = dbs[tname].execute(sql).fetchall()
        except sqlite3.Error as e:
            fails.append(f"{tag}: SQLite error: {e}")
            continue
        if not rows:
            fails.append(f"{tag}: no rows")
        elif all(v is None for r in rows for v in r):
            fails.append(f"{tag}: only NULL")
        tie = order_tie(dbs[tname], sql)
        if tie:
            fails.append(f"{tag}: {tie}")
        fs = features(sql)
        per_table[tname] += 1
        per_kind[primary(fs)] += 1
        per_feature.update(fs)
        sel = strip_literals(sql)[len("SELECT "): strip_literals(sql).index(" FROM ")]
        if ", " in sel and " GROUP BY " not in sql:
            extra["several columns selected (no GROUP BY)"] += 1
        if "''" in sql:
            extra["apostrophe in a literal"] += 1
        if re.search(r"'[^']* [^']*'", sql):
            extra["text literal with a space"] += 1
        if " OR " in sql:
            extra["OR"] += 1
        if "COUNT(DISTINCT " in sql:
            extra["COUNT(DISTINCT col)"] += 1
        if re.search(r" (>=|<=) ", sql):
            extra[">= or <="] += 1
        if tname.lower() in text.lower().replace(" ", "_"):
            extra["question names the table"] += 1
        if a.jsonl:
            schema = f"{tname}(" + ", ".join(f"{c} {ty}" for c, ty in t["columns"]) + ")"
            lines.append(json.dumps({"table": tname, "schema": t["columns"], "rows": t["rows"],
                                     "prompt": f"Table: {schema}\nQuestion: {text}\nSQL:", "gold": sql, "shots": []}))

    print(f"{len(tables)} tables, {len(questions)} questions")
    print("per table:")
    for name in tables:
        print(f"  {name:<18} {per_table[name]:>3} questions, {len(tables[name]['rows'])} rows, {len(tables[name]['columns'])} columns")
    print("per kind (each question once, first of: " + ", ".join(KINDS) + "):")
    for k in KINDS:
        print(f"  {k:<14} {per_kind[k]:>3}")
    print("per feature (a question counts under every kind it shows):")
    for k in KINDS:
        print(f"  {k:<14} {per_feature[k]:>3}")
    print("also:")
    for k, v in sorted(extra.items()):
        print(f"  {k:<40} {v:>3}")
    if a.jsonl and not fails:
        with open(a.jsonl, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"wrote {len(lines)} questions to {a.jsonl}")
    if fails:
        print(f"\n{len(fails)} problem(s):", file=sys.stderr)
        for p in fails:
            print(f"  {p}", file=sys.stderr)
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
