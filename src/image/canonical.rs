//! The one JSON serializer for every document whose digest matters.
//!
//! oci-spec keeps maps in `HashMap`s, whose order changes from run to run;
//! serializing through here sorts every object's keys and writes compact
//! JSON, so the same document always has the same bytes and digest.

use serde::Serialize;
use serde_json::{Map, Value};

/// `value` as compact JSON with every object's keys sorted.
pub fn to_canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("image documents always serialize");
    serde_json::to_vec(&sorted(value)).expect("a JSON value always serializes")
}

/// `value` with every object's keys sorted, recursively.
pub fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted(v)))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn keys_are_sorted_at_every_depth() {
        let mut inner = HashMap::new();
        for key in ["z", "a", "m", "b", "y"] {
            inner.insert(key, 1);
        }
        let doc = serde_json::json!({"b": [{"d": 1, "c": inner}], "a": null});
        assert_eq!(
            String::from_utf8(to_canonical_json(&doc)).unwrap(),
            r#"{"a":null,"b":[{"c":{"a":1,"b":1,"m":1,"y":1,"z":1},"d":1}]}"#
        );
    }
}
