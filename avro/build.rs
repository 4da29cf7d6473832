//! Generates Rust types from the `.avsc` contracts under `schemas/` into `OUT_DIR/contract.rs`.
//!
//! The schemas are the single source of truth; the generated code is never edited by hand.
//! Only the Avro shapes the saga uses are supported (record, array, enum, string, int, long and
//! `bytes` with logicalType decimal); anything else fails the build with the schema's name, so a
//! contract change that needs a new shape is noticed here and not at run time.

use serde_json::Value as Json;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("schemas");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect_avsc(&root, &mut files);
    files.sort();

    let mut out = String::new();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let text = std::fs::read_to_string(file).unwrap();
        let json: Json =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", file.display()));
        let mut generator = Generator::default();
        let top = generator.record(&json);
        out.push_str(&generator.code);
        let namespace = json["namespace"].as_str().unwrap_or_default();
        writeln!(
            out,
            "impl crate::Event for {top} {{\n\
             const FULL_NAME: &'static str = \"{namespace}.{top}\";\n\
             const SCHEMA_JSON: &'static str = include_str!({path:?});\n\
             fn event_id(&self) -> &str {{ &self.event_id }}\n\
             fn order_id(&self) -> &str {{ &self.order_id }}\n\
             fn into_value(self) -> apache_avro::types::Value {{ {top}::into_value(self) }}\n\
             fn from_value(value: &apache_avro::types::Value) -> Result<Self, crate::ContractError> {{ {top}::from_value(value) }}\n\
             }}\n",
            path = file.display().to_string(),
        )
        .unwrap();
    }
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("contract.rs");
    std::fs::write(dest, out).unwrap();
}

fn collect_avsc(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_avsc(&path, files);
        } else if path.extension().is_some_and(|e| e == "avsc") {
            files.push(path);
        }
    }
}

#[derive(Default)]
struct Generator {
    code: String,
}

/// How one Avro type maps to Rust: the Rust type and the expressions converting to/from
/// `apache_avro::types::Value` (`{v}` stands for the input expression).
struct Mapping {
    rust: String,
    to_value: String,
    from_value: String,
}

impl Generator {
    /// Emits a struct for a record (and, first, everything it contains); returns its name.
    fn record(&mut self, json: &Json) -> String {
        let name = json["name"].as_str().expect("record without name").to_string();
        let mut fields = Vec::new();
        for field in json["fields"].as_array().expect("record without fields") {
            let avro_name = field["name"].as_str().unwrap().to_string();
            let mapping = self.mapping(&field["type"], &name, &avro_name);
            let doc = field["doc"].as_str().map(str::to_string);
            fields.push((avro_name, mapping, doc));
        }
        let doc = json["doc"].as_str().unwrap_or("Generated from the Avro contract.");
        let mut code = String::new();
        writeln!(code, "/// {doc}\n#[derive(Debug, Clone, PartialEq, Eq)]\npub struct {name} {{").unwrap();
        for (avro_name, mapping, doc) in &fields {
            if let Some(doc) = doc {
                writeln!(code, "    /// {doc}").unwrap();
            }
            writeln!(code, "    pub {}: {},", snake(avro_name), mapping.rust).unwrap();
        }
        writeln!(code, "}}\n\nimpl {name} {{").unwrap();
        writeln!(code, "    /// The Avro value of this record, field order as in the schema.").unwrap();
        writeln!(code, "    pub fn into_value(self) -> apache_avro::types::Value {{").unwrap();
        writeln!(code, "        apache_avro::types::Value::Record(vec![").unwrap();
        for (avro_name, mapping, _) in &fields {
            let input = format!("self.{}", snake(avro_name));
            writeln!(code, "            ({avro_name:?}.to_string(), {}),", mapping.to_value.replace("{v}", &input))
                .unwrap();
        }
        writeln!(code, "        ])\n    }}\n").unwrap();
        writeln!(code, "    /// Reads the record from a decoded Avro value; fields are matched by name.").unwrap();
        writeln!(
            code,
            "    pub fn from_value(value: &apache_avro::types::Value) -> Result<Self, crate::ContractError> {{"
        )
        .unwrap();
        writeln!(code, "        let fields = crate::codec::record_fields(value, {name:?})?;").unwrap();
        writeln!(code, "        Ok(Self {{").unwrap();
        for (avro_name, mapping, _) in &fields {
            let input = format!("crate::codec::field(&fields, {name:?}, {avro_name:?})?");
            writeln!(code, "            {}: {},", snake(avro_name), mapping.from_value.replace("{v}", &input)).unwrap();
        }
        writeln!(code, "        }})\n    }}\n}}\n").unwrap();
        self.code.push_str(&code);
        name
    }

    fn mapping(&mut self, ty: &Json, record: &str, field: &str) -> Mapping {
        let context = format!("{record}.{field}");
        match ty {
            Json::String(s) => match s.as_str() {
                "string" => simple(
                    "String",
                    "apache_avro::types::Value::String({v})",
                    "crate::codec::string({v}, CTX)?",
                    &context,
                ),
                "int" => simple("i32", "apache_avro::types::Value::Int({v})", "crate::codec::int({v}, CTX)?", &context),
                "long" => {
                    simple("i64", "apache_avro::types::Value::Long({v})", "crate::codec::long({v}, CTX)?", &context)
                }
                other => panic!("{context}: Avro type {other} is not supported by the generator"),
            },
            Json::Object(o) => match (o["type"].as_str(), o.get("logicalType").and_then(Json::as_str)) {
                (Some("bytes"), Some("decimal")) => {
                    assert_eq!(
                        o.get("scale").and_then(Json::as_u64),
                        Some(2),
                        "{context}: only scale-2 decimals (money) are supported"
                    );
                    simple("crate::Money", "{v}.to_avro()", "crate::Money::from_avro({v}, CTX)?", &context)
                }
                (Some("array"), _) => {
                    let inner = self.mapping(&o["items"], record, field);
                    Mapping {
                        rust: format!("Vec<{}>", inner.rust),
                        to_value: format!(
                            "apache_avro::types::Value::Array({{v}}.into_iter().map(|item| {}).collect())",
                            inner.to_value.replace("{v}", "item")
                        ),
                        from_value: format!(
                            "crate::codec::array({{v}}, {context:?})?.iter().map(|item| Ok({})).collect::<Result<Vec<_>, crate::ContractError>>()?",
                            inner.from_value.replace("{v}", "item")
                        ),
                    }
                }
                (Some("record"), _) => {
                    let name = self.record(ty);
                    Mapping {
                        rust: name.clone(),
                        to_value: "{v}.into_value()".into(),
                        from_value: format!("{name}::from_value({{v}})?"),
                    }
                }
                (Some("enum"), _) => {
                    let name = self.enumeration(ty);
                    Mapping {
                        rust: name.clone(),
                        to_value: "{v}.into_value()".into(),
                        from_value: format!("{name}::from_value({{v}})?"),
                    }
                }
                (other, _) => panic!("{context}: Avro type {other:?} is not supported by the generator"),
            },
            other => panic!("{context}: Avro type {other} is not supported by the generator"),
        }
    }

    fn enumeration(&mut self, json: &Json) -> String {
        let name = json["name"].as_str().unwrap().to_string();
        let symbols: Vec<&str> = json["symbols"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
        let mut code = format!(
            "/// Avro enum `{name}`.\n#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]\n#[allow(non_camel_case_types)]\npub enum {name} {{\n"
        );
        for symbol in &symbols {
            writeln!(code, "    {symbol},").unwrap();
        }
        writeln!(code, "}}\n\nimpl {name} {{\n    /// Every symbol, in schema order (the order is the wire index).\n    pub const SYMBOLS: &'static [&'static str] = &{symbols:?};").unwrap();
        writeln!(code, "    /// The symbol as written in the schema.\n    pub fn as_str(self) -> &'static str {{ Self::SYMBOLS[self as usize] }}").unwrap();
        writeln!(code, "    /// Looks a symbol up by name.\n    pub fn from_symbol(symbol: &str) -> Option<Self> {{\n        match symbol {{").unwrap();
        for symbol in &symbols {
            writeln!(code, "            {symbol:?} => Some(Self::{symbol}),").unwrap();
        }
        writeln!(code, "            _ => None,\n        }}\n    }}").unwrap();
        writeln!(code, "    fn into_value(self) -> apache_avro::types::Value {{ apache_avro::types::Value::Enum(self as u32, self.as_str().to_string()) }}").unwrap();
        writeln!(
            code,
            "    fn from_value(value: &apache_avro::types::Value) -> Result<Self, crate::ContractError> {{\n        let symbol = crate::codec::enum_symbol(value, {name:?})?;\n        Self::from_symbol(symbol).ok_or_else(|| crate::ContractError::Shape(format!(\"{name}: unknown symbol {{symbol}}\")))\n    }}\n}}\n"
        )
        .unwrap();
        self.code.push_str(&code);
        name
    }
}

fn simple(rust: &str, to_value: &str, from_value: &str, context: &str) -> Mapping {
    Mapping {
        rust: rust.into(),
        to_value: to_value.into(),
        from_value: from_value.replace("CTX", &format!("{context:?}")),
    }
}

/// camelCase → snake_case for field names.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
