//! NT4 wire format: MessagePack value messages (binary frames) and JSON control messages
//! (text frames), both directions.
//!
//! Binary frames hold one or more MessagePack arrays `[id, timestamp_us, type_index, value]`;
//! id -1 is the time-sync (RTT) message. Text frames hold a JSON array of
//! `{"method": ..., "params": {...}}` objects.
//!
//! Everything decoded here comes from the network and is treated as hostile: the MessagePack
//! decoder is hand-written over a byte slice, never trusts a length prefix for allocation,
//! limits nesting, and reports errors as values. A malformed message is skipped; bytes that
//! are not MessagePack at all end the frame (the next message boundary is unknown).

use serde_json::{Map, Value as Json, json};
use thiserror::Error;

use crate::value::NtValue;

/// Topic id of the time-synchronisation message.
pub(crate) const RTT_ID: i64 = -1;

/// Why a message from the server was ignored.
#[derive(Debug, Error, PartialEq)]
pub(crate) enum MessageError {
    /// Not MessagePack (or truncated): the rest of the binary frame is dropped.
    #[error("malformed MessagePack: {0}")]
    Malformed(&'static str),
    #[error("value message is not a 4-element array")]
    NotFourArray,
    #[error("bad {0} field")]
    BadField(&'static str),
    #[error("unknown data type {0}")]
    UnknownType(i128),
    #[error("value does not decode as data type {0}")]
    BadValue(u8),
    #[error("text frame is not JSON: {0}")]
    Json(String),
    #[error("text frame is not a JSON array")]
    NotJsonArray,
    #[error("bad control message: {0}")]
    BadControl(String),
}

/// A value could not be encoded (a length beyond MessagePack's 32-bit limits).
#[derive(Debug, Error, PartialEq)]
#[error("value too large for MessagePack")]
pub(crate) struct TooLarge;

// ---------------------------------------------------------------------------------------------
// MessagePack encoding

fn put_uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else if v <= u64::from(u8::MAX) {
        out.extend_from_slice(&[0xcc, v as u8]);
    } else if v <= u64::from(u16::MAX) {
        out.push(0xcd);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= u64::from(u32::MAX) {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn put_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        put_uint(out, v as u64);
    } else if v >= -32 {
        out.push(v as u8); // negative fixint
    } else if v >= i64::from(i8::MIN) {
        out.extend_from_slice(&[0xd0, v as u8]);
    } else if v >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn put_len(
    out: &mut Vec<u8>,
    len: usize,
    fix: Option<(u8, usize)>,
    m8: Option<u8>,
    m16: u8,
    m32: u8,
) -> Result<(), TooLarge> {
    match fix {
        Some((base, limit)) if len < limit => out.push(base | len as u8),
        _ => {
            if let (Some(m), true) = (m8, len <= usize::from(u8::MAX)) {
                out.extend_from_slice(&[m, len as u8]);
            } else if len <= usize::from(u16::MAX) {
                out.push(m16);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                let len = u32::try_from(len).map_err(|_| TooLarge)?;
                out.push(m32);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
    }
    Ok(())
}

fn put_array_len(out: &mut Vec<u8>, len: usize) -> Result<(), TooLarge> {
    put_len(out, len, Some((0x90, 16)), None, 0xdc, 0xdd)
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), TooLarge> {
    put_len(out, s.len(), Some((0xa0, 32)), Some(0xd9), 0xda, 0xdb)?;
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_bin(out: &mut Vec<u8>, b: &[u8]) -> Result<(), TooLarge> {
    put_len(out, b.len(), None, Some(0xc4), 0xc5, 0xc6)?;
    out.extend_from_slice(b);
    Ok(())
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.push(0xcb);
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_f32(out: &mut Vec<u8>, v: f32) {
    out.push(0xca);
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_bool(out: &mut Vec<u8>, v: bool) {
    out.push(if v { 0xc3 } else { 0xc2 });
}

/// Appends the message `[id, timestamp_us, type_index, value]` to `out`. On error `out` is
/// left as it was.
pub(crate) fn encode_value_message(
    out: &mut Vec<u8>,
    id: i64,
    timestamp_us: i64,
    value: &NtValue,
) -> Result<(), TooLarge> {
    let start = out.len();
    let result = encode_value_message_inner(out, id, timestamp_us, value);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_value_message_inner(
    out: &mut Vec<u8>,
    id: i64,
    timestamp_us: i64,
    value: &NtValue,
) -> Result<(), TooLarge> {
    out.push(0x94);
    put_int(out, id);
    put_int(out, timestamp_us);
    put_uint(out, u64::from(value.type_index()));
    match value {
        NtValue::Boolean(v) => put_bool(out, *v),
        NtValue::Double(v) => put_f64(out, *v),
        NtValue::Int(v) => put_int(out, *v),
        NtValue::Float(v) => put_f32(out, *v),
        NtValue::String(v) => put_str(out, v)?,
        NtValue::Raw(v) => put_bin(out, v)?,
        NtValue::BooleanArray(v) => {
            put_array_len(out, v.len())?;
            v.iter().for_each(|x| put_bool(out, *x));
        }
        NtValue::DoubleArray(v) => {
            put_array_len(out, v.len())?;
            v.iter().for_each(|x| put_f64(out, *x));
        }
        NtValue::IntArray(v) => {
            put_array_len(out, v.len())?;
            v.iter().for_each(|x| put_int(out, *x));
        }
        NtValue::FloatArray(v) => {
            put_array_len(out, v.len())?;
            v.iter().for_each(|x| put_f32(out, *x));
        }
        NtValue::StringArray(v) => {
            put_array_len(out, v.len())?;
            for s in v {
                put_str(out, s)?;
            }
        }
    }
    Ok(())
}

/// Appends the time-sync request `[-1, 0, 2, local_us]` to `out`.
pub(crate) fn encode_rtt_request(out: &mut Vec<u8>, local_us: i64) {
    out.push(0x94);
    put_int(out, RTT_ID);
    put_int(out, 0);
    put_uint(out, 2);
    put_int(out, local_us);
}

// ---------------------------------------------------------------------------------------------
// MessagePack decoding

/// One MessagePack item; arrays and maps are only their headers (element counts).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Item<'a> {
    Nil,
    Bool(bool),
    Int(i128),
    F32(f32),
    F64(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(u64),
    Map(u64),
    Ext,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], MessageError> {
        if n > self.remaining() {
            return Err(MessageError::Malformed("truncated"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], MessageError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, MessageError> {
        Ok(self.bytes::<1>()?[0])
    }

    fn len16(&mut self) -> Result<usize, MessageError> {
        Ok(usize::from(u16::from_be_bytes(self.bytes()?)))
    }

    fn len32(&mut self) -> Result<usize, MessageError> {
        usize::try_from(u32::from_be_bytes(self.bytes()?))
            .map_err(|_| MessageError::Malformed("length"))
    }

    /// Reads one item; for arrays and maps only the header.
    fn item(&mut self) -> Result<Item<'a>, MessageError> {
        let m = self.u8()?;
        Ok(match m {
            0x00..=0x7f => Item::Int(i128::from(m)),
            0x80..=0x8f => Item::Map(u64::from(m & 0x0f)),
            0x90..=0x9f => Item::Array(u64::from(m & 0x0f)),
            0xa0..=0xbf => Item::Str(self.take(usize::from(m & 0x1f))?),
            0xc0 => Item::Nil,
            0xc1 => return Err(MessageError::Malformed("reserved marker 0xc1")),
            0xc2 => Item::Bool(false),
            0xc3 => Item::Bool(true),
            0xc4 => {
                let n = usize::from(self.u8()?);
                Item::Bin(self.take(n)?)
            }
            0xc5 => {
                let n = self.len16()?;
                Item::Bin(self.take(n)?)
            }
            0xc6 => {
                let n = self.len32()?;
                Item::Bin(self.take(n)?)
            }
            0xc7..=0xc9 => {
                let n = match m {
                    0xc7 => usize::from(self.u8()?),
                    0xc8 => self.len16()?,
                    _ => self.len32()?,
                };
                self.take(n.saturating_add(1))?; // type byte + data
                Item::Ext
            }
            0xca => Item::F32(f32::from_be_bytes(self.bytes()?)),
            0xcb => Item::F64(f64::from_be_bytes(self.bytes()?)),
            0xcc => Item::Int(i128::from(self.u8()?)),
            0xcd => Item::Int(i128::from(u16::from_be_bytes(self.bytes()?))),
            0xce => Item::Int(i128::from(u32::from_be_bytes(self.bytes()?))),
            0xcf => Item::Int(i128::from(u64::from_be_bytes(self.bytes()?))),
            0xd0 => Item::Int(i128::from(i8::from_be_bytes(self.bytes()?))),
            0xd1 => Item::Int(i128::from(i16::from_be_bytes(self.bytes()?))),
            0xd2 => Item::Int(i128::from(i32::from_be_bytes(self.bytes()?))),
            0xd3 => Item::Int(i128::from(i64::from_be_bytes(self.bytes()?))),
            0xd4..=0xd8 => {
                self.take((1usize << (m - 0xd4)) + 1)?; // type byte + data
                Item::Ext
            }
            0xd9 => {
                let n = usize::from(self.u8()?);
                Item::Str(self.take(n)?)
            }
            0xda => {
                let n = self.len16()?;
                Item::Str(self.take(n)?)
            }
            0xdb => {
                let n = self.len32()?;
                Item::Str(self.take(n)?)
            }
            0xdc => Item::Array(self.len16()? as u64),
            0xdd => Item::Array(self.len32()? as u64),
            0xde => Item::Map(self.len16()? as u64),
            0xdf => Item::Map(self.len32()? as u64),
            0xe0..=0xff => Item::Int(i128::from(m as i8)),
        })
    }

    /// Skips the contents of `item` if it is an array or map header. Iterative: each step
    /// consumes at least one byte, so hostile counts end at the frame's end, not in a stack
    /// overflow or a long loop.
    fn skip_contents(&mut self, item: Item<'a>) -> Result<(), MessageError> {
        let mut pending: u64 = match item {
            Item::Array(n) => n,
            Item::Map(n) => n.saturating_mul(2),
            _ => 0,
        };
        while pending > 0 {
            pending -= 1;
            match self.item()? {
                Item::Array(n) => pending = pending.saturating_add(n),
                Item::Map(n) => pending = pending.saturating_add(n.saturating_mul(2)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads one whole value; containers are skipped and returned as their headers.
    fn scalar(&mut self) -> Result<Item<'a>, MessageError> {
        let item = self.item()?;
        self.skip_contents(item)?;
        Ok(item)
    }

    /// Reads an array value of `n` elements converted by `f`; `None` if any element does not
    /// convert (all elements are consumed either way).
    fn array_of<T>(
        &mut self,
        n: u64,
        f: impl Fn(Item<'a>) -> Option<T>,
    ) -> Result<Option<Vec<T>>, MessageError> {
        let mut out = Some(Vec::new());
        for _ in 0..n {
            let v = f(self.scalar()?);
            match (&mut out, v) {
                (Some(vec), Some(v)) => vec.push(v),
                _ => out = None,
            }
        }
        Ok(out)
    }

    /// Reads one message. The outer error is fatal for the frame; the inner one means this
    /// message (fully consumed) is ignored.
    fn message(&mut self) -> Result<Result<DataMessage, MessageError>, MessageError> {
        let head = self.item()?;
        if head != Item::Array(4) {
            self.skip_contents(head)?;
            return Ok(Err(MessageError::NotFourArray));
        }
        let id = self.scalar()?;
        let ts = self.scalar()?;
        let ty = self.scalar()?;
        let value = self.item()?;
        let decoded = match (ty, value) {
            (Item::Int(0), v) => as_bool(v).map(NtValue::Boolean),
            (Item::Int(1), v) => as_f64(v).map(NtValue::Double),
            (Item::Int(2), v) => as_i64(v).map(NtValue::Int),
            (Item::Int(3), v) => as_f64(v).map(|f| NtValue::Float(f as f32)),
            (Item::Int(4), v) => as_string(v).map(NtValue::String),
            (Item::Int(5), Item::Bin(b)) => Some(NtValue::Raw(b.to_vec())),
            (Item::Int(16), Item::Array(n)) => {
                self.array_of(n, as_bool)?.map(NtValue::BooleanArray)
            }
            (Item::Int(17), Item::Array(n)) => self.array_of(n, as_f64)?.map(NtValue::DoubleArray),
            (Item::Int(18), Item::Array(n)) => self.array_of(n, as_i64)?.map(NtValue::IntArray),
            (Item::Int(19), Item::Array(n)) => self
                .array_of(n, |v| as_f64(v).map(|f| f as f32))?
                .map(NtValue::FloatArray),
            (Item::Int(20), Item::Array(n)) => {
                self.array_of(n, as_string)?.map(NtValue::StringArray)
            }
            (_, v) => {
                self.skip_contents(v)?;
                None
            }
        };
        let Some(id) = as_i64(id) else {
            return Ok(Err(MessageError::BadField("id")));
        };
        let Some(timestamp_us) = as_i64(ts) else {
            return Ok(Err(MessageError::BadField("timestamp")));
        };
        let ty = match ty {
            Item::Int(t @ (0..=5 | 16..=20)) => t as u8,
            Item::Int(t) => return Ok(Err(MessageError::UnknownType(t))),
            _ => return Ok(Err(MessageError::BadField("type"))),
        };
        Ok(match decoded {
            Some(value) => Ok(DataMessage {
                id,
                timestamp_us,
                value,
            }),
            None => Err(MessageError::BadValue(ty)),
        })
    }
}

fn as_i64(item: Item<'_>) -> Option<i64> {
    match item {
        Item::Int(v) => i64::try_from(v).ok(),
        _ => None,
    }
}

fn as_f64(item: Item<'_>) -> Option<f64> {
    match item {
        Item::F64(v) => Some(v),
        Item::F32(v) => Some(f64::from(v)),
        Item::Int(v) => Some(v as f64),
        _ => None,
    }
}

fn as_string(item: Item<'_>) -> Option<String> {
    match item {
        Item::Str(b) => std::str::from_utf8(b).ok().map(str::to_owned),
        _ => None,
    }
}

fn as_bool(item: Item<'_>) -> Option<bool> {
    match item {
        Item::Bool(b) => Some(b),
        _ => None,
    }
}

/// One value message from the server.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DataMessage {
    /// Topic id (from `announce`), or [`RTT_ID`].
    pub id: i64,
    /// Server time in microseconds.
    pub timestamp_us: i64,
    pub value: NtValue,
}

/// The messages of one binary frame, in order. Yields an error for each message that is
/// ignored; after a [`MessageError::Malformed`] error the iterator ends.
pub(crate) struct BinaryFrame<'a> {
    cur: Cursor<'a>,
    done: bool,
}

pub(crate) fn decode_binary_frame(frame: &[u8]) -> BinaryFrame<'_> {
    BinaryFrame {
        cur: Cursor { buf: frame, pos: 0 },
        done: false,
    }
}

impl Iterator for BinaryFrame<'_> {
    type Item = Result<DataMessage, MessageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.cur.remaining() == 0 {
            return None;
        }
        match self.cur.message() {
            Ok(msg) => Some(msg),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON control messages

/// A control message from the server.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ServerMessage {
    Announce {
        name: String,
        id: i64,
        type_str: String,
        /// Set when this answers our `publish` with that pubuid.
        pubuid: Option<i64>,
        properties: Map<String, Json>,
    },
    Unannounce {
        name: String,
        id: i64,
    },
    Properties {
        name: String,
        update: Map<String, Json>,
    },
}

/// Decodes a text frame. The outer error means the frame as a whole was unusable; each
/// inner error is one ignored message. Unknown methods are skipped silently (spec).
pub(crate) fn decode_text_frame(
    text: &str,
) -> Result<Vec<Result<ServerMessage, MessageError>>, MessageError> {
    let frame: Json = serde_json::from_str(text).map_err(|e| MessageError::Json(e.to_string()))?;
    let Json::Array(messages) = frame else {
        return Err(MessageError::NotJsonArray);
    };
    Ok(messages.iter().filter_map(control_message).collect())
}

fn control_message(msg: &Json) -> Option<Result<ServerMessage, MessageError>> {
    let bad = |what: &str| Some(Err(MessageError::BadControl(what.to_owned())));
    let Some(method) = msg.get("method").and_then(Json::as_str) else {
        return bad("no method string");
    };
    let Some(params) = msg.get("params").and_then(Json::as_object) else {
        return bad("no params object");
    };
    let name = params.get("name").and_then(Json::as_str).map(str::to_owned);
    let id = params.get("id").and_then(Json::as_i64);
    let msg = match method {
        "announce" => {
            let (Some(name), Some(id)) = (name, id) else {
                return bad("announce without name or id");
            };
            let Some(type_str) = params.get("type").and_then(Json::as_str) else {
                return bad("announce without type");
            };
            let pubuid = match params.get("pubuid") {
                None | Some(Json::Null) => None,
                Some(v) => match v.as_i64() {
                    Some(p) => Some(p),
                    None => return bad("announce with a non-integer pubuid"),
                },
            };
            let properties = params
                .get("properties")
                .and_then(Json::as_object)
                .cloned()
                .unwrap_or_default();
            ServerMessage::Announce {
                name,
                id,
                type_str: type_str.to_owned(),
                pubuid,
                properties,
            }
        }
        "unannounce" => {
            let (Some(name), Some(id)) = (name, id) else {
                return bad("unannounce without name or id");
            };
            ServerMessage::Unannounce { name, id }
        }
        "properties" => {
            let Some(name) = name else {
                return bad("properties without name");
            };
            let Some(update) = params.get("update").and_then(Json::as_object).cloned() else {
                return bad("properties without update object");
            };
            ServerMessage::Properties { name, update }
        }
        _ => return None,
    };
    Some(Ok(msg))
}

pub(crate) fn publish_message(
    name: &str,
    pubuid: i64,
    type_str: &str,
    properties: &Map<String, Json>,
) -> Json {
    json!({"method": "publish", "params": {"name": name, "pubuid": pubuid, "type": type_str, "properties": properties}})
}

pub(crate) fn unpublish_message(pubuid: i64) -> Json {
    json!({"method": "unpublish", "params": {"pubuid": pubuid}})
}

/// A prefix subscription. `topics` is the 4.1 key and what ntcore reads for 4.0 too;
/// `prefixes` is the 4.0 draft's key, harmless elsewhere.
pub(crate) fn subscribe_message(subuid: i64, prefixes: &[String]) -> Json {
    json!({"method": "subscribe", "params": {
        "subuid": subuid,
        "topics": prefixes,
        "prefixes": prefixes,
        "options": {"prefix": true},
    }})
}

pub(crate) fn unsubscribe_message(subuid: i64) -> Json {
    json!({"method": "unsubscribe", "params": {"subuid": subuid}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: NtValue) {
        let mut buf = Vec::new();
        encode_value_message(&mut buf, 7, 123_456_789, &value).expect("encode");
        let msgs: Vec<_> = decode_binary_frame(&buf).collect();
        assert_eq!(
            msgs,
            vec![Ok(DataMessage {
                id: 7,
                timestamp_us: 123_456_789,
                value
            })]
        );
    }

    #[test]
    fn values_round_trip() {
        round_trip(NtValue::Boolean(true));
        round_trip(NtValue::Double(0.1234));
        for i in [
            0,
            1,
            127,
            128,
            255,
            256,
            65535,
            65536,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32768,
            -32769,
            i64::MIN,
            i64::MAX,
        ] {
            round_trip(NtValue::Int(i));
        }
        round_trip(NtValue::Float(1.5));
        round_trip(NtValue::String(String::new()));
        round_trip(NtValue::String("x".repeat(31)));
        round_trip(NtValue::String("x".repeat(32)));
        round_trip(NtValue::String("é".repeat(200)));
        round_trip(NtValue::String("y".repeat(70_000)));
        round_trip(NtValue::Raw(vec![0, 1, 2, 255]));
        round_trip(NtValue::Raw(vec![9; 300]));
        round_trip(NtValue::BooleanArray(vec![true, false]));
        round_trip(NtValue::DoubleArray(vec![1.0, -2.5]));
        round_trip(NtValue::IntArray((0..20).collect()));
        round_trip(NtValue::FloatArray(vec![0.5; 17]));
        round_trip(NtValue::StringArray(vec![
            "a".into(),
            "mjpg:http://10.0.0.2:1181/?action=stream".into(),
        ]));
        round_trip(NtValue::StringArray(vec![String::new(); 70_000]));
    }

    #[test]
    fn spec_example_double() {
        // The spec's 17-byte example: id 50, 2 minutes, double 0.1234 (uint32 timestamp).
        let frame = [
            0x94, 0x32, 0xce, 0x07, 0x27, 0x0e, 0x00, 0x01, 0xcb, 0x3f, 0xbf, 0x97, 0x24, 0x74,
            0x53, 0x8e, 0xf3,
        ];
        let msgs: Vec<_> = decode_binary_frame(&frame).collect();
        assert_eq!(
            msgs,
            vec![Ok(DataMessage {
                id: 50,
                timestamp_us: 120_000_000,
                value: NtValue::Double(0.1234)
            })]
        );
        let mut out = Vec::new();
        encode_value_message(&mut out, 50, 120_000_000, &NtValue::Double(0.1234)).expect("encode");
        assert_eq!(out, frame);
    }

    #[test]
    fn rtt_request_encoding() {
        let mut out = Vec::new();
        encode_rtt_request(&mut out, 1000);
        assert_eq!(out, [0x94, 0xff, 0x00, 0x02, 0xcd, 0x03, 0xe8]);
        let msgs: Vec<_> = decode_binary_frame(&out).collect();
        assert_eq!(
            msgs,
            vec![Ok(DataMessage {
                id: RTT_ID,
                timestamp_us: 0,
                value: NtValue::Int(1000)
            })]
        );
    }

    #[test]
    fn several_messages_per_frame_and_lenient_numbers() {
        let mut frame = Vec::new();
        encode_value_message(&mut frame, 1, 5, &NtValue::Int(3)).expect("encode");
        // A double sent as an integer, a float sent as a double.
        frame.extend_from_slice(&[0x94, 0x02, 0x05, 0x01, 0x07]);
        frame.extend_from_slice(&[0x94, 0x03, 0x05, 0x03, 0xcb]);
        frame.extend_from_slice(&0.5f64.to_be_bytes());
        let values: Vec<_> = decode_binary_frame(&frame)
            .map(|m| m.map(|m| m.value))
            .collect();
        assert_eq!(
            values,
            vec![
                Ok(NtValue::Int(3)),
                Ok(NtValue::Double(7.0)),
                Ok(NtValue::Float(0.5))
            ]
        );
    }

    #[test]
    fn hostile_binary_input_is_reported_not_fatal() {
        // Wrong shapes are skipped one message at a time.
        let mut frame = vec![0x93, 0x01, 0x02, 0x03]; // 3-element array
        frame.extend_from_slice(&[0x81, 0xa1, b'k', 0x01]); // a map
        frame.extend_from_slice(&[0x94, 0x01, 0x00, 0x63, 0xc3]); // unknown type 99
        frame.extend_from_slice(&[0x94, 0x01, 0x00, 0x02, 0xa1, b'x']); // int topic, string value
        frame.extend_from_slice(&[0x94, 0x01, 0x00, 0x04, 0xa2, 0xff, 0xfe]); // invalid UTF-8
        frame.extend_from_slice(&[
            0x94, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0xc3,
        ]); // id > i64
        encode_value_message(&mut frame, 4, 9, &NtValue::Boolean(false)).expect("encode");
        let results: Vec<_> = decode_binary_frame(&frame).collect();
        assert_eq!(results.len(), 7);
        assert_eq!(results[0], Err(MessageError::NotFourArray));
        assert_eq!(results[1], Err(MessageError::NotFourArray));
        assert_eq!(results[2], Err(MessageError::UnknownType(99)));
        assert_eq!(results[3], Err(MessageError::BadValue(2)));
        assert_eq!(results[4], Err(MessageError::BadValue(4)));
        assert_eq!(results[5], Err(MessageError::BadField("id")));
        assert!(results[6].is_ok());

        // Deep nesting is skipped without recursion.
        let mut deep = vec![0x91; 100_000];
        deep.push(0x01);
        encode_value_message(&mut deep, 4, 9, &NtValue::Boolean(false)).expect("encode");
        let results: Vec<_> = decode_binary_frame(&deep).collect();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0], Err(MessageError::NotFourArray));
        assert!(results[1].is_ok());

        // A wrong-typed array element still consumes the whole array.
        let mut frame = vec![0x94, 0x01, 0x00, 0x12, 0x93, 0x01, 0xa1, b'x', 0x91, 0x02];
        encode_value_message(&mut frame, 4, 9, &NtValue::Int(1)).expect("encode");
        let results: Vec<_> = decode_binary_frame(&frame).collect();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0], Err(MessageError::BadValue(18)));
        assert!(results[1].is_ok());

        // Huge length claims, truncation and reserved markers end the frame.
        for frame in [
            &[0xdd, 0xff, 0xff, 0xff, 0xff][..],
            &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
            &[0xc6, 0x7f, 0xff, 0xff, 0xff],
            &[0xdf, 0xff, 0xff, 0xff, 0xff],
            &[0x94, 0x01],
            &[0xc1],
            &[0xcb, 0x00],
        ] {
            let results: Vec<_> = decode_binary_frame(frame).collect();
            assert_eq!(results.len(), 1, "{frame:?}");
            assert!(
                matches!(results[0], Err(MessageError::Malformed(_))),
                "{frame:?}: {results:?}"
            );
        }
    }

    #[test]
    fn every_byte_string_decodes_without_panic() {
        // A cheap exhaustive-ish fuzz: all 1- and 2-byte frames, and prefixes of a real message.
        for a in 0..=255u8 {
            let _ = decode_binary_frame(&[a]).count();
            for b in 0..=255u8 {
                let _ = decode_binary_frame(&[a, b]).count();
                let _ = decode_binary_frame(&[0x94, a, b, 0x04, 0xa1, b'x']).count();
            }
        }
        let mut msg = Vec::new();
        encode_value_message(&mut msg, 3, 77, &NtValue::StringArray(vec!["ab".into(); 3]))
            .expect("encode");
        for n in 0..msg.len() {
            let _ = decode_binary_frame(&msg[..n]).count();
        }
    }

    #[test]
    fn control_messages_decode() {
        let text = r#"[
            {"method":"announce","params":{"name":"/a","id":3,"type":"int","pubuid":1,"properties":{"retained":true}}},
            {"method":"announce","params":{"name":"/b","id":4,"type":"string[]","properties":{}}},
            {"method":"unannounce","params":{"name":"/b","id":4}},
            {"method":"properties","params":{"name":"/a","ack":true,"update":{"x":null}}},
            {"method":"future","params":{}}
        ]"#;
        let msgs = decode_text_frame(text).expect("frame");
        assert_eq!(msgs.len(), 4);
        assert!(matches!(
            &msgs[0],
            Ok(ServerMessage::Announce {
                id: 3,
                pubuid: Some(1),
                ..
            })
        ));
        assert!(
            matches!(&msgs[1], Ok(ServerMessage::Announce { pubuid: None, type_str, .. }) if type_str == "string[]")
        );
        assert!(matches!(
            &msgs[2],
            Ok(ServerMessage::Unannounce { id: 4, .. })
        ));
        assert!(matches!(&msgs[3], Ok(ServerMessage::Properties { .. })));
    }

    #[test]
    fn hostile_control_messages_are_reported() {
        assert!(decode_text_frame("not json").is_err());
        assert!(decode_text_frame("{}").is_err());
        assert!(decode_text_frame(&"[".repeat(10_000)).is_err());
        let msgs = decode_text_frame(
            r#"[1, "x", {"method":1,"params":{}}, {"method":"announce"},
                {"method":"announce","params":{"name":5,"id":1,"type":"int"}},
                {"method":"announce","params":{"name":"/a","id":"1","type":"int"}},
                {"method":"announce","params":{"name":"/a","id":1}},
                {"method":"announce","params":{"name":"/a","id":1,"type":"int","pubuid":"x"}},
                {"method":"announce","params":{"name":"/a","id":1.5,"type":"int"}},
                {"method":"unannounce","params":{"name":"/a"}},
                {"method":"properties","params":{"name":"/a","update":3}}]"#,
        )
        .expect("frame");
        assert_eq!(msgs.len(), 11);
        assert!(msgs.iter().all(Result::is_err), "{msgs:?}");
    }

    #[test]
    fn client_messages_have_the_spec_shape() {
        let props = Map::new();
        let m = publish_message("/x", 3, "string[]", &props);
        assert_eq!(m["method"], "publish");
        assert_eq!(m["params"]["type"], "string[]");
        assert_eq!(m["params"]["pubuid"], 3);
        let s = subscribe_message(9, &["/cfg/".to_owned()]);
        assert_eq!(s["params"]["topics"][0], "/cfg/");
        assert_eq!(s["params"]["options"]["prefix"], true);
        assert_eq!(unsubscribe_message(9)["params"]["subuid"], 9);
        assert_eq!(unpublish_message(3)["params"]["pubuid"], 3);
    }
}
