//! Dynamically typed values, as Go's reflection sees them, and Go's truth.

use std::collections::BTreeMap;
use std::rc::Rc;

use skald_model::Labels;

use skald_gocompat::time::Time as GoTime;

#[derive(Debug, Clone)]
pub(super) enum Value {
    /// Go's invalid value / nil interface.
    Nil,
    Bool(bool),
    /// Go `int`.
    Int(i64),
    /// Go `int64`.
    Int64(i64),
    Float(f64),
    Str(String),
    Time(GoTime),
    List(Rc<Vec<Value>>),
    Map(Rc<BTreeMap<String, Value>>),
    /// The label set (`map[string]string`).
    Dot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    Str,
    Int,
    Float,
    Time,
    Any,
}

impl Ty {
    pub(super) fn name(self) -> &'static str {
        match self {
            Ty::Str => "string",
            Ty::Int => "int",
            Ty::Float => "float64",
            Ty::Time => "time.Time",
            Ty::Any => "interface {}",
        }
    }
}

impl Value {
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Int64(_) => "int64",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Time(_) => "time.Time",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            Value::Dot => "map[string]string",
        }
    }

    pub(super) fn from_json(j: serde_json::Value) -> Value {
        match j {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(a) => {
                Value::List(Rc::new(a.into_iter().map(Value::from_json).collect()))
            }
            serde_json::Value::Object(o) => {
                Value::Map(Rc::new(o.into_iter().map(|(k, v)| (k, Value::from_json(v))).collect()))
            }
        }
    }
}

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
pub(super) fn truth(v: &Value, labels: &Labels) -> bool {
    match v {
        Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(i) | Value::Int64(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::Time(_) => true,
        Value::List(l) => !l.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::Dot => !labels.is_empty(),
    }
}

pub(super) fn as_str(v: &Value) -> &str {
    match v {
        Value::Str(s) => s,
        _ => "",
    }
}

pub(super) fn as_int(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i,
        _ => 0,
    }
}

pub(super) fn as_time(v: &Value) -> GoTime {
    match v {
        Value::Time(t) => t.clone(),
        _ => GoTime::zero(),
    }
}
