//! Finding the records of a `{"Records": [...]}` delivery object or of a top-level JSON array as
//! the bytes stream by, without parsing them: only strings (with their escapes) and bracket
//! depth are tracked, so each record's extent is found at memory speed and the record is then
//! parsed from a slice (`serde_json`'s slice reader is several times faster than its
//! `io::Read` one, which goes through the reader a byte at a time).
//!
//! Inside a record the bytes are classified 64 at a time (simdjson's first stage: quote,
//! backslash and bracket bit masks, escapes and string extents by bit arithmetic, `wide`'s
//! portable SIMD for the comparisons), so only the brackets outside strings are visited one by
//! one. Everything else, and any block with a backslash outside a string (not JSON), goes
//! through the byte loop, which is the reference the block path is tested against.
//!
//! Memory is one record (capped at [`MAX_RECORD_BYTES`]) plus the reader's buffer, whatever the
//! file size. A record that is not valid JSON but has balanced brackets is reported on its own
//! and the next one is read; anything that breaks the structure (a truncation, an I/O error)
//! ends the file.

use std::io::BufRead;

/// A record larger than this is skipped (reported) without being held in memory.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// What the splitter hands on.
pub enum Piece<'a> {
    /// The bytes of one array element (trimmed of surrounding whitespace).
    Record(&'a [u8]),
    /// An element that could not be kept (too large); the reason.
    Skipped(String),
}

/// Which top-level value the records are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `{"Records": [...], ...}`: the elements of the `Records` array, other keys skipped.
    Records,
    /// `[...]`: the elements of the array.
    Array,
}

/// Reads `reader` to its end, calling `on_piece` for each element of the records array.
/// `Err` (with a reason) when the stream ends or fails in the middle of the structure, or the
/// structure is not the expected one; the pieces before it were handed on.
pub fn split(
    reader: &mut dyn BufRead,
    layout: Layout,
    on_piece: &mut dyn FnMut(Piece<'_>),
) -> Result<(), String> {
    split_with(reader, layout, true, on_piece)
}

/// [`split`], with the block path inside records (`blocks`) or with the byte loop alone.
fn split_with(
    reader: &mut dyn BufRead,
    layout: Layout,
    blocks: bool,
    on_piece: &mut dyn FnMut(Piece<'_>),
) -> Result<(), String> {
    let mut s = Splitter {
        layout,
        blocks,
        depth: 0,
        in_str: false,
        esc: false,
        elem_depth: None,
        closed: false,
        in_elem: false,
        elem_container: false,
        oversize: false,
        cur: Vec::new(),
        key_pos: false,
        capturing_key: false,
        key: Vec::new(),
        records_next: false,
    };
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        };
        if buf.is_empty() {
            return s.finish();
        }
        let n = buf.len();
        s.chunk(buf, on_piece)?;
        reader.consume(n);
    }
}

struct Splitter {
    layout: Layout,
    /// Records are skipped through 64 bytes at a time ([`Splitter::skip_inside`]).
    blocks: bool,
    /// Containers open around the current byte.
    depth: usize,
    in_str: bool,
    /// The previous byte was a backslash inside a string.
    esc: bool,
    /// Inside the records array: the depth of its elements.
    elem_depth: Option<usize>,
    /// The top-level value has closed.
    closed: bool,
    /// Inside an element; `elem_container`: it is an object or array (else a scalar).
    in_elem: bool,
    elem_container: bool,
    /// The current element passed `MAX_RECORD_BYTES`: not kept.
    oversize: bool,
    /// The current element's bytes from earlier buffers.
    cur: Vec<u8>,
    /// `Records` layout, at depth 1: the next string is a key / the key being read / the last key.
    key_pos: bool,
    capturing_key: bool,
    key: Vec<u8>,
    /// The value after the current `:` is the `Records` value.
    records_next: bool,
}

impl Splitter {
    fn chunk(&mut self, buf: &[u8], on_piece: &mut dyn FnMut(Piece<'_>)) -> Result<(), String> {
        // Start of the current element's bytes in this buffer.
        let mut seg: Option<usize> = self.in_elem.then_some(0);
        let mut i = 0;
        // Bytes before this go through the byte loop (a block the block path declined).
        let mut bytewise_to = 0;
        while i < buf.len() {
            if self.blocks && self.in_elem && self.elem_container && i >= bytewise_to {
                i = self.skip_inside(buf, i, &mut bytewise_to);
                if i >= buf.len() {
                    break;
                }
            }
            if self.in_str {
                if self.esc {
                    self.esc = false;
                    if self.capturing_key {
                        self.key.push(buf[i]);
                    }
                    i += 1;
                    continue;
                }
                match memchr::memchr2(b'"', b'\\', &buf[i..]) {
                    None => {
                        if self.capturing_key {
                            self.key.extend_from_slice(&buf[i..]);
                        }
                        i = buf.len();
                    }
                    Some(off) => {
                        let j = i + off;
                        if self.capturing_key {
                            self.key.extend_from_slice(&buf[i..j]);
                        }
                        if buf[j] == b'\\' {
                            if self.capturing_key {
                                self.key.push(b'\\');
                            }
                            self.esc = true;
                        } else {
                            self.in_str = false;
                            self.capturing_key = false;
                        }
                        i = j + 1;
                    }
                }
                continue;
            }
            let b = buf[i];
            if self.closed {
                if !b.is_ascii_whitespace() {
                    return Err("trailing characters after the top-level value".into());
                }
                i += 1;
                continue;
            }
            if let Some(d) = self.elem_depth {
                if self.depth == d {
                    if self.in_elem && !self.elem_container && is_scalar_end(b) {
                        // A scalar element ends before this byte.
                        self.emit(buf, seg.take(), i, on_piece);
                        continue;
                    }
                    if !self.in_elem {
                        match b {
                            b',' => {
                                i += 1;
                                continue;
                            }
                            _ if b.is_ascii_whitespace() => {
                                i += 1;
                                continue;
                            }
                            b']' => {
                                // The records array closes.
                                self.elem_depth = None;
                                self.depth -= 1;
                                if self.depth == 0 {
                                    self.closed = true;
                                }
                                i += 1;
                                continue;
                            }
                            _ => {
                                self.in_elem = true;
                                self.elem_container = b == b'{' || b == b'[';
                                self.oversize = false;
                                seg = Some(i);
                            }
                        }
                    }
                }
            }
            match b {
                b'"' => {
                    if self.depth == 1 && self.records_next {
                        return Err("\"Records\" is not an array".into());
                    }
                    self.in_str = true;
                    if self.layout == Layout::Records && self.depth == 1 && self.key_pos {
                        self.capturing_key = true;
                        self.key.clear();
                    }
                }
                b'{' | b'[' => {
                    if self.depth == 0 {
                        match (self.layout, b) {
                            (Layout::Array, b'[') => self.elem_depth = Some(1),
                            (Layout::Records, b'{') => self.key_pos = true,
                            _ => return Err("not a CloudTrail delivery object or array".into()),
                        }
                    } else if self.depth == 1 && self.records_next {
                        self.records_next = false;
                        if b == b'[' {
                            self.elem_depth = Some(2);
                        } else {
                            return Err("\"Records\" is not an array".into());
                        }
                    }
                    self.depth += 1;
                }
                b'}' | b']' => {
                    if self.depth == 0 {
                        return Err(format!("unexpected '{}'", b as char));
                    }
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.closed = true;
                    }
                    if self.in_elem && self.elem_container && Some(self.depth) == self.elem_depth {
                        self.emit(buf, seg.take(), i + 1, on_piece);
                    }
                }
                b':' if self.layout == Layout::Records && self.depth == 1 => {
                    self.key_pos = false;
                    self.records_next = self.key == b"Records";
                }
                b',' if self.layout == Layout::Records && self.depth == 1 => {
                    self.key_pos = true;
                    self.records_next = false;
                }
                _ if self.depth == 1 && self.records_next && !b.is_ascii_whitespace() => {
                    return Err("\"Records\" is not an array".into());
                }
                _ => {}
            }
            i += 1;
        }
        if let Some(s) = seg {
            self.keep(&buf[s..]);
        }
        Ok(())
    }

    /// Inside a container element, from `i`: skips to the bracket that closes the element, 64
    /// bytes at a time, or to the end of `buf`, keeping the depth and string state as the byte
    /// loop would. Returns where the byte loop goes on: at the closing bracket (not consumed),
    /// at `buf.len()`, or at the start of a block holding a backslash outside a string (not
    /// JSON; the byte loop reads it as it always has), with `bytewise_to` set to its end.
    fn skip_inside(&mut self, buf: &[u8], mut i: usize, bytewise_to: &mut usize) -> usize {
        let Some(elem_depth) = self.elem_depth else {
            return i;
        };
        // All ones when the block starts inside a string; 1 when its first byte is escaped.
        let mut in_str = if self.in_str { u64::MAX } else { 0 };
        let mut esc = u64::from(self.esc);
        while i < buf.len() {
            let n = (buf.len() - i).min(64);
            let masks = match buf
                .get(i..i + 64)
                .and_then(|b| <&[u8; 64]>::try_from(b).ok())
            {
                Some(block) => Masks::of(block),
                None => {
                    // The last bytes, padded with spaces (nothing to JSON's structure).
                    let mut block = [b' '; 64];
                    block[..n].copy_from_slice(&buf[i..]);
                    Masks::of(&block)
                }
            };
            let valid = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            let mut carry = esc;
            let escaped = escaped(masks.backslash, &mut carry);
            // Bit k: byte k is inside a string (an opening quote is, a closing one is not).
            let inside = prefix_xor(masks.quote & !escaped) ^ in_str;
            if masks.backslash & !inside & valid != 0 {
                self.in_str = in_str != 0;
                self.esc = esc != 0;
                *bytewise_to = i + n;
                return i;
            }
            let mut brackets = (masks.open | masks.close) & !inside & valid;
            let mut depth = self.depth;
            while brackets != 0 {
                let k = brackets.trailing_zeros();
                if masks.open >> k & 1 == 1 {
                    depth += 1;
                } else if depth == elem_depth + 1 {
                    self.depth = depth;
                    self.in_str = false;
                    self.esc = false;
                    return i + k as usize;
                } else {
                    depth -= 1;
                }
                brackets &= brackets - 1;
            }
            self.depth = depth;
            // The state after the block's last byte.
            in_str = (inside >> (n - 1) & 1).wrapping_neg();
            esc = if n == 64 { carry } else { escaped >> n & 1 };
            i += n;
        }
        self.in_str = in_str != 0;
        self.esc = esc != 0;
        i
    }

    /// Adds bytes of the current element, unless it has grown past the cap.
    fn keep(&mut self, bytes: &[u8]) {
        if self.oversize {
            return;
        }
        if self.cur.len() + bytes.len() > MAX_RECORD_BYTES {
            self.oversize = true;
            self.cur = Vec::new();
            return;
        }
        self.cur.extend_from_slice(bytes);
    }

    /// The current element ends at `end` in `buf`; its bytes in `buf` start at `seg` (0 when it
    /// began in an earlier buffer, whose bytes are in `cur`).
    fn emit(
        &mut self,
        buf: &[u8],
        seg: Option<usize>,
        end: usize,
        on_piece: &mut dyn FnMut(Piece<'_>),
    ) {
        self.in_elem = false;
        let start = seg.unwrap_or(end);
        if self.oversize {
            self.oversize = false;
            on_piece(Piece::Skipped(format!(
                "record larger than {} MB, skipped",
                MAX_RECORD_BYTES >> 20
            )));
            return;
        }
        if self.cur.is_empty() {
            on_piece(Piece::Record(&buf[start..end]));
        } else {
            self.keep(&buf[start..end]);
            if self.oversize {
                self.oversize = false;
                on_piece(Piece::Skipped(format!(
                    "record larger than {} MB, skipped",
                    MAX_RECORD_BYTES >> 20
                )));
            } else {
                on_piece(Piece::Record(&self.cur));
            }
            self.cur.clear();
        }
    }

    fn finish(&self) -> Result<(), String> {
        if self.closed {
            Ok(())
        } else if self.depth == 0 && !self.in_str {
            Err("empty input".into())
        } else {
            Err("unexpected end of file (truncated?)".into())
        }
    }
}

/// Where the quotes, backslashes and opening and closing brackets of a 64-byte block are (bit
/// k: byte k).
struct Masks {
    quote: u64,
    backslash: u64,
    open: u64,
    close: u64,
}

impl Masks {
    fn of(block: &[u8; 64]) -> Masks {
        use wide::u8x16;
        let quote = u8x16::splat(b'"');
        let backslash = u8x16::splat(b'\\');
        // `[` and `]` are `{` and `}` without the 0x20 bit, and no other byte is.
        let (low, open, close) = (u8x16::splat(0x20), u8x16::splat(b'{'), u8x16::splat(b'}'));
        let mut m = Masks {
            quote: 0,
            backslash: 0,
            open: 0,
            close: 0,
        };
        for (k, lane) in block.chunks_exact(16).enumerate() {
            let Ok(bytes) = <[u8; 16]>::try_from(lane) else {
                continue;
            };
            let v = u8x16::new(bytes);
            let folded = v | low;
            let bits = |eq: u8x16| u64::from(eq.move_mask() as u16) << (16 * k);
            m.quote |= bits(v.cmp_eq(quote));
            m.backslash |= bits(v.cmp_eq(backslash));
            m.open |= bits(folded.cmp_eq(open));
            m.close |= bits(folded.cmp_eq(close));
        }
        m
    }
}

/// The bytes escaped by a backslash, from the backslashes' mask; `carry` is 1 when the first
/// byte is escaped (by the previous block) and becomes that for the next block (simdjson's
/// `find_escaped_branchless`: in a run of backslashes every other one escapes the next byte).
fn escaped(backslash: u64, carry: &mut u64) -> u64 {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    let backslash = backslash & !*carry;
    let follows_escape = backslash << 1 | *carry;
    let odd_starts = backslash & !EVEN & !follows_escape;
    let (even_starts, overflow) = odd_starts.overflowing_add(backslash);
    *carry = u64::from(overflow);
    (EVEN ^ (even_starts << 1)) & follows_escape
}

/// Bit k: the parity of the bits 0..=k (the string state after each quote).
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Bytes that end a scalar array element (number, literal, string).
fn is_scalar_end(b: u8) -> bool {
    b == b',' || b == b']' || b.is_ascii_whitespace()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Splits `input` fed through a reader with a tiny buffer (every boundary case).
    fn pieces(input: &str, layout: Layout, buf: usize) -> (Vec<String>, Result<(), String>) {
        let mut r = std::io::BufReader::with_capacity(buf, input.as_bytes());
        let mut out = Vec::new();
        let res = split(&mut r, layout, &mut |p| match p {
            Piece::Record(b) => out.push(String::from_utf8(b.to_vec()).unwrap()),
            Piece::Skipped(r) => out.push(format!("skipped: {r}")),
        });
        (out, res)
    }

    #[test]
    fn records_are_cut_exactly_at_every_buffer_size() {
        let input = r#" { "x" : {"Records": 1}, "Records" : [ {"a": "]}\"[{", "b": [1, {"c": null}]},
            {"k": "\\"}, 7 , "s,]" ,[] ,{}], "after": [{"Records": [9]}] } "#;
        let want = vec![
            r#"{"a": "]}\"[{", "b": [1, {"c": null}]}"#,
            r#"{"k": "\\"}"#,
            "7",
            r#""s,]""#,
            "[]",
            "{}",
        ];
        for buf in 1..=input.len() {
            let (got, res) = pieces(input, Layout::Records, buf);
            assert_eq!(res, Ok(()), "buffer {buf}");
            assert_eq!(got, want, "buffer {buf}");
        }
        let (got, res) = pieces(r#"[{"a":1},{"b":[2]}]"#, Layout::Array, 3);
        assert_eq!(res, Ok(()));
        assert_eq!(got, vec![r#"{"a":1}"#, r#"{"b":[2]}"#]);
    }

    #[test]
    fn broken_structure_is_an_error_after_the_good_records() {
        let (got, res) = pieces(r#"{"Records":[{"a":1},{"b":"#, Layout::Records, 4);
        assert_eq!(got, vec![r#"{"a":1}"#]);
        assert!(res.unwrap_err().contains("unexpected end of file"));
        let (_, res) = pieces(r#"{"Records": {"a": 1}}"#, Layout::Records, 8);
        assert_eq!(res.unwrap_err(), "\"Records\" is not an array");
        for v in ["null", "\"x\"", "3"] {
            let (_, res) = pieces(&format!(r#"{{"Records": {v}}}"#), Layout::Records, 8);
            assert_eq!(res.unwrap_err(), "\"Records\" is not an array", "{v}");
        }
        let (got, res) = pieces(r#"[{"a":1}] x"#, Layout::Array, 8);
        assert_eq!(got.len(), 1);
        assert!(res.unwrap_err().contains("trailing"));
        let (got, res) = pieces(r#"{"Records": []}"#, Layout::Records, 8);
        assert!(got.is_empty());
        assert_eq!(res, Ok(()));
    }

    /// The pieces (records, or the reasons they were skipped) and the result of one split.
    type Split = (Vec<Vec<u8>>, Result<(), String>);

    /// The splits of the block path and of the byte loop, with a reader buffer of `buf` bytes.
    fn both(input: &[u8], layout: Layout, buf: usize) -> [Split; 2] {
        [true, false].map(|blocks| {
            let mut r = std::io::BufReader::with_capacity(buf, input);
            let mut out = Vec::new();
            let res = split_with(&mut r, layout, blocks, &mut |p| match p {
                Piece::Record(b) => out.push(b.to_vec()),
                Piece::Skipped(r) => out.push(r.into_bytes()),
            });
            (out, res)
        })
    }

    /// Text made of JSON's structural bytes, backslashes, letters and a two-byte character, in
    /// runs long enough to cross 64-byte blocks.
    fn structural_text() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"{".to_vec()),
            Just(b"}".to_vec()),
            Just(b"[".to_vec()),
            Just(b"]".to_vec()),
            Just(b"\"".to_vec()),
            Just(b"\\".to_vec()),
            Just(b"\\\\".to_vec()),
            Just(b"\\\"".to_vec()),
            Just(b",".to_vec()),
            Just(b":".to_vec()),
            Just(b" ".to_vec()),
            Just("é".as_bytes().to_vec()),
            "[a-z]{1,70}".prop_map(String::into_bytes),
        ];
        proptest::collection::vec(piece, 0..120).prop_map(|p| p.concat())
    }

    /// A record: an object of strings with quotes, backslashes and brackets in them, and
    /// nested arrays and objects.
    fn record() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            "[a-z\\\\\"{}\\[\\] é]{0,90}".prop_map(serde_json::Value::String),
            any::<i32>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
        ];
        let value = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map("[a-z\\\\\"]{1,12}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        });
        proptest::collection::btree_map("[a-z]{1,8}", value, 0..6)
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()).to_string())
    }

    proptest::proptest! {
        #[test]
        fn the_block_path_cuts_records_as_the_byte_loop_does(
            body in structural_text(),
            array in any::<bool>(),
            buf in 1usize..300,
        ) {
            let (layout, head): (_, &[u8]) = if array {
                (Layout::Array, b"[{")
            } else {
                (Layout::Records, b"{\"Records\": [{")
            };
            let input = [head, &body, b"}]}"].concat();
            let [blocks, bytes] = both(&input, layout, buf);
            proptest::prop_assert_eq!(blocks, bytes);
        }

        #[test]
        fn records_of_any_json_are_cut_exactly(
            records in proptest::collection::vec(record(), 0..6),
            pretty in any::<bool>(),
            buf in 1usize..500,
        ) {
            let sep = if pretty { ",\n  " } else { "," };
            let input = format!("{{\"Records\": [{}], \"x\": 1}}", records.join(sep));
            let [blocks, bytes] = both(input.as_bytes(), Layout::Records, buf);
            proptest::prop_assert_eq!(&blocks, &bytes);
            let want: Vec<Vec<u8>> = records.iter().map(|r| r.clone().into_bytes()).collect();
            proptest::prop_assert_eq!(blocks, (want, Ok(())));
        }
    }

    #[test]
    fn a_record_with_balanced_brackets_but_bad_json_does_not_stop_the_rest() {
        let (got, res) = pieces(r#"[{"a": }, {"b": 2}]"#, Layout::Array, 5);
        assert_eq!(res, Ok(()));
        assert_eq!(got, vec![r#"{"a": }"#, r#"{"b": 2}"#]);
    }
}
