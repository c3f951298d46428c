//! The SQL grammar of a table line (src/grammar/sql.rs): table parsing, every SQL form of the
//! training-data generator (tools/sql/sqlgen.py) accepted byte by byte, foreign names and
//! mistyped literals refused, and ~1,000 real generator examples
//! each accepted by the grammar of its own table line.

use gander::grammar::{parse_table, sql_gbnf, sql_grammar, ColumnType, Grammar, Matcher, TokenMask, TokenTrie};
use gander::tokenizer::Tokenizer;

const EMPLOYEES: &str = "Table: employees(name TEXT, city TEXT, salary INTEGER, rating REAL)";

fn accepts(g: &Grammar, s: &str) -> bool {
    let mut m = Matcher::new(g);
    m.accept_bytes(s.as_bytes()) && m.can_end()
}

fn bad_table(line: &str) -> String {
    match parse_table(line) {
        Ok(t) => panic!("accepted {line:?}: {t:?}"),
        Err(e) => {
            assert_eq!(e.code(), "BAD_INPUT");
            e.to_string()
        }
    }
}

#[test]
fn parse_table_accepts() {
    let t = parse_table(EMPLOYEES).unwrap();
    assert_eq!(t.name, "employees");
    let cols: Vec<(&str, ColumnType)> = t.columns.iter().map(|c| (c.name.as_str(), c.ty)).collect();
    use ColumnType::*;
    assert_eq!(cols, [("name", Text), ("city", Text), ("salary", Integer), ("rating", Real)]);
    assert_eq!(t.schema(), EMPLOYEES.trim_start_matches("Table: "));

    let t = parse_table(
        "  _t2 ( a varchar(20) , b Int, c FLOAT, d NUMERIC, e DECIMAL(10, 2), f bigint primary key,\
         g DOUBLE PRECISION, h character varying(8), i boolean, j date, k CHAR (3) NOT NULL )  ",
    )
    .unwrap();
    assert_eq!(t.name, "_t2");
    let types: Vec<ColumnType> = t.columns.iter().map(|c| c.ty).collect();
    assert_eq!(types, [Text, Integer, Real, Real, Real, Integer, Real, Text, Integer, Text, Text]);
    // Without `Table: `, with it, and with a trailing line break.
    assert_eq!(parse_table("t(x TEXT)").unwrap(), parse_table("Table: t(x text)\n").unwrap());
}

#[test]
fn parse_table_refuses() {
    for (line, want) in [
        ("employees", "sql table: expected `(` after the table name"),
        ("Table: (a TEXT)", "sql table: expected the table name before `(`"),
        ("employees(a TEXT", "sql table: expected `)` at the end of the column list"),
        ("employees()", "sql table: table `employees` has no columns"),
        ("employees(  )", "sql table: table `employees` has no columns"),
        ("employees(a TEXT, A INTEGER)", "sql table: duplicate column `A`"),
        ("2x(a TEXT)", "sql table: bad table name `2x` (letters, digits and `_`, not starting with a digit)"),
        ("my table(a TEXT)", "sql table: bad table name `my table` (letters, digits and `_`, not starting with a digit)"),
        ("t(1a TEXT)", "sql table: bad column name `1a` (letters, digits and `_`, not starting with a digit)"),
        ("t(\"a\" TEXT)", "sql table: bad column name `\"a\"` (letters, digits and `_`, not starting with a digit)"),
        ("t(a-b TEXT)", "sql table: bad column name `a-b` (letters, digits and `_`, not starting with a digit)"),
        ("t(a)", "sql table: column `a` has no type (TEXT, INTEGER or REAL)"),
        ("t(a TEXT,)", "sql table: empty column definition (a stray `,`?)"),
        ("t(a BLOB)", "sql table: column `a`: unknown type `BLOB` (use TEXT, INTEGER or REAL)"),
        ("t(a VARCHAR(x))", "sql table: column `a`: bad type arguments in `VARCHAR(x)` (expected numbers, as in VARCHAR(20))"),
        ("t(a TEXT 5)", "sql table: column `a`: unexpected `5` in the type `TEXT 5`"),
        ("t(a TEXT))", "sql table: unbalanced `)` in the column list"),
        ("t(a TEXT)\nQuestion: x", "sql table: expected one line (`name(col TYPE, ...)`)"),
    ] {
        assert_eq!(bad_table(line), want, "{line:?}");
    }
    assert!(sql_grammar("nope").is_err());
}

/// Every form sqlgen.py writes (its eleven question kinds), on one table, then the widenings.
#[test]
fn generator_forms_are_accepted_and_foreign_names_refused() {
    let g = sql_grammar(EMPLOYEES).unwrap();
    for sql in [
        "SELECT COUNT(*) FROM employees;",                       // count
        "SELECT COUNT(*) FROM employees WHERE city = 'Berlin';", // count_where
        "SELECT COUNT(*) FROM employees WHERE salary > 52000;",  // count_num_where
        "SELECT COUNT(*) FROM employees WHERE rating < 7;",
        "SELECT AVG(salary) FROM employees;", // agg
        "SELECT MAX(rating) FROM employees;",
        "SELECT SUM(salary) FROM employees WHERE name = 'Blue Sky';", // agg_where
        "SELECT city, COUNT(*) FROM employees GROUP BY city;",        // group_count
        "SELECT city, MIN(rating) FROM employees GROUP BY city;",     // group_agg
        "SELECT DISTINCT city FROM employees;",                       // distinct
        "SELECT name FROM employees ORDER BY salary DESC LIMIT 1;",   // order
        "SELECT city FROM employees ORDER BY rating ASC LIMIT 5;",
        "SELECT salary FROM employees WHERE city = 'Oslo';", // select_where
        "SELECT name FROM employees WHERE rating > 3;",      // select_num_where
        // The widenings: `*`, COUNT(col), COUNT(DISTINCT col), AND/OR, more operators, reals
        // with fractions, negative numbers, ORDER BY an aggregate, a quote in a string.
        "SELECT * FROM employees WHERE city != 'Rome' AND salary >= 100 OR rating <= 2.5;",
        "SELECT COUNT(name), COUNT(DISTINCT city) FROM employees WHERE salary = -3;",
        "SELECT city, COUNT(*) FROM employees GROUP BY city ORDER BY COUNT(*) DESC LIMIT 3;",
        "SELECT DISTINCT city, name FROM employees ORDER BY name;",
        "SELECT name FROM employees WHERE name = 'O''Brien' LIMIT 10;",
        "SELECT name, city, salary FROM employees;",
    ] {
        for ending in ["", "\n"] {
            let s = format!(" {sql}{ending}");
            assert!(accepts(&g, &s), "should accept {s:?}");
        }
    }
    for s in [
        " SELECT AVG(age) FROM employees;",                         // no such column
        " SELECT COUNT(*) FROM employees WHERE country = 'Peru';",  // no such column
        " SELECT name FROM employee;",                              // wrong table name
        " SELECT name FROM employees_2;",                           // wrong table name
        " SELECT name FROM employees WHERE salary = '52000';",      // quoted literal, INTEGER
        " SELECT name FROM employees WHERE rating > '3';",          // quoted literal, REAL
        " SELECT name FROM employees WHERE salary > 2.5;",          // fraction on an INTEGER
        " SELECT name FROM employees WHERE city = Berlin;",         // unquoted text
        " SELECT name FROM employees WHERE city < 'Berlin';",       // order on text
        " SELECT name FROM employees WHERE city = 'Ber\nlin';",     // line break in a string
        " SELECT name FROM employees WHERE city = 'O'Brien';",      // unescaped quote
        " SELECT COUNT(*) FROM employees",                          // missing `;`
        " SELECT COUNT(*) FROM employees;\n\n",                     // more than one line break
        "SELECT COUNT(*) FROM employees;",                          // missing leading space
        " SELECT  COUNT(*) FROM employees;",                        // double space
        " SELECT COUNT( * ) FROM employees;",                       // spaces inside
        " SELECT AVG(city) FROM employees;",                        // numeric aggregate on text
        " select count(*) from employees;",                         // lower-case keywords
        " SELECT name FROM employees; SELECT name FROM employees;", // a second statement
    ] {
        assert!(!accepts(&g, s), "should refuse {s:?}");
    }
}

/// The point of the grammar: at the table name, the byte mask allows only the table's name; at
/// a column, only the first letters of the table's columns.
#[test]
fn masks_allow_only_the_tables_names() {
    let g = sql_grammar(EMPLOYEES).unwrap();
    let trie = TokenTrie::new(&Tokenizer::Bytes, 256);
    let mut mask = TokenMask::new(256);
    let allowed = |prefix: &str, mask: &mut TokenMask| -> Vec<u8> {
        let mut m = Matcher::new(&g);
        assert!(m.accept_bytes(prefix.as_bytes()), "{prefix:?}");
        m.allowed(&trie, mask);
        mask.iter().map(|t| t as u8).collect()
    };
    assert_eq!(allowed(" SELECT name FROM ", &mut mask), b"e");
    assert_eq!(allowed(" SELECT MAX(", &mut mask), b"rs"); // rating, salary: numeric only
    assert_eq!(allowed(" SELECT DISTINCT ", &mut mask), b"cnrs");
    assert_eq!(allowed(" SELECT * FROM employees WHERE salary > 5", &mut mask), b" 0123456789;");
}

#[test]
fn gbnf_text_parses_and_names_only_the_table() {
    let t = parse_table("north_hotels(city TEXT, price REAL, year INTEGER)").unwrap();
    let text = sql_gbnf(&t);
    assert!(text.starts_with("root ::= \" SELECT \" select \" FROM north_hotels\""), "{text}");
    assert!(text.contains("col ::= \"city\" | \"price\" | \"year\""), "{text}");
    assert!(text.contains("num ::= \"year\" | \"price\""), "{text}");
    Grammar::parse_gbnf(&text).unwrap();
}

/// Real examples from the generator: training sequences (several solved questions per table, the
/// primed-prompt contract format) and evaluation questions with their shots, for tables of their
/// own, plain, opaque and made-up; every answer must be accepted by the grammar of its table line.
#[test]
fn every_generated_example_is_accepted() {
    let dir = std::env::temp_dir().join(format!("gander-sqlgen-{}", std::process::id()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/sql/sqlgen.py");
    let run =
        std::process::Command::new("python3").arg(script).arg(&dir).args(["--train", "400", "--eval-tables", "8", "--per-table", "5", "--seed", "7"]).output();
    // python3 is on every machine of the project (the data generator needs it); its absence
    // is a failure, not a skip.
    let out = run.unwrap_or_else(|e| panic!("python3 runs tools/sql/sqlgen.py: {e}"));
    assert!(out.status.success(), "sqlgen.py: {}", String::from_utf8_lossy(&out.stderr));
    // (table line, answer) pairs
    let mut examples: Vec<(String, String)> = Vec::new();
    let train = std::fs::read_to_string(dir.join("train.jsonl")).unwrap();
    for line in train.lines().filter(|l| !l.is_empty()) {
        let seq: Vec<(String, String)> = serde_json::from_str(line).unwrap();
        let table_line = seq[0].0.split_once('\n').unwrap().0.to_string();
        for (i, (ctx, ans)) in seq.iter().enumerate() {
            // the contract: the Table line once, then `Question: …\nSQL:` each
            assert_eq!(ctx.starts_with("Table: "), i == 0, "{ctx:?}");
            assert!(ctx.ends_with("\nSQL:") && ctx.contains("Question: "), "{ctx:?}");
            examples.push((table_line.clone(), ans.clone()));
        }
    }
    for file in ["eval.jsonl", "opaque.jsonl"] {
        let eval = std::fs::read_to_string(dir.join(file)).unwrap();
        for line in eval.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let table_line = v["prompt"].as_str().unwrap().split_once('\n').unwrap().0.to_string();
            examples.push((table_line.clone(), format!(" {}\n", v["gold"].as_str().unwrap())));
            for shot in v["shots"].as_array().unwrap() {
                let (q, a) = shot.as_str().unwrap().split_once("\nSQL:").unwrap();
                assert!(q.starts_with("Question: "), "{q:?}");
                examples.push((table_line.clone(), a.to_string()));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(examples.len() >= 1_000, "{} examples", examples.len());

    let mut kinds = std::collections::BTreeSet::new();
    let other = sql_grammar("Table: zz_other(zz_a TEXT, zz_b INTEGER)").unwrap();
    for (table_line, answer) in &examples {
        assert!(table_line.starts_with("Table: "), "{table_line:?}");
        let g = sql_grammar(table_line).unwrap_or_else(|e| panic!("{table_line}: {e}"));
        assert!(accepts(&g, answer), "{table_line}: refused {answer:?}");
        // Without the final line break too: generation may stop at the `;`.
        assert!(accepts(&g, answer.trim_end_matches('\n')), "{answer:?}");
        // The same answer against another table's grammar must fail (names differ).
        assert!(!accepts(&other, answer), "{answer:?}");
        kinds.insert(shape(answer));
    }
    // The generator's shapes were seen (so the sample covers its grammar of queries).
    assert!(kinds.len() >= 20, "{} shapes: {kinds:?}", kinds.len());
}

/// A coarse shape of a query (keywords and aggregates only), to count the templates covered.
fn shape(sql: &str) -> String {
    let words: Vec<&str> = sql
        .split([' ', '(', ','])
        .filter(|w| ["SELECT", "DISTINCT", "COUNT", "SUM", "AVG", "MIN", "MAX", "WHERE", "GROUP", "ORDER", "LIMIT", "=", "<", ">"].contains(w))
        .collect();
    let shape = words.join(" ");
    shape.replace("SUM", "AGG").replace("AVG", "AGG").replace("MIN", "AGG").replace("MAX", "AGG").replace("<", "CMP").replace(">", "CMP")
}
