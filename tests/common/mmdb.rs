//! A minimal MaxMind DB writer (format 2.0, https://maxmind.github.io/MaxMind-DB/) for tests:
//! an IPv4 search tree of /32 entries, 32-bit records, and the data types GeoIP2 databases use.
//! We write our own test databases rather than ship MaxMind's.

#![allow(dead_code)]

use std::net::Ipv4Addr;

/// A value of the MaxMind DB data section.
#[derive(Debug, Clone)]
pub enum Data {
    Str(String),
    Double(f64),
    U16(u16),
    U32(u32),
    U64(u64),
    Bool(bool),
    Map(Vec<(String, Data)>),
    Array(Vec<Data>),
}

pub fn s(v: &str) -> Data {
    Data::Str(v.to_string())
}

pub fn map(entries: Vec<(&str, Data)>) -> Data {
    Data::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// `{"en": name}`.
pub fn names(en: &str) -> Data {
    map(vec![("en", s(en))])
}

fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (size_bits, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, vec![])
    } else if size < 29 + 256 {
        (29, vec![(size - 29) as u8])
    } else if size < 285 + 65_536 {
        let n = size - 285;
        (30, vec![(n >> 8) as u8, n as u8])
    } else {
        let n = size - 65_821;
        (31, vec![(n >> 16) as u8, (n >> 8) as u8, n as u8])
    };
    if kind <= 7 {
        out.push((kind << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(kind - 7);
    }
    out.extend(extra);
}

fn uint(out: &mut Vec<u8>, kind: u8, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, kind, 8 - skip);
    out.extend(&bytes[skip..]);
}

pub fn encode(out: &mut Vec<u8>, d: &Data) {
    match d {
        Data::Str(x) => {
            control(out, 2, x.len());
            out.extend(x.as_bytes());
        }
        Data::Double(x) => {
            control(out, 3, 8);
            out.extend(x.to_be_bytes());
        }
        Data::U16(x) => uint(out, 5, u64::from(*x)),
        Data::U32(x) => uint(out, 6, u64::from(*x)),
        Data::U64(x) => uint(out, 9, *x),
        Data::Bool(b) => control(out, 14, usize::from(*b)),
        Data::Map(entries) => {
            control(out, 7, entries.len());
            for (k, v) in entries {
                encode(out, &Data::Str(k.clone()));
                encode(out, v);
            }
        }
        Data::Array(items) => {
            control(out, 11, items.len());
            for v in items {
                encode(out, v);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(usize),
    Data(usize),
}

/// A database of `database_type` mapping each address (as a /32) to its record.
pub fn write_ipv4(database_type: &str, entries: &[(Ipv4Addr, Data)]) -> Vec<u8> {
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty, Rec::Empty]];
    let mut data = Vec::new();
    for (ip, d) in entries {
        let offset = data.len();
        encode(&mut data, d);
        let bits = u32::from(*ip);
        let mut node = 0usize;
        for i in 0..32 {
            let bit = ((bits >> (31 - i)) & 1) as usize;
            if i == 31 {
                nodes[node][bit] = Rec::Data(offset);
            } else {
                node = match nodes[node][bit] {
                    Rec::Node(n) => n,
                    _ => {
                        nodes.push([Rec::Empty, Rec::Empty]);
                        let n = nodes.len() - 1;
                        nodes[node][bit] = Rec::Node(n);
                        n
                    }
                };
            }
        }
    }
    let count = nodes.len();
    let mut out = Vec::new();
    for n in &nodes {
        for r in n {
            let v = match r {
                Rec::Empty => count,
                Rec::Node(i) => *i,
                Rec::Data(off) => count + 16 + off,
            };
            out.extend((v as u32).to_be_bytes());
        }
    }
    out.extend([0u8; 16]);
    out.extend(data);
    out.extend(b"\xAB\xCD\xEFMaxMind.com");
    let meta = Data::Map(vec![
        ("binary_format_major_version".into(), Data::U16(2)),
        ("binary_format_minor_version".into(), Data::U16(0)),
        ("build_epoch".into(), Data::U64(1_700_000_000)),
        ("database_type".into(), s(database_type)),
        (
            "description".into(),
            map(vec![("en", s("detectd test database"))]),
        ),
        ("ip_version".into(), Data::U16(4)),
        ("languages".into(), Data::Array(vec![s("en")])),
        ("node_count".into(), Data::U32(count as u32)),
        ("record_size".into(), Data::U16(32)),
    ]);
    encode(&mut out, &meta);
    out
}
