//! JSON schema to GBNF: the compact JSON values (no whitespace, as `serde_json::to_string` writes)
//! that a schema accepts, for the supported subset of keywords (listed on
//! [`super::json_schema_to_gbnf`]). Anything else is refused by name, never ignored, so a schema
//! that constrains more than Gander understands cannot silently produce invalid output.
//!
//! Objects: properties come in the declared order (serde_json's `preserve_order` feature keeps
//! it), the required ones always, the others optionally, with commas placed by two families of
//! rules: `first_i` (nothing written yet) and `after_i` (something written, so a comma leads).

use super::parse::MAX_REPEAT;
use crate::error::{Error, Result};
use serde_json::{Map, Value};

const KEYWORDS: &[&str] =
    &["type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "minLength", "maxLength", "enum", "const", "anyOf"];
const ANNOTATIONS: &[&str] = &["$schema", "$id", "$comment", "title", "description", "default", "examples"];
const MAX_DEPTH: usize = 64;

/// Shared rules. `\u` escapes exclude lone surrogates (serde_json refuses them); numbers are
/// bounded so they parse to finite doubles.
const BASE: &str = r#"json-value ::= json-object | json-array | json-string | json-number | json-boolean | json-null
json-object ::= "{" ( json-string ":" json-value ( "," json-string ":" json-value )* )? "}"
json-array ::= "[" ( json-value ( "," json-value )* )? "]"
json-string ::= "\"" json-char* "\""
json-char ::= [^"\\\x00-\x1f] | "\\" ( ["\\/bfnrt] | "u" json-hex4 )
json-hex4 ::= [0-9a-cA-Ce-fE-F] json-hex json-hex json-hex | [dD] [0-7] json-hex json-hex
json-hex ::= [0-9a-fA-F]
json-integer ::= "-"? ( "0" | [1-9] [0-9]{0,19} )
json-number ::= json-integer ( "." [0-9]{1,20} )? ( [eE] [-+]? [0-9]{1,2} )?
json-boolean ::= "true" | "false"
json-null ::= "null"
"#;

/// The grammar of any compact JSON value.
pub(super) fn any_json_gbnf() -> String {
    format!("root ::= json-value\n{BASE}")
}

pub(super) fn to_gbnf(schema: &Value) -> Result<String> {
    let mut g = Gen { rules: Vec::new() };
    let root = g.value(schema, "", 0)?;
    Ok(format!("root ::= {root}\n{}\n{BASE}", g.rules.join("\n")))
}

fn err(path: &str, msg: impl std::fmt::Display) -> Error {
    let at = if path.is_empty() { "the root" } else { path };
    Error::BadInput(format!("json schema: {msg} at {at}"))
}

/// A GBNF string literal matching exactly `text`.
fn literal(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\U{:08X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Compact JSON text of `v` (an `enum` value, a property name).
fn json_text(v: &Value) -> String {
    // Serialising a `Value` cannot fail (its map keys are strings).
    serde_json::to_string(v).unwrap_or_default()
}

fn pointer_token(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// A repetition count: a non-negative integer no larger than the grammar allows.
fn count(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<u32>> {
    let Some(v) = obj.get(key) else {
        return Ok(None);
    };
    match v.as_u64() {
        Some(n) if n <= u64::from(MAX_REPEAT) => Ok(Some(n as u32)),
        Some(_) => Err(err(path, format!("`{key}` above the supported {MAX_REPEAT}"))),
        None => Err(err(path, format!("`{key}` must be a non-negative integer"))),
    }
}

/// `{min,max}` in GBNF, or nothing for `{1,1}`.
fn reps(min: u32, max: Option<u32>) -> String {
    match max {
        Some(m) if m == min && m == 1 => String::new(),
        Some(m) if m == min => format!("{{{m}}}"),
        Some(m) => format!("{{{min},{m}}}"),
        None => format!("{{{min},}}"),
    }
}

fn type_matches(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

struct Gen {
    rules: Vec<String>,
}

impl Gen {
    /// Add a rule and return its name.
    fn rule(&mut self, body: String) -> String {
        let name = format!("s{}", self.rules.len());
        self.rules.push(format!("{name} ::= {body}"));
        name
    }

    /// A GBNF expression for the values `schema` accepts.
    fn value(&mut self, schema: &Value, path: &str, depth: usize) -> Result<String> {
        if depth > MAX_DEPTH {
            return Err(err(path, format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let obj = match schema {
            Value::Bool(true) => return Ok("json-value".into()),
            Value::Bool(false) => return Err(err(path, "the schema `false` allows no value")),
            Value::Object(o) => o,
            _ => return Err(err(path, "a schema must be an object or a boolean")),
        };
        if let Some(k) = obj.keys().find(|k| !KEYWORDS.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str())) {
            return Err(err(path, format!("unsupported keyword `{k}`")));
        }
        if let Some(any) = obj.get("anyOf") {
            if let Some(k) = obj.keys().find(|k| KEYWORDS.contains(&k.as_str()) && *k != "anyOf") {
                return Err(err(path, format!("`anyOf` together with `{k}` is not supported (move `{k}` into each branch)")));
            }
            let branches = any.as_array().filter(|a| !a.is_empty()).ok_or_else(|| err(path, "`anyOf` must be a non-empty array"))?;
            let alts = branches.iter().enumerate().map(|(i, s)| self.value(s, &format!("{path}/anyOf/{i}"), depth + 1)).collect::<Result<Vec<_>>>()?;
            return Ok(self.rule(alts.join(" | ")));
        }
        let types = self.types(obj, path)?;
        if let Some(values) = self.enum_values(obj, path)? {
            let kept: Vec<String> =
                values.iter().filter(|v| types.is_empty() || types.iter().any(|t| type_matches(v, t))).map(|v| literal(&json_text(v))).collect();
            if kept.is_empty() {
                return Err(err(path, "no `enum`/`const` value has the schema's `type`"));
            }
            return Ok(self.rule(kept.join(" | ")));
        }
        let types = if types.is_empty() { inferred_types(obj) } else { types };
        if types.is_empty() {
            return Ok("json-value".into());
        }
        let mut alts = Vec::with_capacity(types.len());
        for t in &types {
            alts.push(match t.as_str() {
                "null" | "boolean" | "integer" | "number" => format!("json-{t}"),
                "string" => self.string(obj, path)?,
                "array" => self.array(obj, path, depth)?,
                "object" => self.object(obj, path, depth)?,
                other => return Err(err(&format!("{path}/type"), format!("unknown type `{other}`"))),
            });
        }
        Ok(match alts.as_slice() {
            [one] => one.clone(),
            _ => self.rule(alts.join(" | ")),
        })
    }

    fn types(&self, obj: &Map<String, Value>, path: &str) -> Result<Vec<String>> {
        let bad = || err(&format!("{path}/type"), "`type` must be a type name or a list of them");
        match obj.get("type") {
            None => Ok(Vec::new()),
            Some(Value::String(t)) => Ok(vec![t.clone()]),
            Some(Value::Array(ts)) if !ts.is_empty() => ts.iter().map(|t| t.as_str().map(str::to_string).ok_or_else(bad)).collect(),
            Some(_) => Err(bad()),
        }
    }

    fn enum_values<'v>(&self, obj: &'v Map<String, Value>, path: &str) -> Result<Option<Vec<&'v Value>>> {
        if let Some(c) = obj.get("const") {
            return Ok(Some(vec![c]));
        }
        match obj.get("enum") {
            None => Ok(None),
            Some(Value::Array(vs)) if !vs.is_empty() => Ok(Some(vs.iter().collect())),
            Some(_) => Err(err(path, "`enum` must be a non-empty array")),
        }
    }

    fn string(&mut self, obj: &Map<String, Value>, path: &str) -> Result<String> {
        let min = count(obj, "minLength", path)?;
        let max = count(obj, "maxLength", path)?;
        if min.is_none() && max.is_none() {
            return Ok("json-string".into());
        }
        let min = min.unwrap_or(0);
        if max.is_some_and(|m| m < min) {
            return Err(err(path, "`maxLength` is below `minLength`"));
        }
        Ok(self.rule(format!("\"\\\"\" json-char{} \"\\\"\"", reps(min, max))))
    }

    fn array(&mut self, obj: &Map<String, Value>, path: &str, depth: usize) -> Result<String> {
        let min = count(obj, "minItems", path)?.unwrap_or(0);
        let max = count(obj, "maxItems", path)?;
        if max.is_some_and(|m| m < min) {
            return Err(err(path, "`maxItems` is below `minItems`"));
        }
        let item = match obj.get("items") {
            Some(s) => self.value(s, &format!("{path}/items"), depth + 1)?,
            None => "json-value".into(),
        };
        let body = match max {
            Some(0) => String::new(),
            _ => {
                let more = format!("( \",\" {item} ){}", reps(min.saturating_sub(1), max.map(|m| m - 1)));
                let more = if max == Some(1) { String::new() } else { more };
                if min == 0 {
                    format!("( {item} {more} )?")
                } else {
                    format!("{item} {more}")
                }
            }
        };
        Ok(self.rule(format!("\"[\" {body} \"]\"")))
    }

    fn object(&mut self, obj: &Map<String, Value>, path: &str, depth: usize) -> Result<String> {
        match obj.get("additionalProperties") {
            None | Some(Value::Bool(false)) => {}
            Some(_) => return Err(err(path, "`additionalProperties` other than `false` is not supported")),
        }
        let props = match obj.get("properties") {
            None => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => return Err(err(path, "`properties` must be an object")),
        };
        let required: Vec<&str> = match obj.get("required") {
            None => Vec::new(),
            Some(Value::Array(r)) => r.iter().map(|v| v.as_str().ok_or_else(|| err(path, "`required` must be a list of names"))).collect::<Result<_>>()?,
            Some(_) => return Err(err(path, "`required` must be a list of names")),
        };
        if let Some(missing) = required.iter().find(|r| !props.contains_key(**r)) {
            return Err(err(path, format!("required property `{missing}` is not in `properties` (and additional properties are not generated)")));
        }
        let mut members = Vec::with_capacity(props.len());
        for (name, schema) in &props {
            let value = self.value(schema, &format!("{path}/properties/{}", pointer_token(name)), depth + 1)?;
            let key = literal(&format!("{}:", json_text(&Value::String(name.clone()))));
            members.push((format!("{key} {value}"), required.contains(&name.as_str())));
        }
        // Build from the last property: `after` = the rest once something was written,
        // `first` = the rest when nothing was written yet.
        let (mut after, mut first) = (String::new(), String::new());
        for (member, required) in members.iter().rev() {
            let new_first = match (required, first.is_empty()) {
                (true, _) => format!("{member} {after}"),
                (false, true) => format!("( {member} {after} )?"),
                (false, false) => format!("{member} {after} | {first}"),
            };
            let new_after = if *required { format!("\",\" {member} {after}") } else { format!("( \",\" {member} )? {after}") };
            first = self.rule(new_first);
            after = self.rule(new_after);
        }
        Ok(self.rule(format!("\"{{\" {first} \"}}\"")))
    }
}

/// Without `type`: the types whose keywords appear (any value when none do).
fn inferred_types(obj: &Map<String, Value>) -> Vec<String> {
    let has = |keys: &[&str]| keys.iter().any(|k| obj.contains_key(*k));
    let mut t = Vec::new();
    if has(&["properties", "required", "additionalProperties"]) {
        t.push("object".to_string());
    }
    if has(&["items", "minItems", "maxItems"]) {
        t.push("array".to_string());
    }
    if has(&["minLength", "maxLength"]) {
        t.push("string".to_string());
    }
    t
}
