//! Finding fields an OpenAPI v3 schema does not declare: what the API server would prune.
//! Standalone mode reports them, so a misspelt field is not silently ignored.

use serde_json::Value;

/// Paths (`spec.priorities[0].nodeNme`) of every field in the object `value` that the CRD
/// root `schema` does not declare. `apiVersion`, `kind` and `metadata` at the root are
/// always allowed (the API server declares them implicitly). Objects with
/// `x-kubernetes-preserve-unknown-fields` or `additionalProperties` accept any key; objects
/// without `properties` are not checked.
pub fn unknown_fields(schema: &Value, value: &Value) -> Vec<String> {
    const IMPLICIT: [&str; 3] = ["apiVersion", "kind", "metadata"];
    let mut out = Vec::new();
    walk(schema, value, "", &mut out);
    out.retain(|path| !IMPLICIT.contains(&path.as_str()));
    out.sort();
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    if schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        return;
    }
    match value {
        Value::Object(fields) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, child) in fields {
                    match properties.get(key) {
                        Some(child_schema) => walk(child_schema, child, &join(path, key), out),
                        None => out.push(join(path, key)),
                    }
                }
            } else if let Some(map_schema) = schema.get("additionalProperties")
                && map_schema.is_object()
            {
                for (key, child) in fields {
                    walk(map_schema, child, &join(path, key), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn misspelt_fields_are_found_at_every_depth() {
        let schema = json!({"properties": {
            "spec": {"properties": {
                "preempt": {"type": "boolean"},
                "priorities": {"items": {"properties": {"nodeName": {}}}},
                "labels": {"additionalProperties": {"type": "string"}},
                "free": {"x-kubernetes-preserve-unknown-fields": true}
            }},
        }});
        let value = json!({
            "apiVersion": "kubevrrp.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {"name": "x", "whatever": 1},
            "spec": {
                "preemt": false,
                "preempt": true,
                "priorities": [{"nodeName": "a"}, {"nodeNme": "b"}],
                "labels": {"any": "thing"},
                "free": {"anything": {"goes": 1}}
            },
            "extra": 1
        });
        assert_eq!(
            unknown_fields(&schema, &value),
            ["extra", "spec.preemt", "spec.priorities[1].nodeNme"]
        );
    }

    #[test]
    fn a_value_matching_its_schema_has_no_unknown_fields() {
        let schema = json!({"properties": {"a": {"items": {"properties": {"b": {}}}}}});
        assert!(unknown_fields(&schema, &json!({"a": [{"b": 1}]})).is_empty());
    }
}
