"""Synthetic single-table text-to-SQL data for Gander's demo model (issue 8; the training script,
the evaluation and the model are not written yet).

Random tables (name, columns with types and values) and questions that name a column or a clear
synonym of it, in many phrasings, with the gold SQL. Prompt format (exactly):

    Table: NAME(col TYPE, col TYPE, ...)\nQuestion: QUESTION\nSQL:

and the model continues with " SELECT ...;" then a newline.

Evaluation tables never appear in training: their names are compounds (`north_hotels`) that no
training table uses (training sees plain names and other compounds), with their own random column
sets and rows. Their words are known tokens: a tiny model cannot emit a token it never saw.

    python3 tools/sql/sqlgen.py OUT_DIR [--train 120000] [--eval-tables 40] [--per-table 5] [--seed 1]

writes OUT_DIR/train.txt (one example per line pair, separated by a blank line, ready to tokenize)
and OUT_DIR/eval.jsonl (one question per line with the table's rows for SQLite).
"""
import json
import os
import random
import sys

TRAIN_TABLES = [
    "employees", "products", "books", "movies", "students", "orders", "customers", "cars",
    "hotels", "songs", "players", "teams", "courses", "flights", "restaurants", "patients",
    "stores", "games", "albums", "houses", "phones", "bikes", "trips", "events", "museums",
    "schools", "shops", "parks", "ships", "tools", "plants", "animals", "recipes", "concerts",
    "apartments", "laptops", "cameras", "paintings", "farms", "factories", "clubs", "authors",
    "doctors", "teachers", "drivers", "artists", "projects", "invoices", "tickets", "rooms",
]

CITIES = ["Berlin", "Paris", "Madrid", "Rome", "Vienna", "Oslo", "Lisbon", "Prague", "Dublin",
          "Athens", "Warsaw", "Zurich", "Tokyo", "Seoul", "Cairo", "Lima", "Boston", "Denver",
          "Austin", "Toronto", "Sydney", "Mumbai", "Nairobi", "Helsinki", "Munich", "Milan"]
COUNTRIES = ["France", "Germany", "Spain", "Italy", "Japan", "Brazil", "Canada", "Kenya", "India",
             "Norway", "Peru", "Egypt", "Mexico", "Chile", "Poland", "Greece", "Ireland", "Korea"]
DEPTS = ["Sales", "Marketing", "Finance", "Research", "Support", "Legal", "Design", "Operations"]
COLORS = ["red", "blue", "green", "black", "white", "silver", "yellow", "orange", "purple"]
GENRES = ["drama", "comedy", "horror", "jazz", "rock", "fantasy", "history", "science", "poetry"]
STATUS = ["active", "closed", "pending", "shipped", "cancelled", "open", "archived"]
BRANDS = ["Acme", "Zenith", "Orbit", "Nova", "Apex", "Vertex", "Summit", "Pioneer", "Atlas"]
CATEGORIES = ["toys", "food", "garden", "office", "sports", "health", "beauty", "travel", "music"]
FIRST = ["Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
         "Kira", "Leo", "Maya", "Nils", "Olga", "Pablo", "Rosa", "Sami", "Tara", "Umar", "Vera"]
TITLES = ["Blue Sky", "Night Road", "Silent Sea", "Iron Gate", "Red River", "Last Light",
          "Green Hill", "Cold Star", "Old Town", "Wild Rose", "Dark Forest", "Bright Day"]

# name, type, synonyms used in questions, value generator
TEXT_COLS = [
    ("city", CITIES, ["city", "city"], "in {v}", "whose city is {v}"),
    ("country", COUNTRIES, ["country", "country"], "from {v}", "whose country is {v}"),
    ("department", DEPTS, ["department", "department"], "in the {v} department", "whose department is {v}"),
    ("color", COLORS, ["color", "colour"], "that are {v}", "whose color is {v}"),
    ("genre", GENRES, ["genre", "genre"], "in the {v} genre", "whose genre is {v}"),
    ("status", STATUS, ["status", "status"], "with status {v}", "whose status is {v}"),
    ("brand", BRANDS, ["brand", "brand"], "made by {v}", "whose brand is {v}"),
    ("category", CATEGORIES, ["category", "category"], "in the {v} category", "whose category is {v}"),
    ("name", FIRST, ["name", "name"], "named {v}", "whose name is {v}"),
    ("title", TITLES, ["title", "title"], "titled {v}", "whose title is {v}"),
]
# name, type, (lo, hi), synonym, (low word, high word)
NUM_COLS = [
    ("price", "REAL", (5, 900), "price", ("cheapest", "most expensive")),
    ("salary", "INTEGER", (20000, 150000), "salary", ("lowest", "highest")),
    ("age", "INTEGER", (18, 90), "age", ("youngest", "oldest")),
    ("year", "INTEGER", (1950, 2024), "year", ("earliest", "latest")),
    ("rating", "REAL", (1, 10), "rating", ("lowest", "highest")),
    ("quantity", "INTEGER", (1, 500), "quantity", ("smallest", "largest")),
    ("population", "INTEGER", (1000, 900000), "population", ("smallest", "largest")),
    ("score", "INTEGER", (0, 100), "score", ("lowest", "highest")),
    ("weight", "REAL", (1, 300), "weight", ("lightest", "heaviest")),
    ("pages", "INTEGER", (50, 1200), "pages", ("fewest", "most")),
    ("duration", "INTEGER", (1, 240), "duration", ("shortest", "longest")),
    ("capacity", "INTEGER", (10, 5000), "capacity", ("smallest", "largest")),
]
AGG = {"COUNT": None, "SUM": ["total", "sum of the"], "AVG": ["average", "mean"],
       "MIN": ["minimum", "lowest", "smallest"], "MAX": ["maximum", "highest", "largest"]}


PREFIXES = ["city", "north", "south", "old", "new", "main", "local", "green", "blue", "small", "big", "west",
            "east", "top", "star", "river", "park", "sun", "moon", "gold"]


def eval_names(n):
    """Held-out table names: compounds of known words that no training table uses."""
    rng = random.Random(12345)
    names = []
    while len(names) < n:
        name = f"{rng.choice(PREFIXES)}_{rng.choice(TRAIN_TABLES)}"
        if name not in names:
            names.append(name)
    return names


def train_name(rng, held_out):
    while True:
        name = rng.choice(TRAIN_TABLES) if rng.random() < 0.5 else f"{rng.choice(PREFIXES)}_{rng.choice(TRAIN_TABLES)}"
        if name not in held_out:
            return name


def make_table(rng, name):
    texts = rng.sample(TEXT_COLS, rng.randint(1, 3))
    nums = rng.sample(NUM_COLS, rng.randint(1, 3))
    cols = [(t[0], "TEXT", t) for t in texts] + [(n[0], n[1], n) for n in nums]
    rng.shuffle(cols)
    return {"name": name, "cols": cols}


def schema(t):
    return f"{t['name']}(" + ", ".join(f"{c} {ty}" for c, ty, _ in t["cols"]) + ")"


def num_value(rng, spec):
    lo, hi = spec[2]
    return rng.randint(lo, hi) if spec[1] == "INTEGER" else rng.randint(lo, hi)


def question(rng, t, rows=None):
    """One (question, sql) pair about table t; with `rows`, text values come from them (so a
    WHERE clause of an evaluation question matches something)."""
    name = t["name"]
    texts = [c for c in t["cols"] if c[1] == "TEXT"]
    nums = [c for c in t["cols"] if c[1] != "TEXT"]
    kind = rng.choice(["count", "count_where", "agg", "agg_where", "group_count", "group_agg",
                       "distinct", "order", "select_where", "select_num_where", "count_num_where"])
    tc = rng.choice(texts)
    nc = rng.choice(nums)
    tspec, nspec = tc[2], nc[2]
    v = rng.choice(tspec[1])
    if rows:
        i = [c[0] for c in t["cols"]].index(tc[0])
        v = rng.choice(rows)[i]
    n = num_value(rng, nspec)
    if kind == "count":
        q = rng.choice([f"How many {name} are there?", f"Count the {name}.", f"What is the number of {name}?",
                        f"How many rows does {name} have?"])
        return q, f"SELECT COUNT(*) FROM {name};"
    if kind == "count_where":
        q = rng.choice([f"How many {name} are {tspec[3].format(v=v)}?", f"How many {name} {tspec[4].format(v=v)}?",
                        f"Count the {name} {tspec[4].format(v=v)}.", f"How many {name} have {tc[0]} {v}?"])
        return q, f"SELECT COUNT(*) FROM {name} WHERE {tc[0]} = '{v}';"
    if kind == "count_num_where":
        op, words = rng.choice([(">", ["above", "over", "greater than", "more than"]), ("<", ["below", "under", "less than"])])
        w = rng.choice(words)
        q = rng.choice([f"How many {name} have a {nspec[3]} {w} {n}?", f"Count the {name} with {nspec[3]} {w} {n}."])
        return q, f"SELECT COUNT(*) FROM {name} WHERE {nc[0]} {op} {n};"
    if kind == "agg":
        f = rng.choice(["SUM", "AVG", "MIN", "MAX"])
        w = rng.choice(AGG[f])
        if f in ("MIN", "MAX") and rng.random() < 0.5:
            w = nspec[4][0 if f == "MIN" else 1]
            q = rng.choice([f"What is the {w} {nspec[3]} among the {name}?", f"Find the {w} {nspec[3]} in {name}."])
        else:
            q = rng.choice([f"What is the {w} {nspec[3]} of the {name}?", f"What is the {w} {nspec[3]} in {name}?",
                            f"Give the {w} {nspec[3]} of all {name}."])
        return q, f"SELECT {f}({nc[0]}) FROM {name};"
    if kind == "agg_where":
        f = rng.choice(["SUM", "AVG", "MIN", "MAX"])
        w = rng.choice(AGG[f])
        q = rng.choice([f"What is the {w} {nspec[3]} of {name} {tspec[4].format(v=v)}?",
                        f"What is the {w} {nspec[3]} of the {name} {tspec[3].format(v=v)}?"])
        return q, f"SELECT {f}({nc[0]}) FROM {name} WHERE {tc[0]} = '{v}';"
    if kind == "group_count":
        q = rng.choice([f"How many {name} are there for each {tc[0]}?", f"Count the {name} per {tc[0]}.",
                        f"For each {tc[0]}, how many {name} are there?"])
        return q, f"SELECT {tc[0]}, COUNT(*) FROM {name} GROUP BY {tc[0]};"
    if kind == "group_agg":
        f = rng.choice(["SUM", "AVG", "MIN", "MAX"])
        w = rng.choice(AGG[f])
        q = rng.choice([f"What is the {w} {nspec[3]} for each {tc[0]} in {name}?",
                        f"For each {tc[0]}, what is the {w} {nspec[3]} of the {name}?"])
        return q, f"SELECT {tc[0]}, {f}({nc[0]}) FROM {name} GROUP BY {tc[0]};"
    if kind == "distinct":
        q = rng.choice([f"List the different {tc[0]} values of the {name}.", f"Which distinct {tc[0]} values appear in {name}?",
                        f"Show each {tc[0]} of the {name} once."])
        return q, f"SELECT DISTINCT {tc[0]} FROM {name};"
    if kind == "order":
        k = rng.choice([1, 1, 2, 3, 5])
        desc = rng.random() < 0.5
        d = "DESC" if desc else "ASC"
        if k == 1:
            q = rng.choice([f"What is the {tc[0]} of the {name} with the {'highest' if desc else 'lowest'} {nspec[3]}?",
                            f"Show the {tc[0]} of the {name} with the {'highest' if desc else 'lowest'} {nspec[3]}."])
        else:
            q = rng.choice([f"Show the {tc[0]} of the {k} {name} with the {'highest' if desc else 'lowest'} {nspec[3]}.",
                            f"List the {tc[0]} of the top {k} {name} by {nspec[3]}{'' if desc else ', lowest first'}."])
        return q, f"SELECT {tc[0]} FROM {name} ORDER BY {nc[0]} {d} LIMIT {k};"
    if kind == "select_where":
        others = [c for c in t["cols"] if c[0] != tc[0]]
        oc = rng.choice(others) if others else nc
        q = rng.choice([f"What is the {oc[0]} of the {name} {tspec[4].format(v=v)}?", f"Show the {oc[0]} of {name} {tspec[3].format(v=v)}.",
                        f"List the {oc[0]} of every {name} {tspec[4].format(v=v)}."])
        return q, f"SELECT {oc[0]} FROM {name} WHERE {tc[0]} = '{v}';"
    # select_num_where
    op, words = rng.choice([(">", ["above", "over", "greater than", "more than"]), ("<", ["below", "under", "less than"])])
    w = rng.choice(words)
    q = rng.choice([f"List the {tc[0]} of the {name} with a {nspec[3]} {w} {n}.", f"Which {tc[0]} values have {nspec[3]} {w} {n} in {name}?"])
    return q, f"SELECT {tc[0]} FROM {name} WHERE {nc[0]} {op} {n};"


def prompt(t, q):
    return f"Table: {schema(t)}\nQuestion: {q}\nSQL:"


def rows_for(rng, t, k=30):
    rows = []
    for _ in range(k):
        row = []
        for c, ty, spec in t["cols"]:
            row.append(rng.choice(spec[1]) if ty == "TEXT" else (round(rng.uniform(*spec[2]), 2) if ty == "REAL" else rng.randint(*spec[2])))
        rows.append(row)
    return rows


def main():
    out = sys.argv[1]
    args = dict(zip(sys.argv[2::2], sys.argv[3::2]))
    n_train = int(args.get("--train", 120000))
    n_eval_tables = int(args.get("--eval-tables", 40))
    per_table = int(args.get("--per-table", 5))
    rng = random.Random(int(args.get("--seed", 1)))
    os.makedirs(out, exist_ok=True)
    held_out = eval_names(n_eval_tables)
    with open(os.path.join(out, "train.txt"), "w") as f:
        for _ in range(n_train):
            t = make_table(rng, train_name(rng, set(held_out)))
            q, sql = question(rng, t)
            f.write(json.dumps(prompt(t, q) + " " + sql + "\n") + "\n")
    # Evaluation: its own random stream, so the training data does not depend on it. Each table
    # also gets 20 solved examples (other questions) for the learning-at-test-time experiment.
    rng = random.Random(int(args.get("--seed", 1)) + 1000)
    with open(os.path.join(out, "eval.jsonl"), "w") as f:
        for name in held_out:
            t = make_table(rng, name)
            rows = rows_for(rng, t)
            asked = [question(rng, t, rows) for _ in range(per_table)]
            shots = []
            while len(shots) < 20:
                q, sql = question(rng, t, rows)
                if all(q != a for a, _ in asked) and all(q != s for s, _ in shots):
                    shots.append((q, sql))
            for q, sql in asked:
                f.write(json.dumps({"table": name, "schema": [[c, ty] for c, ty, _ in t["cols"]], "rows": rows,
                                    "prompt": prompt(t, q), "gold": sql,
                                    "shots": [prompt(t, a) + " " + b + "\n" for a, b in shots]}) + "\n")
    print(f"wrote {n_train} training examples and {n_eval_tables * per_table} evaluation questions to {out}")


if __name__ == "__main__":
    main()
