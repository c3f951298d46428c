"""Questions phrased in ways the generator never uses, on held-out tables: how far the model's
schema reading carries beyond the training templates (reported next to the main accuracy).

    python3 tools/sql/paraphrases.py OUT.jsonl
"""
import json
import random
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
import sqlgen  # noqa: E402

CASES = [
    ("river_hotels", [("city", "TEXT"), ("price", "REAL"), ("rating", "REAL")],
     [("Give me the number of river_hotels located in Paris.", "SELECT COUNT(*) FROM river_hotels WHERE city = 'Paris';"),
      ("What's the priciest price among river_hotels?", "SELECT MAX(price) FROM river_hotels;"),
      ("Tell me the mean rating of river_hotels.", "SELECT AVG(rating) FROM river_hotels;"),
      ("Which cities do the river_hotels have?", "SELECT DISTINCT city FROM river_hotels;")]),
    ("gold_books", [("title", "TEXT"), ("pages", "INTEGER"), ("year", "INTEGER"), ("genre", "TEXT")],
     [("How many gold_books belong to the horror genre?", "SELECT COUNT(*) FROM gold_books WHERE genre = 'horror';"),
      ("Which gold_books title came out first?", "SELECT title FROM gold_books ORDER BY year ASC LIMIT 1;"),
      ("Add up the pages of all gold_books.", "SELECT SUM(pages) FROM gold_books;"),
      ("Number of gold_books in each genre?", "SELECT genre, COUNT(*) FROM gold_books GROUP BY genre;")]),
    ("east_employees", [("name", "TEXT"), ("department", "TEXT"), ("salary", "INTEGER"), ("age", "INTEGER")],
     [("Who are the east_employees working in Sales? Give names.", "SELECT name FROM east_employees WHERE department = 'Sales';"),
      ("What do east_employees earn on average?", "SELECT AVG(salary) FROM east_employees;"),
      ("Name the oldest of the east_employees.", "SELECT name FROM east_employees ORDER BY age DESC LIMIT 1;"),
      ("How many east_employees are older than 40?", "SELECT COUNT(*) FROM east_employees WHERE age > 40;")]),
]

SPEC = {c[0]: c for c in sqlgen.TEXT_COLS}
NSPEC = {c[0]: c for c in sqlgen.NUM_COLS}


def main():
    rng = random.Random(7)
    with open(sys.argv[1], "w") as f:
        for name, schema, qs in CASES:
            t = {"name": name, "cols": [(c, ty, SPEC[c] if ty == "TEXT" else NSPEC[c]) for c, ty in schema]}
            rows = sqlgen.rows_for(rng, t)
            for q, sql in qs:
                f.write(json.dumps({"table": name, "schema": schema, "rows": rows, "prompt": sqlgen.prompt(t, q), "gold": sql, "shots": []}) + "\n")


if __name__ == "__main__":
    main()
