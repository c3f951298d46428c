"""Execution accuracy of a text-to-SQL model on held-out tables (issues 8 and 19).

Runs every question through `gander generate --temperature 0` (stopping at the first newline),
executes the model's SQL and the gold SQL on SQLite over the table's rows, and compares the
result sets (in order when the gold query has ORDER BY, as multisets otherwise; numbers rounded
to 6 significant digits). SQL that fails to run counts as wrong.

With --shots N, the first N solved examples of the same table come first, in the contract format
of a primed state (the `Table:` line once, then `Question: ...\nSQL: ...;\n` each, then the
question): learning at test time.

With --sql, every question goes through `gander sql` instead (greedy, under the grammar of the
table's own SQL, issue 15, with text literals taken from the question's words); --sql --any-value
lets literals be any string, and --sql --no-grammar is the same command without the grammar. With
--sql and --shots N, each table's state is made once by `gander prime` from the `Table:` line and
the N examples, and each question is asked with `gander sql --state`: the product's workflow.

    python3 tools/sql/eval.py --model FILE [--backend cpu|gpu] [--shots 0] [--sql [--no-grammar]] [--data target/sql/eval.jsonl] [--gander target/release/gander]
"""
import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time


def run_sql(d, sql):
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TABLE {d['table']} (" + ", ".join(f"{c} {t}" for c, t in d["schema"]) + ")")
    db.executemany(f"INSERT INTO {d['table']} VALUES (" + ",".join("?" * len(d["schema"])) + ")", d["rows"])
    rows = db.execute(sql).fetchall()

    def norm(v):
        return float(f"{v:.6g}") if isinstance(v, float) else v

    return [tuple(norm(v) for v in r) for r in rows]


def same(d, pred):
    try:
        got = run_sql(d, pred)
    except Exception:
        return False
    want = run_sql(d, d["gold"])
    if "ORDER BY" in d["gold"].upper():
        return got == want
    return sorted(got, key=repr) == sorted(want, key=repr)


KEYWORDS = {"SELECT", "DISTINCT", "FROM", "WHERE", "AND", "OR", "NOT", "GROUP", "BY", "ORDER", "ASC", "DESC",
            "LIMIT", "COUNT", "SUM", "AVG", "MIN", "MAX", "AS", "LIKE", "BETWEEN", "IN", "IS", "NULL", "HAVING"}


def foreign_names(d, sql):
    """Identifiers in `sql` (outside string literals) that are neither SQL words nor the table's
    own name and columns: what the grammar rules out."""
    import re
    bare = re.sub(r"'(?:[^']|'')*'", "''", sql)
    known = {d["table"]} | {c for c, _ in d["schema"]}
    return [w for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", bare) if w.upper() not in KEYWORDS and w not in known]


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"gander failed: {out.stderr.strip()}")
    return out.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--shots", type=int, default=0)
    ap.add_argument("--data", default="target/sql/eval.jsonl")
    ap.add_argument("--gander", default="target/release/gander")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--show", type=int, default=0, help="print this many wrong answers")
    ap.add_argument("--sql", action="store_true", help="ask through `gander sql` (SQL grammar)")
    ap.add_argument("--no-grammar", action="store_true", help="with --sql: without the grammar")
    ap.add_argument("--any-value", action="store_true", help="with --sql: text literals not restricted to the question's words")
    a = ap.parse_args()
    data = [json.loads(l) for l in open(a.data)]
    if a.limit:
        data = data[: a.limit]
    right = 0
    foreign = 0
    wrong = []
    states = {}
    tmp = tempfile.mkdtemp(prefix="gander-eval-")
    t0 = time.time()
    for d in data:
        table_line, question_line = d["prompt"].split("\n")[:2]
        table = table_line.removeprefix("Table: ")
        question = question_line.removeprefix("Question: ")
        if len(d["shots"]) < a.shots:
            sys.exit(f"{a.data}: a question has {len(d['shots'])} solved examples, fewer than --shots {a.shots}")
        primed = table_line + "\n" + "".join(d["shots"][: a.shots])
        if a.sql:
            cmd = [a.gander, "sql", "--model", a.model, "--table", table, "--backend", a.backend, question]
            if a.no_grammar:
                cmd.insert(2, "--no-grammar")
            elif a.any_value:
                cmd.insert(2, "--any-value")
            if a.shots:
                if primed not in states:
                    path = os.path.join(tmp, f"{len(states)}.state")
                    run([a.gander, "prime", "--model", a.model, "--text", primed, "--out", path, "--backend", a.backend])
                    states[primed] = path
                cmd[2:2] = ["--state", states[primed]]
        else:
            prompt = primed + f"Question: {question}\nSQL:" if a.shots else d["prompt"]
            cmd = [a.gander, "generate", "--model", a.model, "--prompt", prompt, "--max-tokens", "80",
                   "--temperature", "0", "--stop", "\n", "--backend", a.backend]
        pred = run(cmd).strip()
        foreign += bool(foreign_names(d, pred))
        if same(d, pred):
            right += 1
        else:
            wrong.append((question, pred, d["gold"]))
    shutil.rmtree(tmp, ignore_errors=True)
    acc = right / len(data)
    mode = ("sql" + ("-no-grammar" if a.no_grammar else "-any-value" if a.any_value else "")) if a.sql else "generate"
    print(json.dumps({"model": a.model, "backend": a.backend, "shots": a.shots, "mode": mode, "questions": len(data),
                      "correct": right, "accuracy": round(acc, 4), "foreign_names": foreign, "seconds": round(time.time() - t0, 1)}))
    for q, p, g in wrong[: a.show]:
        print(f"  {q}\n    got:  {p}\n    gold: {g}", file=sys.stderr)


if __name__ == "__main__":
    main()
