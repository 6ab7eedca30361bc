//! `docs/http-api.md`: the reference page, rendered from the OpenAPI
//! document (not from the types directly), so that the page says what the
//! served document says.

use std::fmt::Write as _;

use serde_json::Value;

use crate::routes::Route;

/// The page for `document` (the JSON of [`crate::openapi::document`]).
pub fn render(document: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# HTTP API reference\n");
    let _ = writeln!(
        out,
        "<!-- Generated from docs/openapi.json by `cargo xtask openapi`; do not edit. -->\n"
    );
    if let Some(description) = document["info"]["description"].as_str() {
        let _ = writeln!(out, "{description}\n");
    }
    let _ = writeln!(
        out,
        "The machine-readable description is `GET /openapi.json` (OpenAPI {}), committed as \
         [`openapi.json`](openapi.json).\n",
        document["openapi"].as_str().unwrap_or("3.1")
    );
    let _ = writeln!(out, "| method | path | token | what |\n|---|---|---|---|");
    for route in Route::ALL {
        let _ = writeln!(
            out,
            "| {} | [`{}`](#{}) | {} | {} |",
            route.method().as_str(),
            route.path(),
            anchor(route),
            route.access().as_str(),
            route.summary()
        );
    }
    out.push_str("\n## Routes\n");
    for route in Route::ALL {
        let op = &document["paths"][route.path()][route.method().as_str().to_lowercase()];
        let _ = writeln!(
            out,
            "\n### {} `{}`\n\n{}\n\nToken: **{}**.",
            route.method().as_str(),
            route.path(),
            op["summary"].as_str().unwrap_or_default(),
            route.access().as_str()
        );
        if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
            out.push_str("\nParameters:\n\n| name | in | what |\n|---|---|---|\n");
            for p in params {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} |",
                    text(&p["name"]),
                    text(&p["in"]),
                    cell(p["description"].as_str().unwrap_or("")),
                );
            }
        }
        if let Some(body) = op["requestBody"].as_object() {
            let required = body.get("required").and_then(Value::as_bool).unwrap_or(false);
            let _ = writeln!(
                out,
                "\nRequest body ({}): {}.",
                if required { "required" } else { "optional" },
                schema_link(&body["content"]["application/json"]["schema"])
            );
        }
        out.push_str("\nAnswers:\n\n| status | body | what |\n|---|---|---|\n");
        if let Some(responses) = op["responses"].as_object() {
            for (status, response) in responses {
                let (media, schema) = response["content"]
                    .as_object()
                    .and_then(|c| c.iter().next())
                    .map(|(media, content)| (media.as_str(), &content["schema"]))
                    .unwrap_or(("", &Value::Null));
                let body = match schema.get("$ref") {
                    Some(_) => schema_link(schema),
                    None => format!("`{media}`: {}", schema["description"].as_str().unwrap_or("")),
                };
                let _ = writeln!(
                    out,
                    "| {status} | {} | {} |",
                    cell(&body),
                    cell(response["description"].as_str().unwrap_or(""))
                );
            }
        }
    }
    out.push_str("\n## Schemas\n");
    if let Some(schemas) = document["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            render_schema(&mut out, name, schema);
        }
    }
    out
}

fn render_schema(out: &mut String, name: &str, schema: &Value) {
    let _ = writeln!(out, "\n### {name}\n");
    if let Some(description) = schema["description"].as_str() {
        let _ = writeln!(out, "{}\n", description.trim());
    }
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values.iter().map(|v| format!("`{}`", text(v))).collect();
        let _ = writeln!(out, "One of {}.", values.join(", "));
        return;
    }
    let properties = object_properties(schema);
    if properties.is_empty() {
        let _ = writeln!(out, "A JSON {}.", type_of(schema));
        return;
    }
    let required: Vec<&str> = object_required(schema);
    out.push_str("| field | type | what |\n|---|---|---|\n");
    for (field, property) in properties {
        let _ = writeln!(
            out,
            "| `{field}`{} | {} | {} |",
            if required.contains(&field.as_str()) {
                ""
            } else {
                " (optional)"
            },
            cell(&type_of(property)),
            cell(property["description"].as_str().unwrap_or("").trim())
        );
    }
}

/// The properties of an object schema, those of its `allOf` parts included.
fn object_properties(schema: &Value) -> Vec<(&String, &Value)> {
    let mut properties: Vec<(&String, &Value)> = schema["properties"]
        .as_object()
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        properties.extend(object_properties(part));
    }
    properties
}

fn object_required(schema: &Value) -> Vec<&str> {
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        required.extend(object_required(part));
    }
    required
}

/// A schema's type, in a few words, with links to named schemas.
fn type_of(schema: &Value) -> String {
    if schema.get("$ref").is_some() {
        return schema_link(schema);
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(parts) = schema[combinator].as_array() {
            let parts: Vec<String> = parts.iter().map(type_of).collect();
            return parts.join(" or ");
        }
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds.iter().map(text).collect::<Vec<_>>().join(" or "),
        Value::String(kind) => kind.clone(),
        _ => "any".to_owned(),
    };
    if kind.starts_with("array") {
        return kind.replacen("array", &format!("array of {}", type_of(&schema["items"])), 1);
    }
    if kind.starts_with("object") && schema["additionalProperties"].is_object() {
        return format!("map of {}", type_of(&schema["additionalProperties"]));
    }
    kind
}

fn schema_link(schema: &Value) -> String {
    let name = schema["$ref"]
        .as_str()
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or("?");
    format!("[`{name}`](#{})", name.to_lowercase())
}

fn anchor(route: Route) -> String {
    let heading = format!("{} {}", route.method().as_str(), route.path());
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => Some(c),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string())
}

/// `text` made safe for a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
