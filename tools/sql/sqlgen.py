"""Synthetic single-table text-to-SQL data for Gander's demo model, second version (issue 19).

The first version taught a closed set of column names and a handful of phrasings; this one is
built so that reading the schema is the only way to be right:

- Tables come from `domains.py` (40 everyday domains: how people name the rows and columns in
  plain English), but each table draws its column identifiers from several variants
  (`qty_on_hand`, `dept`, `fare_usd`), sometimes abbreviated or decorated further, and its table
  name from several; a share of tables have opaque (`f1`, `c3`) or made-up jargon column names.
- Questions are composed from a small grammar of English rather than fixed templates: an opener
  (what/which/who/list/show me/give me/how many/is there ...), the thing asked for (columns,
  aggregates, counts, distinct values, groups, superlatives), and the rows it is about (plain,
  with one or two conditions joined by AND or OR, ranges, negations, values before or after the
  noun, numbers as digits). Values come from realistic pools and from made-up words, with
  spaces and apostrophes, so they have to be copied.
- Literals are typed: text in quotes (`''` for a quote), numbers bare.
- Sequences hold 1 to 9 solved questions about the same table (the contract format of a primed
  state: the `Table:` line once, then `Question: ...\\nSQL: ...;\\n` each), so that a state primed
  with solved examples is in the model's training distribution; on opaque tables only the
  examples say which column a word means.

Prompt format (contract), without examples:

    Table: NAME(col TYPE, col TYPE, ...)\\nQuestion: QUESTION\\nSQL:

and the model continues with " SELECT ...;" then a newline.

Held out from training: five whole domains (their tables, nouns and values never occur in
training), used for the generator's held-out evaluation and the learning-at-test-time tables.

    python3 tools/sql/sqlgen.py OUT_DIR [--train 60000] [--eval-tables 40] [--per-table 5] [--seed 1]

writes OUT_DIR/train.jsonl (one sequence per line: a list of [context, answer] pairs),
OUT_DIR/eval.jsonl (held-out questions with their table rows, for eval.py) and
OUT_DIR/opaque.jsonl (held-out opaque-column tables, each question with 10 solved examples).
"""
import json
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from domains import DOMAINS  # noqa: E402

HELD_OUT = 5  # the last HELD_OUT domains of domains.py are never trained on

FIRST = ["Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Leo",
         "Maya", "Nils", "Olga", "Pablo", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wei", "Yara", "Zoe", "Amir",
         "Bianca", "Chidi", "Dmitri", "Esther", "Felix", "Gita", "Hana", "Ivan", "Jamal", "Keiko", "Lars",
         "Mina", "Nadia", "Oscar", "Priya", "Quinn", "Rafael", "Sofia", "Tomas", "Uma", "Viktor", "Wanda"]
LAST = ["Smith", "Garcia", "Nguyen", "Kowalski", "Okafor", "Rossi", "Muller", "Silva", "Khan", "Ito", "Novak",
        "Jensen", "Haddad", "Petrov", "Moreau", "Santos", "Larsen", "Costa", "Park", "Weber", "Adeyemi",
        "O'Neill", "D'Souza", "O'Hara", "McKay", "Van Dijk", "Fischer", "Tanaka", "Ali", "Brown", "Lopez"]
CITIES = ["Berlin", "Paris", "Madrid", "Rome", "Vienna", "Oslo", "Lisbon", "Prague", "Dublin", "Athens",
          "Warsaw", "Zurich", "Tokyo", "Seoul", "Cairo", "Lima", "Boston", "Denver", "Austin", "Toronto",
          "Sydney", "Mumbai", "Nairobi", "Helsinki", "Munich", "Milan", "New York", "Los Angeles", "San Diego",
          "Buenos Aires", "Cape Town", "Hong Kong", "Rio de Janeiro", "St. Louis", "Kansas City", "Tel Aviv",
          "Quebec City", "Salt Lake City", "Leeds", "Porto", "Kyoto", "Lagos", "Bogota", "Perth", "Hanoi"]
COUNTRIES = ["France", "Germany", "Spain", "Italy", "Japan", "Brazil", "Canada", "Kenya", "India", "Norway",
             "Peru", "Egypt", "Mexico", "Chile", "Poland", "Greece", "Ireland", "Korea", "New Zealand",
             "South Africa", "United States", "Vietnam", "Portugal", "Argentina", "Sweden", "Turkey", "Nigeria"]
COMPANIES = ["Acme", "Zenith", "Orbit", "Nova", "Apex", "Vertex", "Summit", "Pioneer", "Atlas", "Bluebird Co",
             "Northwind", "Globex", "Initech", "Umbrella Corp", "Stark Industries", "Wayne Enterprises", "Hooli",
             "Soylent", "Cyberdyne", "Tyrell", "Wonka", "Dunder Mifflin", "Bob's Burgers", "Joe's Garage",
             "Red Fox Ltd", "Silver Line", "Blue Harbor", "Green Leaf", "Ironworks", "Maple & Co"]


def vocab_words():
    """Plain lower-case words of the World vocabulary (tokens that are one word with a leading
    space): the raw material for made-up values and jargon identifiers, so that the model learns
    to copy tokens it has no meaning for, across most of the vocabulary."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "src", "tokenizer", "rwkv_vocab_v20230424.txt")
    words = []
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^\d+ '( [a-z]{3,9})' \d+$", line.rstrip("\n"))
        if m:
            words.append(m.group(1)[1:])
    return words


WORDS = vocab_words()
SQL_WORDS = {"select", "from", "where", "group", "order", "by", "limit", "count", "sum", "avg", "min", "max", "and",
             "or", "not", "as", "in", "is", "null", "like", "between", "having", "distinct", "table", "values",
             "key", "index", "asc", "desc", "on", "join", "union", "case", "when", "then", "else", "end", "set",
             "into", "all", "any", "exists", "update", "delete", "insert", "create", "drop", "primary", "default"}
WORDS = [w for w in WORDS if w not in SQL_WORDS]


def made_up_value(rng):
    """A proper-noun-like value nobody has seen: one or two capitalised vocabulary words, or a code."""
    r = rng.random()
    if r < 0.45:
        return rng.choice(WORDS).capitalize()
    if r < 0.75:
        return f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS).capitalize()}"
    if r < 0.85:
        return f"{rng.choice(WORDS).capitalize()}'s {rng.choice(WORDS).capitalize()}"
    return f"{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ0123456789')}{rng.randint(1, 999)}"


def pool_value(rng, pool):
    if pool == "person":
        return f"{rng.choice(FIRST)} {rng.choice(LAST)}" if rng.random() < 0.8 else rng.choice(FIRST)
    if pool == "city":
        return rng.choice(CITIES)
    if pool == "country":
        return rng.choice(COUNTRIES)
    if pool == "company":
        return rng.choice(COMPANIES)
    return made_up_value(rng)


class Col:
    """One column of a generated table: its identifier, type, and how questions talk about it."""

    def __init__(self, spec, ident):
        self.spec = spec
        self.id = ident
        self.type = spec["type"]
        self.text = spec["type"] == "TEXT"
        self.label = bool(spec.get("label"))

    def noun(self, rng, plural=False):
        s, p = rng.choice(self.spec["nouns"])
        return p if plural else s

    def value(self, rng):
        vals = self.spec["values"]
        if isinstance(vals, str):
            return pool_value(rng, vals)
        return made_up_value(rng) if rng.random() < 0.25 else rng.choice(vals)

    def number(self, rng):
        lo, hi = self.spec["range"]
        if self.type == "INTEGER":
            n = rng.randint(int(lo), int(hi))
            # round numbers as people write them
            for step in (1000, 100, 10, 5):
                if hi - lo > step * 20 and rng.random() < 0.6:
                    return max(int(lo), n - n % step)
            return n
        v = rng.uniform(lo, hi)
        return round(v) if rng.random() < 0.5 else round(v, rng.choice([1, 2]))


def abbreviate(rng, word):
    """A database designer's shortening of a word: `quantity` -> `qty`/`quan`/`qnty`."""
    if len(word) <= 4:
        return word
    r = rng.random()
    if r < 0.4:
        return word[: rng.randint(3, 4)]
    consonants = word[0] + re.sub(r"[aeiou]", "", word[1:])
    return consonants[: rng.randint(3, 5)] if len(consonants) >= 3 else word[:4]


def identifier(rng, spec):
    ident = rng.choice(spec["ids"])
    r = rng.random()
    if r < 0.12:
        parts = ident.split("_")
        i = rng.randrange(len(parts))
        parts[i] = abbreviate(rng, parts[i])
        ident = "_".join(parts)
    elif r < 0.18:
        ident = rng.choice(["", "tot_", "num_", "the_", "x_", "c_"]) + ident + rng.choice(["", "_val", "_v2", "_1", "_amt", "_txt"])
    elif r < 0.22:
        parts = ident.split("_")
        ident = parts[0] + "".join(p.capitalize() for p in parts[1:])  # camelCase
    return ident


def jargon(rng, used):
    """A made-up column name: one or two vocabulary words, maybe shortened."""
    while True:
        w = rng.choice(WORDS)
        if rng.random() < 0.5:
            w = f"{w}_{rng.choice(WORDS)}"
        if rng.random() < 0.3:
            w = abbreviate(rng, w)
        if w not in used and w.lower() not in SQL_WORDS and re.fullmatch(r"[a-z][a-z0-9_]*", w):
            return w


def make_table(rng, dom, mode="plain"):
    """A table of domain `dom`: the label column, 2-6 others; mode plain, opaque (f1, c2 ...) or
    jargon (made-up words)."""
    cols = dom["columns"]
    label = [c for c in cols if c.get("label")][0]
    texts = [c for c in cols if c["type"] == "TEXT" and not c.get("label")]
    nums = [c for c in cols if c["type"] != "TEXT"]
    chosen = [label] + rng.sample(texts, rng.randint(min(1, len(texts)), len(texts))) + rng.sample(nums, rng.randint(min(1, len(nums)), len(nums)))
    # the label comes first more often than not, the rest in any order
    rest = chosen[1:]
    rng.shuffle(rest)
    chosen = [label] + rest if rng.random() < 0.6 else rng.sample(chosen, len(chosen))
    used = set()
    out = []
    letter = rng.choice(["f", "c", "col", "x", "a", "field"])
    for i, spec in enumerate(chosen):
        if mode == "opaque":
            ident = f"{letter}{i + 1}" if letter not in ("col", "field") else f"{letter}_{i + 1}"
        elif mode == "jargon":
            ident = jargon(rng, used)
        else:
            ident = identifier(rng, spec)
            while ident in used or ident.lower() in SQL_WORDS:
                ident = identifier(rng, spec) if rng.random() < 0.7 else jargon(rng, used)
        used.add(ident)
        out.append(Col(spec, ident))
    name = rng.choice(dom["tables"])
    r = rng.random()
    if r < 0.15:
        name = rng.choice(["tbl_", "my_", "app_", "dim_", "raw_", "t_"]) + name
    elif r < 0.25:
        name = name + rng.choice(["_2024", "_v2", "_data", "_log", "_list", "_info"])
    return {"name": name, "cols": out, "dom": dom}


def schema(t):
    return f"{t['name']}(" + ", ".join(f"{c.id} {c.type}" for c in t["cols"]) + ")"


# ---- conditions -------------------------------------------------------------------------------

def lit(c, v):
    if c.text:
        return "'" + str(v).replace("'", "''") + "'"
    return str(v)


def sql_cond(cond):
    c, op, v = cond
    if op == "between":
        return f"{c.id} >= {lit(c, v[0])} AND {c.id} <= {lit(c, v[1])}"
    return f"{c.id} {op} {lit(c, v)}"


def unit(c, rng):
    u = c.spec.get("unit") or ""
    return f" {u}" if u and rng.random() < 0.5 else ""


def cond_phrase(rng, t, cond, people):
    """English for one condition, placed after the plural entity noun ("employees ...")."""
    c, op, v = cond
    who = "who" if people else rng.choice(["that", "which"])
    if c.text:
        if op == "=":
            r = rng.random()
            if r < 0.55:
                return rng.choice(c.spec["where"]).format(v=v)
            if r < 0.8:
                return f"whose {c.noun(rng)} is {v}"
            return rng.choice([f"with {c.noun(rng)} {v}", f"with the {c.noun(rng)} {v}", f"where the {c.noun(rng)} is {v}"])
        # !=
        r = rng.random()
        if r < 0.4:
            return f"whose {c.noun(rng)} is not {v}"
        if r < 0.7:
            return rng.choice([f"with a {c.noun(rng)} other than {v}", f"not {rng.choice(c.spec['where']).format(v=v)}"])
        return f"except those {rng.choice(c.spec['where']).format(v=v)}"
    n = c.noun(rng)
    u = unit(c, rng)
    if op == "between":
        a, b = v
        return rng.choice([f"with a {n} between {a} and {b}{u}", f"whose {n} is between {a} and {b}{u}",
                           f"with {n} from {a} to {b}{u}", f"with a {n} in the range {a} to {b}{u}",
                           f"whose {n} is at least {a} and at most {b}{u}"])
    if op in (">", "<"):
        r = rng.random()
        if r < 0.35:
            return f"{who} " + rng.choice(c.spec["more" if op == ">" else "less"]).format(n=v)
        w = rng.choice(["above", "over", "greater than", "more than", "higher than"] if op == ">" else
                       ["below", "under", "less than", "lower than"])
        return rng.choice([f"with a {n} {w} {v}{u}", f"whose {n} is {w} {v}{u}", f"with {n} {w} {v}{u}",
                           f"where the {n} is {w} {v}{u}"])
    if op == ">=":
        return rng.choice([f"with a {n} of at least {v}{u}", f"whose {n} is {v}{u} or more", f"with {n} at least {v}{u}",
                           f"whose {n} is no less than {v}{u}", f"with a {n} of {v}{u} or higher"])
    if op == "<=":
        return rng.choice([f"with a {n} of at most {v}{u}", f"whose {n} is {v}{u} or less", f"with {n} at most {v}{u}",
                           f"whose {n} does not exceed {v}{u}", f"with a {n} of {v}{u} or lower"])
    # =
    return rng.choice([f"with a {n} of {v}{u}", f"whose {n} is {v}{u}", f"with {n} equal to {v}{u}",
                       f"with {n} {v}{u}", f"where the {n} is exactly {v}{u}"])


def pick_conds(rng, t, max_conds=2, rows=None):
    """0-2 conditions, and how they join: (conds, 'AND'|'OR')."""
    texts = [c for c in t["cols"] if c.text]
    nums = [c for c in t["cols"] if not c.text]
    r = rng.random()
    k = 0 if r < 0.35 else (1 if r < 0.75 or max_conds < 2 else 2)

    def text_value(c):
        if rows:
            i = t["cols"].index(c)
            return rng.choice(rows)[i]
        return c.value(rng)

    def one(exclude=()):
        cands = [c for c in t["cols"] if c not in exclude]
        if rng.random() < 0.8:  # a condition on the label (one row by its name) is rarer
            cands = [c for c in cands if not c.label] or cands
        c = rng.choice(cands)
        if c.text:
            return (c, "=" if rng.random() < 0.85 else "!=", text_value(c))
        op = rng.choices([">", "<", ">=", "<=", "=", "between"], [30, 30, 10, 10, 8, 12])[0]
        if op == "between":
            a, b = sorted([c.number(rng), c.number(rng)])
            if a == b:
                return (c, ">", a)
            return (c, "between", (a, b))
        if op == "=" and rows:
            i = t["cols"].index(c)
            return (c, "=", rng.choice(rows)[i])
        return (c, op, c.number(rng))

    if k == 0:
        return [], "AND"
    if k == 1:
        return [one()], "AND"
    # two conditions: AND over different columns, or OR (often the same text column twice)
    if texts and rng.random() < 0.35:
        c = rng.choice(texts)
        v1, v2 = text_value(c), text_value(c)
        if v1 != v2:
            return [(c, "=", v1), (c, "=", v2)], "OR"
    a = one()
    b = one(exclude=(a[0],))
    if a[1] == "between" or b[1] == "between":
        return [a, b], "AND"  # the grammar has no parentheses: never mix a range into an OR
    return [a, b], "AND" if rng.random() < 0.75 else "OR"


def where_sql(conds, join):
    if not conds:
        return ""
    return " WHERE " + f" {join} ".join(sql_cond(c) for c in conds)


def entity(rng, t, plural=True):
    s, p = rng.choice(t["dom"]["entity"])
    return p if plural else s


def rows_np(rng, t, conds, join, plural=True, article=True):
    """The rows a question is about: '[the] [Sales] employees [who earn more than 50000 [and|or] ...]'."""
    people = t["dom"].get("people")
    ent = entity(rng, t, plural)
    if rng.random() < 0.07:
        ent = rng.choice([f"rows in {t['name']}", f"entries in {t['name']}", f"records of {t['name']}", f"{t['name']}"])
    pre = ""
    post = []
    if conds and join == "OR" and len(conds) == 2 and conds[0][0] is conds[1][0] and conds[0][0].text and rng.random() < 0.6:
        c = conds[0][0]
        v = f"{conds[0][2]} or {conds[1][2]}"
        post.append(rng.choice([rng.choice(c.spec["where"]).format(v=v), f"whose {c.noun(rng)} is {v}"]))
    else:
        for i, cond in enumerate(conds):
            c, op, v = cond
            if i == 0 and c.text and op == "=" and c.spec.get("pre") and join == "AND" and rng.random() < 0.4 and ent.split()[0] not in ("rows", "entries", "records"):
                pre = f"{v} "
                continue
            post.append(cond_phrase(rng, t, cond, people))
    words = f"{pre}{ent}"
    if post:
        words += " " + f" {join.lower()} ".join(post)
    if article and rng.random() < 0.5:
        words = "the " + words
    return words


# ---- questions --------------------------------------------------------------------------------

AGG_WORDS = {"SUM": ["total", "sum of the", "combined", "overall"], "AVG": ["average", "mean", "typical"],
             "MIN": ["minimum", "lowest", "smallest"], "MAX": ["maximum", "highest", "largest", "biggest"]}


def finish(rng, q, ask=True):
    q = q.strip()
    if rng.random() < 0.12:
        q = q[0].lower() + q[1:]
    end = "?" if ask else "."
    r = rng.random()
    if r < 0.1:
        return q
    return q + end


def q_count(rng, t, conds, join):
    np_ = rows_np(rng, t, conds, join, article=False)
    ent = entity(rng, t)
    forms = [lambda: finish(rng, f"How many {np_} are there"), lambda: finish(rng, f"How many {np_}"),
             lambda: finish(rng, f"Count the {np_}", ask=False), lambda: finish(rng, f"What is the number of {np_}"),
             lambda: finish(rng, f"Number of {np_}"), lambda: finish(rng, f"How many {np_} do we have"),
             lambda: finish(rng, f"Give me the count of {np_}", ask=False), lambda: finish(rng, f"Tell me how many {np_} there are", ask=False)]
    if not conds:
        forms += [lambda: finish(rng, f"How many {ent} are in the table"), lambda: finish(rng, f"How many rows does {t['name']} have"),
                  lambda: finish(rng, f"What's the total number of {ent}")]
    return rng.choice(forms)(), "SELECT COUNT(*)"


def q_agg(rng, t, conds, join):
    nums = [c for c in t["cols"] if not c.text]
    c = rng.choice(nums)
    f = rng.choice(["SUM", "AVG", "MIN", "MAX"])
    np_ = rows_np(rng, t, conds, join)
    n = c.noun(rng)
    w = rng.choice(AGG_WORDS[f])
    r = rng.random()
    ent1 = entity(rng, t, plural=False)
    if f in ("MIN", "MAX") and r < 0.35:
        adj = rng.choice(c.spec["high" if f == "MAX" else "low"])
        post = rows_np(rng, t, conds, join, plural=False, article=False) if conds else ent1
        q = rng.choice([f"What is the {n} of the {adj} {post}", f"What {n} does the {adj} {post} have"])
        if c.spec.get("how") and not conds and rng.random() < 0.5:
            q = c.spec["how"].format(x=f"the {adj} {ent1}")
        return finish(rng, q), f"SELECT {f}({c.id})"
    if f == "AVG" and r < 0.5 and c.spec.get("avg"):
        q = rng.choice(c.spec["avg"]).format(x=rows_np(rng, t, conds, join, article=False))
        return finish(rng, q), f"SELECT AVG({c.id})"
    if f == "SUM" and r < 0.45:
        q = rng.choice([f"Add up the {c.noun(rng, True)} of {np_}", f"What do {np_} add up to in {n}",
                        f"Sum the {n} over {np_}", f"What is the total {n} across {np_}"])
        return finish(rng, q, ask=q.startswith("What")), f"SELECT SUM({c.id})"
    q = rng.choice([f"What is the {w} {n} of {np_}", f"What's the {w} {n} for {np_}", f"{w.capitalize()} {n} of {np_}",
                    f"Find the {w} {n} among {np_}", f"Give me the {w} {n} of {np_}", f"Tell me the {w} {n} of {np_}"])
    return finish(rng, q), f"SELECT {f}({c.id})"


def select_cols(rng, t, conds):
    """1-3 columns to show: mostly the label, or attributes not used as an equality condition."""
    fixed = {c for c, op, _ in conds if op == "="}
    others = [c for c in t["cols"] if c not in fixed and not c.label]
    label = [c for c in t["cols"] if c.label][0]
    r = rng.random()
    if r < 0.45 or not others:
        return [label]
    if r < 0.75:
        return [rng.choice(others)]
    k = min(len(others), rng.randint(1, 2))
    picked = rng.sample(others, k)
    return ([label] + picked) if rng.random() < 0.6 else (picked if k > 1 else [label] + picked)


def noun_list(rng, cols):
    ns = [c.noun(rng) for c in cols]
    return ns[0] if len(ns) == 1 else (", ".join(ns[:-1]) + " and " + ns[-1])


def q_cols(rng, t, conds, join):
    cols = select_cols(rng, t, conds)
    people = t["dom"].get("people")
    sel = "SELECT " + ", ".join(c.id for c in cols)
    if len(cols) == 1 and cols[0].label:
        np_ = rows_np(rng, t, conds, join, article=False)
        forms = [f"Which {np_}", f"List the {np_}", f"Show me the {np_}", f"Show all {np_}", f"Name the {np_}",
                 f"Find the {np_}", f"Give me the {np_}", f"What are the {cols[0].noun(rng, True)} of the {np_}",
                 f"List the {cols[0].noun(rng, True)} of {np_}"]
        if conds:
            forms += [f"Is there any {rows_np(rng, t, conds, join, plural=False, article=False)}",
                      f"Are there {np_}"]
        if people:
            ps = [cond_phrase(rng, t, c, True) for c in conds]
            if len(ps) == 1 and ps[0].startswith("who "):
                forms += [f"Who {ps[0][4:]}"]
            forms += [f"Who are the {np_}"]
        q = rng.choice(forms)
        return finish(rng, q, ask=not q.split()[0] in ("List", "Show", "Name", "Find", "Give")), sel
    np_ = rows_np(rng, t, conds, join)
    nl = noun_list(rng, cols)
    ent1 = entity(rng, t, plural=False)
    forms = [f"What is the {nl} of {np_}", f"Show the {nl} of {np_}", f"List the {nl} of {np_}", f"Give me the {nl} of {np_}",
             f"What are the {nl} for {np_}", f"{nl.capitalize()} of {np_}"]
    if len(conds) == 1 and conds[0][1] == "=" and conds[0][0].label:
        v = conds[0][2]
        forms += [f"What is the {nl} of {v}", f"What's {v}'s {nl}", f"Tell me the {nl} of the {ent1} {v}"]
    q = rng.choice(forms)
    return finish(rng, q, ask=q.split()[0] in ("What", "What's")), sel


def q_star(rng, t, conds, join):
    np_ = rows_np(rng, t, conds, join)
    q = rng.choice([f"Show everything about {np_}", f"Give me all the details of {np_}", f"Show all columns for {np_}",
                    f"Show all information on {np_}", f"Show me all rows for {np_}", f"Get every field of {np_}"])
    return finish(rng, q, ask=False), "SELECT *"


def q_distinct(rng, t, conds, join):
    c = rng.choice([c for c in t["cols"] if c not in {x for x, op, _ in conds if op == "="}] or t["cols"])
    np_ = rows_np(rng, t, conds, join)
    ns = c.noun(rng, True)
    forms = [f"What {ns} are there", f"List the different {ns} of {np_}", f"Which {ns} appear among {np_}",
             f"Give me every {c.noun(rng)} of {np_}, each once", f"What are the distinct {ns} of {np_}",
             f"Show all unique {ns} of {np_}", f"List each {c.noun(rng)} only once", f"What different {ns} do {np_} have"]
    if not conds:
        forms += [f"Which {ns} are there", f"List all {ns}"]
    else:
        forms = forms[1:]
    q = rng.choice(forms)
    return finish(rng, q, ask=q.split()[0] in ("What", "Which")), f"SELECT DISTINCT {c.id}"


def q_count_distinct(rng, t, conds, join):
    c = rng.choice([c for c in t["cols"] if c not in {x for x, op, _ in conds if op == "="}] or t["cols"])
    np_ = rows_np(rng, t, conds, join)
    ns = c.noun(rng, True)
    forms = [f"How many different {ns} are there among {np_}", f"How many distinct {ns} do {np_} have",
             f"Count the unique {ns} of {np_}", f"How many {ns} are represented among {np_}", f"Number of different {ns} of {np_}"]
    if not conds:
        forms += [f"How many different {ns} are there", f"How many distinct {ns} are in the table"]
    q = rng.choice(forms)
    return finish(rng, q, ask=q.startswith("How")), f"SELECT COUNT(DISTINCT {c.id})"


def q_group(rng, t, conds, join):
    texts = [c for c in t["cols"] if c.text and not c.label and c not in {x for x, op, _ in conds if op == "="}]
    if not texts:
        return None
    g = rng.choice(texts)
    gn = g.noun(rng)
    ents = entity(rng, t)
    np_ = rows_np(rng, t, conds, join, article=False)
    per = rng.choice(["in each", "per", "for every", "for each", "by"])
    nums = [c for c in t["cols"] if not c.text]
    if rng.random() < 0.25 and not conds:
        # which group is biggest / has the highest aggregate
        desc = rng.random() < 0.7
        if rng.random() < 0.5 or not nums:
            q = f"Which {gn} has the {'most' if desc else 'fewest'} {ents}"
            return finish(rng, q), f"SELECT {g.id}", None, f" GROUP BY {g.id} ORDER BY COUNT(*) {'DESC' if desc else 'ASC'} LIMIT 1"
        c = rng.choice(nums)
        f = rng.choice(["SUM", "AVG", "MAX"])
        w = rng.choice(AGG_WORDS[f])
        q = f"Which {gn} has the {'highest' if desc else 'lowest'} {w} {c.noun(rng)}"
        return finish(rng, q), f"SELECT {g.id}", None, f" GROUP BY {g.id} ORDER BY {f}({c.id}) {'DESC' if desc else 'ASC'} LIMIT 1"
    if rng.random() < 0.5 or not nums:
        q = rng.choice([f"How many {np_} are there {per} {gn}", f"Count the {np_} {per} {gn}", f"Number of {np_} {per} {gn}",
                        f"For each {gn}, how many {np_} are there", f"How many {np_} does each {gn} have",
                        f"Break down the {np_} by {gn}"])
        return finish(rng, q, ask="How" in q or q.startswith("For")), f"SELECT {g.id}, COUNT(*)", None, f" GROUP BY {g.id}"
    c = rng.choice(nums)
    f = rng.choice(["SUM", "AVG", "MIN", "MAX"])
    w = rng.choice(AGG_WORDS[f])
    forms = [f"{w.capitalize()} {c.noun(rng)} of {np_} {per} {gn}", f"For each {gn}, what is the {w} {c.noun(rng)} of the {np_}",
             f"What is the {w} {c.noun(rng)} of the {np_} {per} {gn}"]
    if not conds:  # forms that leave the rows implicit
        forms += [f"What is the {w} {c.noun(rng)} {per} {gn}", f"Show the {w} {c.noun(rng)} {per} {gn}"]
    q = rng.choice(forms)
    return finish(rng, q, ask=not q.startswith("Show")), f"SELECT {g.id}, {f}({c.id})", None, f" GROUP BY {g.id}"


def q_order(rng, t, conds, join):
    nums = [c for c in t["cols"] if not c.text]
    c = rng.choice(nums)
    desc = rng.random() < 0.55
    adj = rng.choice(c.spec["high" if desc else "low"])
    k = rng.choice([1, 1, 1, 1, 2, 3, 3, 5, 10])
    cols = select_cols(rng, t, conds)
    sel = "SELECT " + ", ".join(x.id for x in cols)
    people = t["dom"].get("people")
    ent1 = entity(rng, t, plural=False)
    ents = entity(rng, t)
    cond_np1 = rows_np(rng, t, conds, join, plural=False, article=False) if conds else ent1
    cond_nps = rows_np(rng, t, conds, join, article=False) if conds else ents
    label_only = len(cols) == 1 and cols[0].label
    nl = noun_list(rng, cols)
    n = c.noun(rng)
    order = f" ORDER BY {c.id} {'DESC' if desc else 'ASC'}"
    if rng.random() < 0.12 and not label_only:
        # a sorted list, no limit
        q = rng.choice([f"List the {nl} of {cond_nps} sorted by {n}{'' if not desc else ', highest first'}",
                        f"Show the {nl} of all {cond_nps} ordered by {n}{' descending' if desc else ''}",
                        f"Sort the {cond_nps} by {n}{' from high to low' if desc else ' from low to high'} and show the {nl}"])
        return finish(rng, q, ask=False), sel, order
    if k == 1:
        if label_only:
            forms = [f"Which {cond_np1} is the {adj}", f"What is the {adj} {cond_np1}", f"Find the {adj} {cond_np1}",
                     f"Which {cond_np1} has the {'highest' if desc else 'lowest'} {n}", f"The {adj} {cond_np1}",
                     f"Show the {cond_np1} with the {'highest' if desc else 'lowest'} {n}"]
            if people and not conds:
                forms += [f"Who {rng.choice(c.spec['most' if desc else 'least'])}", f"Who is the {adj} {ent1}"]
            if not people and not conds:
                forms += [f"Which {ent1} {rng.choice(c.spec['most' if desc else 'least'])}"]
        else:
            forms = [f"What is the {nl} of the {adj} {cond_np1}", f"Show the {nl} of the {cond_np1} with the {'highest' if desc else 'lowest'} {n}",
                     f"Give me the {nl} of the {adj} {cond_np1}"]
        q = rng.choice(forms)
        return finish(rng, q, ask=q.split()[0] in ("Which", "What", "Who")), sel, order + " LIMIT 1"
    if label_only:
        forms = [f"Which are the {k} {adj} {cond_nps}", f"List the {k} {adj} {cond_nps}", f"Show the top {k} {cond_nps} by {n}",
                 f"Name the {k} {cond_nps} with the {'highest' if desc else 'lowest'} {n}", f"Give me {k} {adj} {cond_nps}"]
        if not desc:
            forms[2] = f"Show the bottom {k} {cond_nps} by {n}"
    else:
        forms = [f"Show the {nl} of the {k} {adj} {cond_nps}", f"List the {nl} of the top {k} {cond_nps} by {n}" if desc else
                 f"List the {nl} of the {k} {cond_nps} with the lowest {n}", f"What are the {nl} of the {k} {adj} {cond_nps}"]
    q = rng.choice(forms)
    return finish(rng, q, ask=q.split()[0] in ("Which", "What")), sel, order + f" LIMIT {k}"


KINDS = [(q_count, 14), (q_agg, 14), (q_cols, 24), (q_star, 3), (q_distinct, 6), (q_count_distinct, 5), (q_group, 14), (q_order, 20)]


def question(rng, t, rows=None):
    """One (question, sql) pair about table t; with `rows`, text values in conditions come from
    the rows (so an evaluation question's WHERE matches something)."""
    while True:
        kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        conds, join = pick_conds(rng, t, rows=rows)
        if kind is q_order and join == "OR":
            conds, join = conds[:1], "AND"
        if kind is q_group and len(conds) > 1:
            conds = conds[:1]
        res = kind(rng, t, conds, join)
        if res is None:
            continue
        if len(res) == 2:
            q, sel = res
            tail = ""
        elif len(res) == 3:
            q, sel, tail = res
        else:
            q, sel, _, tail = res
        if kind is q_group and "ORDER BY" in tail:
            conds = []
        sql = f"{sel} FROM {t['name']}{where_sql(conds, join)}{tail};"
        q = re.sub(r"\s+", " ", q)
        return q, sql


def rows_for(rng, t, k=30):
    rows = []
    for _ in range(k):
        row = []
        for c in t["cols"]:
            row.append(c.value(rng) if c.text else c.number(rng))
        rows.append(row)
    return rows


def sequence(rng, t, k, rows=None):
    """The contract format of a primed state: the Table line once, then k solved questions."""
    pairs = []
    seen = set()
    ctx = f"Table: {schema(t)}\n"
    while len(pairs) < k:
        q, sql = question(rng, t, rows)
        if q in seen:
            continue
        seen.add(q)
        pairs.append([ctx + f"Question: {q}\nSQL:", f" {sql}\n"])
        ctx = ""
    return pairs


def main():
    out = sys.argv[1]
    args = dict(zip(sys.argv[2::2], sys.argv[3::2]))
    n_train = int(args.get("--train", 60000))
    n_eval_tables = int(args.get("--eval-tables", 40))
    per_table = int(args.get("--per-table", 5))
    seed = int(args.get("--seed", 1))
    rng = random.Random(seed)
    os.makedirs(out, exist_ok=True)
    train_domains = DOMAINS[:-HELD_OUT]
    held = DOMAINS[-HELD_OUT:]
    n_q = 0
    with open(os.path.join(out, "train.jsonl"), "w") as f:
        for _ in range(n_train):
            dom = rng.choice(train_domains)
            r = rng.random()
            mode = "plain" if r < 0.8 else ("opaque" if r < 0.9 else "jargon")
            t = make_table(rng, dom, mode)
            # single questions and few-shot sequences; opaque tables always come with examples
            k = rng.choice([1, 1, 1, 2, 3, 4, 6, 9]) if mode == "plain" else rng.choice([4, 6, 9])
            seq = sequence(rng, t, k)
            n_q += k
            f.write(json.dumps(seq) + "\n")
    # Evaluation: its own random stream, held-out domains only.
    rng = random.Random(seed + 1000)
    with open(os.path.join(out, "eval.jsonl"), "w") as f:
        for i in range(n_eval_tables):
            t = make_table(rng, held[i % len(held)], "plain")
            rows = rows_for(rng, t)
            asked = [question(rng, t, rows) for _ in range(per_table)]
            for q, sql in asked:
                f.write(json.dumps(record(t, rows, q, sql, [])) + "\n")
    with open(os.path.join(out, "opaque.jsonl"), "w") as f:
        for i in range(n_eval_tables):
            t = make_table(rng, held[i % len(held)], "opaque" if i % 2 == 0 else "jargon")
            rows = rows_for(rng, t)
            pairs = sequence(rng, t, 10 + per_table, rows)
            shots = [(p.split("Question: ")[1].removesuffix("\nSQL:"), a.strip()) for p, a in pairs]
            for q, sql in shots[10:]:
                f.write(json.dumps(record(t, rows, q, sql, shots[:10])) + "\n")
    print(f"wrote {n_train} training sequences ({n_q} questions), {n_eval_tables * per_table} held-out questions "
          f"and {n_eval_tables * per_table} opaque-table questions to {out}")


def record(t, rows, q, sql, shots):
    """One evaluation question in eval.py's format; `shots` are (question, sql) pairs."""
    return {"table": t["name"], "schema": [[c.id, c.type] for c in t["cols"]], "rows": rows,
            "prompt": f"Table: {schema(t)}\nQuestion: {q}\nSQL:", "gold": sql,
            "shots": [f"Question: {a}\nSQL: {b}\n" for a, b in shots]}


if __name__ == "__main__":
    main()
