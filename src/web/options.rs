//! Options objects from JS: read into a serde struct, with an unknown name refused by name
//! (the known names are the struct's own fields) and a bad value named with its path.

use super::coded;
use js_sys::Object;
use wasm_bindgen::prelude::*;

/// The field names a struct deserialises from, as serde sees them (after `rename_all`): asked
/// of `T`'s `Deserialize` impl itself, so the list of known options cannot drift from the struct.
fn field_names<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    struct Probe(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names read")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> serde::Deserializer<'de> for &mut Probe {
        type Error = Stop;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(self, _: &'static str, fields: &'static [&'static str], _: V) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit unit_struct
            newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut probe = Probe(None);
    let _ = T::deserialize(&mut probe);
    probe.0.unwrap_or(&[])
}

/// Read an options object into `T`, naming an unknown or bad option in the error. Unknown
/// names are refused here, against `T`'s own field names ([`field_names`]): serde-wasm-bindgen
/// looks fields up by name, so serde's `deny_unknown_fields` never sees the others.
pub(super) fn parse_options<T: serde::de::DeserializeOwned + Default>(v: JsValue, what: &str) -> Result<T, JsValue> {
    let known = field_names::<T>();
    if v.is_undefined() || v.is_null() {
        return Ok(T::default());
    }
    if !v.is_object() || js_sys::Array::is_array(&v) {
        return Err(coded("BAD_INPUT", &format!("{what}: options must be an object")));
    }
    for k in Object::keys(&Object::from(v.clone())).iter() {
        let k = k.as_string().unwrap_or_default();
        if !known.contains(&k.as_str()) {
            return Err(coded("BAD_INPUT", &format!("{what}: unknown option `{k}` (known: {})", known.join(", "))));
        }
    }
    serde_path_to_error::deserialize(serde_wasm_bindgen::Deserializer::from(v)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let msg = inner.strip_prefix("Error: ").unwrap_or(&inner);
        if path == "." {
            coded("BAD_INPUT", &format!("{what}: {msg}"))
        } else {
            coded("BAD_INPUT", &format!("{what}: option `{path}`: {msg}"))
        }
    })
}
