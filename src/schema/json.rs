//! The JSON form of edge schemas, as stored under `schemas/`.
//!
//! Only the Arrow types capstream uses are spelled; an unknown type is an error, so a
//! new column type forces this table (and the files) to be updated together.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct SchemaDoc {
    metadata: BTreeMap<String, String>,
    fields: Vec<FieldDoc>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct FieldDoc {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
    nullable: bool,
}

fn type_name(t: &DataType) -> Result<String> {
    Ok(match t {
        DataType::Utf8 => "utf8".into(),
        DataType::Binary => "binary".into(),
        DataType::Boolean => "bool".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::List(f) => format!("list<{}>", type_name(f.data_type())?),
        DataType::FixedSizeList(f, n) => {
            format!("fixed_size_list<{}, {n}>", type_name(f.data_type())?)
        }
        other => {
            return Err(Error::Config(format!(
                "no JSON name for Arrow type {other}"
            )))
        }
    })
}

fn parse_type(s: &str) -> Result<DataType> {
    let s = s.trim();
    Ok(match s {
        "utf8" => DataType::Utf8,
        "binary" => DataType::Binary,
        "bool" => DataType::Boolean,
        "uint8" => DataType::UInt8,
        "uint32" => DataType::UInt32,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "uint64" => DataType::UInt64,
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        _ => {
            if let Some(inner) = s.strip_prefix("list<").and_then(|r| r.strip_suffix('>')) {
                DataType::List(Arc::new(Field::new("item", parse_type(inner)?, true)))
            } else if let Some(inner) = s
                .strip_prefix("fixed_size_list<")
                .and_then(|r| r.strip_suffix('>'))
            {
                let (t, n) = inner
                    .rsplit_once(',')
                    .ok_or_else(|| Error::Config(format!("bad type {s:?}")))?;
                let n: i32 = n
                    .trim()
                    .parse()
                    .map_err(|_| Error::Config(format!("bad list size in {s:?}")))?;
                DataType::FixedSizeList(Arc::new(Field::new("item", parse_type(t)?, true)), n)
            } else {
                return Err(Error::Config(format!("unknown column type {s:?}")));
            }
        }
    })
}

/// Renders a schema as the pretty JSON stored under `schemas/`.
pub fn schema_to_json(schema: &Schema) -> Result<String> {
    let doc = SchemaDoc {
        metadata: schema
            .metadata()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        fields: schema
            .fields()
            .iter()
            .map(|f| {
                Ok(FieldDoc {
                    name: f.name().clone(),
                    data_type: type_name(f.data_type())?,
                    nullable: f.is_nullable(),
                })
            })
            .collect::<Result<_>>()?,
    };
    Ok(serde_json::to_string_pretty(&doc)? + "\n")
}

/// Parses the JSON form back into an Arrow schema.
pub fn schema_from_json(text: &str) -> Result<Schema> {
    let doc: SchemaDoc = serde_json::from_str(text)?;
    let fields = doc
        .fields
        .iter()
        .map(|f| Ok(Field::new(&f.name, parse_type(&f.data_type)?, f.nullable)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Schema::new_with_metadata(
        fields,
        doc.metadata
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Edge;

    #[test]
    fn json_round_trips_every_edge() {
        for e in Edge::ALL {
            let s = e.schema();
            let text = schema_to_json(&s).unwrap();
            assert_eq!(&schema_from_json(&text).unwrap(), s.as_ref());
        }
    }

    #[test]
    fn nested_types_parse() {
        let t = parse_type("fixed_size_list<float32, 768>").unwrap();
        assert_eq!(type_name(&t).unwrap(), "fixed_size_list<float32, 768>");
        assert!(parse_type("decimal").is_err());
    }
}
