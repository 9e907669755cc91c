//! Finding the records of a `{"Records": [...]}` delivery object or of a top-level JSON array as
//! the bytes stream by, without parsing them: only strings (with their escapes) and bracket
//! depth are tracked, so each record's extent is found at memory speed and the record is then
//! parsed from a slice (`serde_json`'s slice reader is several times faster than its
//! `io::Read` one, which goes through the reader a byte at a time).
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
    let mut s = Splitter {
        layout,
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
        while i < buf.len() {
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

/// Bytes that end a scalar array element (number, literal, string).
fn is_scalar_end(b: u8) -> bool {
    b == b',' || b == b']' || b.is_ascii_whitespace()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

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

    #[test]
    fn a_record_with_balanced_brackets_but_bad_json_does_not_stop_the_rest() {
        let (got, res) = pieces(r#"[{"a": }, {"b": 2}]"#, Layout::Array, 5);
        assert_eq!(res, Ok(()));
        assert_eq!(got, vec![r#"{"a": }"#, r#"{"b": 2}"#]);
    }
}
