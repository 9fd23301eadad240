//! NetworkTables data types ([`NtType`]) and values ([`NtValue`]).
//!
//! Each type has a type string (used in JSON `publish`/`announce`) and a type index (used in
//! MessagePack value messages). `string` and `json` share index 4; `raw` and every type string
//! this client does not know (`msgpack`, `protobuf`, `struct:...`) share index 5, as the spec says.

use std::fmt;

/// The type of a NetworkTables topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NtType {
    Boolean,
    Double,
    Int,
    Float,
    String,
    /// A string holding JSON; values are [`NtValue::String`].
    Json,
    /// Bytes; also every type string this client does not know (e.g. `struct:Pose2d`).
    Raw,
    BooleanArray,
    DoubleArray,
    IntArray,
    FloatArray,
    StringArray,
}

impl NtType {
    /// The type string of the protocol (`"boolean"`, `"string[]"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            NtType::Boolean => "boolean",
            NtType::Double => "double",
            NtType::Int => "int",
            NtType::Float => "float",
            NtType::String => "string",
            NtType::Json => "json",
            NtType::Raw => "raw",
            NtType::BooleanArray => "boolean[]",
            NtType::DoubleArray => "double[]",
            NtType::IntArray => "int[]",
            NtType::FloatArray => "float[]",
            NtType::StringArray => "string[]",
        }
    }

    /// Parses a type string; unknown strings are binary data ([`NtType::Raw`]) per the spec.
    pub fn from_type_str(s: &str) -> NtType {
        match s {
            "boolean" => NtType::Boolean,
            "double" => NtType::Double,
            "int" => NtType::Int,
            "float" => NtType::Float,
            "string" => NtType::String,
            "json" => NtType::Json,
            "boolean[]" => NtType::BooleanArray,
            "double[]" => NtType::DoubleArray,
            "int[]" => NtType::IntArray,
            "float[]" => NtType::FloatArray,
            "string[]" => NtType::StringArray,
            _ => NtType::Raw,
        }
    }

    /// The type index used in MessagePack value messages.
    pub fn type_index(self) -> u8 {
        match self {
            NtType::Boolean => 0,
            NtType::Double => 1,
            NtType::Int => 2,
            NtType::Float => 3,
            NtType::String | NtType::Json => 4,
            NtType::Raw => 5,
            NtType::BooleanArray => 16,
            NtType::DoubleArray => 17,
            NtType::IntArray => 18,
            NtType::FloatArray => 19,
            NtType::StringArray => 20,
        }
    }
}

impl fmt::Display for NtType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A NetworkTables value.
#[derive(Debug, Clone, PartialEq)]
pub enum NtValue {
    Boolean(bool),
    Double(f64),
    Int(i64),
    Float(f32),
    /// Value of `string` and `json` topics.
    String(String),
    /// Value of `raw` topics and of every type this client does not know.
    Raw(Vec<u8>),
    BooleanArray(Vec<bool>),
    DoubleArray(Vec<f64>),
    IntArray(Vec<i64>),
    FloatArray(Vec<f32>),
    StringArray(Vec<String>),
}

impl NtValue {
    /// The type index used in MessagePack value messages.
    pub fn type_index(&self) -> u8 {
        match self {
            NtValue::Boolean(_) => 0,
            NtValue::Double(_) => 1,
            NtValue::Int(_) => 2,
            NtValue::Float(_) => 3,
            NtValue::String(_) => 4,
            NtValue::Raw(_) => 5,
            NtValue::BooleanArray(_) => 16,
            NtValue::DoubleArray(_) => 17,
            NtValue::IntArray(_) => 18,
            NtValue::FloatArray(_) => 19,
            NtValue::StringArray(_) => 20,
        }
    }

    /// Whether this value can be sent on (or arrive for) a topic of type `ty`.
    pub fn fits(&self, ty: NtType) -> bool {
        self.type_index() == ty.type_index()
    }

    /// The natural topic type of this value (`String` for strings, `Raw` for bytes).
    pub fn nt_type(&self) -> NtType {
        match self {
            NtValue::Boolean(_) => NtType::Boolean,
            NtValue::Double(_) => NtType::Double,
            NtValue::Int(_) => NtType::Int,
            NtValue::Float(_) => NtType::Float,
            NtValue::String(_) => NtType::String,
            NtValue::Raw(_) => NtType::Raw,
            NtValue::BooleanArray(_) => NtType::BooleanArray,
            NtValue::DoubleArray(_) => NtType::DoubleArray,
            NtValue::IntArray(_) => NtType::IntArray,
            NtValue::FloatArray(_) => NtType::FloatArray,
            NtValue::StringArray(_) => NtType::StringArray,
        }
    }
}

macro_rules! from_impls {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl From<$t> for NtValue {
            fn from(v: $t) -> Self {
                NtValue::$variant(v.into())
            }
        })*
    };
}

from_impls! {
    bool => Boolean,
    f64 => Double,
    i64 => Int,
    i32 => Int,
    u32 => Int,
    f32 => Float,
    String => String,
    &str => String,
    Vec<u8> => Raw,
    Vec<bool> => BooleanArray,
    Vec<f64> => DoubleArray,
    Vec<i64> => IntArray,
    Vec<f32> => FloatArray,
    Vec<String> => StringArray,
}

impl From<&[&str]> for NtValue {
    fn from(v: &[&str]) -> Self {
        NtValue::StringArray(v.iter().map(|s| (*s).to_owned()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_strings_round_trip() {
        for ty in [
            NtType::Boolean,
            NtType::Double,
            NtType::Int,
            NtType::Float,
            NtType::String,
            NtType::Json,
            NtType::Raw,
            NtType::BooleanArray,
            NtType::DoubleArray,
            NtType::IntArray,
            NtType::FloatArray,
            NtType::StringArray,
        ] {
            assert_eq!(NtType::from_type_str(ty.as_str()), ty);
        }
        assert_eq!(NtType::from_type_str("struct:Pose2d"), NtType::Raw);
        assert_eq!(NtType::from_type_str("msgpack").type_index(), 5);
    }

    #[test]
    fn values_fit_their_types() {
        assert!(NtValue::from("x").fits(NtType::String));
        assert!(NtValue::from("{}").fits(NtType::Json));
        assert!(!NtValue::from(1.0).fits(NtType::Int));
        assert!(NtValue::from(vec![1i64]).fits(NtType::IntArray));
        let v = NtValue::from(&["a", "b"][..]);
        assert_eq!(v.nt_type(), NtType::StringArray);
    }
}
