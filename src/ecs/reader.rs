//! Reading CloudTrail as AWS delivers it and as people export it, incrementally.
//!
//! Accepted, gzipped or not (gzip is recognised by its magic bytes): S3 delivery files
//! (`{"Records": [...]}`), a JSON array of records, one record per line (NDJSON, the pipeline
//! tests' `.log` files), a single record, and already-ECS documents (an object with `@timestamp`
//! and no `eventTime`, passed through unchanged). Folders are walked recursively in sorted path
//! order, taking `.json`, `.jsonl`, `.ndjson`, `.log` and `.gz` files.
//!
//! Records are handed on one at a time: in `Records` files and arrays each record's bytes are
//! found by `split` (strings and bracket depth only) and parsed from a slice, NDJSON is read line
//! by line, so memory is bounded by one record. Bad input never stops the run: a broken record,
//! a non-CloudTrail object, an unreadable or truncated file is reported (file, record number,
//! reason) and skipped; a truncation or broken structure inside a `Records` array ends that
//! file, keeping the records read before it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::value::RawValue;

use super::doc::EcsDoc;
use super::json::Json;
use super::normalize::{normalize_parsed, NormalizeOptions};
use super::split::{split, Layout, Piece};

/// One ECS document and where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    pub doc: EcsDoc,
    pub file: PathBuf,
    /// 1-based record number within the file.
    pub record: usize,
}

/// A record or file that was skipped.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{}: {reason}", file.display(), record.map(|r| format!(": record {r}")).unwrap_or_default())]
pub struct ReadError {
    pub file: PathBuf,
    /// 1-based record number, `None` for a whole-file problem.
    pub record: Option<usize>,
    pub reason: String,
}

/// Counts of one `read_paths` run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadSummary {
    pub files: usize,
    pub documents: usize,
    pub errors: usize,
}

const EXTENSIONS: &[&str] = &["json", "jsonl", "ndjson", "log", "gz"];

/// Files up to this size are read whole (larger ones are streamed).
#[cfg(not(test))]
const WHOLE_FILE_BYTES: u64 = 64 << 20;
#[cfg(test)]
const WHOLE_FILE_BYTES: u64 = 4096;

/// A larger input buffer is not kept for the next file.
const KEPT_BUFFER_BYTES: usize = 8 << 20;

/// A gzip member that inflates to at most this (by its trailer) is inflated whole (larger ones
/// are inflated a chunk at a time).
#[cfg(not(test))]
const WHOLE_INFLATE_BYTES: usize = KEPT_BUFFER_BYTES;
#[cfg(test)]
const WHOLE_INFLATE_BYTES: usize = 4096;

/// Inflated bytes handed to the splitter at a time.
const INFLATE_CHUNK: usize = 1 << 16;

/// The buffers and inflate state a thread reuses from file to file.
struct Buffers {
    input: Vec<u8>,
    output: Vec<u8>,
    inflate: flate2::Decompress,
    /// A whole file's inflated bytes; its length only grows (zeroed once), up to
    /// `KEPT_BUFFER_BYTES`.
    whole: Vec<u8>,
    deflate: libdeflater::Decompressor,
}

impl Buffers {
    fn new() -> Buffers {
        Buffers {
            input: Vec::new(),
            output: vec![0; INFLATE_CHUNK],
            inflate: flate2::Decompress::new(false),
            whole: Vec::new(),
            deflate: libdeflater::Decompressor::new(),
        }
    }
}

/// Inflates a gzip file of one member whole, with libdeflate, into `out` (sized from the
/// member's trailer); the inflated length, or `None` for anything else (several members,
/// bytes after the member, a corrupt or truncated member, a trailer size that is wrong or too
/// large), which `Gunzip` then reads, and reports, as before.
///
/// libdeflater does not say where the member ended (libdeflate's `_ex` functions are not
/// bound), and libdeflate ignores what follows the first member: so the file must end with the
/// trailer of what was inflated, and hold no gzip magic after its header (another member
/// starts with one). What this cannot tell from one member is bytes without the magic between
/// the member and a copy of its own trailer at the end of the file: those are ignored here,
/// where `Gunzip` reports them.
fn inflate_whole(
    input: &[u8],
    out: &mut Vec<u8>,
    deflate: &mut libdeflater::Decompressor,
) -> Option<usize> {
    let body_end = input.len().checked_sub(8)?;
    let trailer = input.get(body_end..)?;
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    // ISIZE is the length mod 2^32: if it lies, inflation runs out of room (or the lengths
    // differ) and `Gunzip` takes over.
    let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]) as usize;
    if size > WHOLE_INFLATE_BYTES
        || memchr::memmem::find(input.get(10..body_end)?, &[0x1f, 0x8b, 8]).is_some()
    {
        return None;
    }
    if out.len() < size {
        // Zeroed once: the length is kept from file to file.
        out.resize(size, 0);
    }
    let dest = out.get_mut(..size)?;
    let n = deflate.gzip_decompress(input, dest).ok()?;
    let inflated = dest.get(..n)?;
    (n == size && libdeflater::crc32(inflated) == crc).then_some(n)
}

thread_local! {
    static BUFFERS: std::cell::Cell<Option<Buffers>> = const { std::cell::Cell::new(None) };
}

/// The gzip members (RFC 1952) of a file held in memory, inflated a chunk at a time with a
/// reused raw-deflate state; each member's CRC-32 and length are checked, as `flate2`'s
/// `MultiGzDecoder` does.
struct Gunzip<'a> {
    input: &'a [u8],
    pos: usize,
    output: &'a mut [u8],
    start: usize,
    end: usize,
    inflate: &'a mut flate2::Decompress,
    crc: crc32fast::Hasher,
    size: u32,
    /// Inside a member's deflate stream (else at a header or the end).
    in_member: bool,
}

impl<'a> Gunzip<'a> {
    fn new(
        input: &'a [u8],
        output: &'a mut [u8],
        inflate: &'a mut flate2::Decompress,
    ) -> Gunzip<'a> {
        Gunzip {
            input,
            pos: 0,
            output,
            start: 0,
            end: 0,
            inflate,
            crc: crc32fast::Hasher::new(),
            size: 0,
            in_member: false,
        }
    }

    /// Reads a member header at `pos`; false at the end of the input.
    fn header(&mut self) -> std::io::Result<bool> {
        use std::io::{Error, ErrorKind};
        let b = self.input.get(self.pos..).unwrap_or_default();
        if b.is_empty() {
            return Ok(false);
        }
        let eof = || Error::new(ErrorKind::UnexpectedEof, "truncated gzip header");
        if b.len() < 10 {
            return Err(eof());
        }
        if b[..3] != [0x1f, 0x8b, 8] || b[3] & 0xe0 != 0 {
            return Err(Error::new(ErrorKind::InvalidData, "invalid gzip header"));
        }
        let flags = b[3];
        let mut p = 10usize;
        if flags & 4 != 0 {
            let len = b.get(p..p + 2).ok_or_else(eof)?;
            p += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
        }
        for bit in [8u8, 16] {
            if flags & bit != 0 {
                let rest = b.get(p..).ok_or_else(eof)?;
                p += memchr::memchr(0, rest).ok_or_else(eof)? + 1;
            }
        }
        if flags & 2 != 0 {
            p += 2;
        }
        if p > b.len() {
            return Err(eof());
        }
        self.pos += p;
        self.inflate.reset(false);
        self.crc = crc32fast::Hasher::new();
        self.size = 0;
        self.in_member = true;
        Ok(true)
    }

    /// Checks the member trailer at `pos`.
    fn trailer(&mut self) -> std::io::Result<()> {
        use std::io::{Error, ErrorKind};
        let t = self
            .input
            .get(self.pos..self.pos + 8)
            .ok_or_else(|| Error::new(ErrorKind::UnexpectedEof, "truncated gzip trailer"))?;
        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let size = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        let ours = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        if crc != ours || size != self.size {
            return Err(Error::new(
                ErrorKind::InvalidData,
                "gzip member checksum or length mismatch",
            ));
        }
        self.pos += 8;
        self.in_member = false;
        Ok(())
    }
}

impl Read for Gunzip<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Gunzip<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        use std::io::{Error, ErrorKind};
        while self.start == self.end {
            if !self.in_member {
                if !self.header()? {
                    break;
                }
                continue;
            }
            let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
            let input = self.input.get(self.pos..).unwrap_or_default();
            let status = self
                .inflate
                .decompress(input, self.output, flate2::FlushDecompress::None)
                .map_err(|e| Error::new(ErrorKind::InvalidData, e))?;
            let consumed = usize::try_from(self.inflate.total_in() - before_in).unwrap_or(0);
            let produced = usize::try_from(self.inflate.total_out() - before_out).unwrap_or(0);
            self.pos += consumed;
            let out = self.output.get(..produced).unwrap_or_default();
            self.crc.update(out);
            self.size = self.size.wrapping_add(produced as u32);
            (self.start, self.end) = (0, produced);
            if status == flate2::Status::StreamEnd {
                self.trailer()?;
            } else if consumed == 0 && produced == 0 {
                return Err(Error::new(
                    ErrorKind::UnexpectedEof,
                    "gzip stream ends early",
                ));
            }
        }
        Ok(self.output.get(self.start..self.end).unwrap_or_default())
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }
}

/// The files `paths` name: files as given, folders walked recursively (sorted), keeping the
/// extensions this reader understands.
pub fn expand_paths(paths: &[PathBuf], on_error: &mut dyn FnMut(ReadError)) -> Vec<PathBuf> {
    forget_folders();
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let walk = walkdir::WalkDir::new(p).sort_by(|a, b| entry_name(a).cmp(entry_name(b)));
            for e in walk {
                match e {
                    Ok(e) if e.file_type().is_file() => {
                        let ext = e.path().extension().and_then(|x| x.to_str()).unwrap_or("");
                        if EXTENSIONS.contains(&ext) {
                            out.push(e.into_path());
                        }
                    }
                    Ok(_) => {}
                    Err(err) => on_error(ReadError {
                        file: err.path().unwrap_or(p).to_path_buf(),
                        record: None,
                        reason: err.to_string(),
                    }),
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    out
}

/// The name of a walked entry, as sorting compares it: the bytes after the path's last `/` (an
/// entry below the root is its folder's path joined with the name read from it).
/// `sort_by_file_name` takes `Path::file_name`, which parses the path's components from the end
/// on every comparison (~1.6% of a hunt over a day of small delivery files).
#[cfg(unix)]
fn entry_name(e: &walkdir::DirEntry) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    let path = e.path().as_os_str().as_bytes();
    match memchr::memrchr(b'/', path) {
        Some(i) if e.depth() > 0 => &path[i + 1..],
        _ => e.file_name().as_bytes(),
    }
}

#[cfg(not(unix))]
fn entry_name(e: &walkdir::DirEntry) -> &std::ffi::OsStr {
    e.file_name()
}

/// Reads every file `paths` name, normalising raw records, calling `on_doc` for each document
/// and `on_error` for each skipped record or file.
pub fn read_paths(
    paths: &[PathBuf],
    opts: &NormalizeOptions,
    mut on_doc: impl FnMut(Document),
    mut on_error: impl FnMut(ReadError),
) -> ReadSummary {
    let mut summary = ReadSummary::default();
    let mut errors = 0usize;
    let mut counting_error = |e: ReadError| {
        errors += 1;
        on_error(e);
    };
    let files = expand_paths(paths, &mut counting_error);
    for f in &files {
        summary.files += 1;
        let mut docs = 0usize;
        read_file(
            f,
            opts,
            &mut |d| {
                docs += 1;
                on_doc(d);
            },
            &mut counting_error,
        );
        summary.documents += docs;
    }
    summary.errors = errors;
    summary
}

/// Reads one file (see the module documentation for formats).
pub fn read_file(
    path: &Path,
    opts: &NormalizeOptions,
    on_doc: &mut dyn FnMut(Document),
    on_error: &mut dyn FnMut(ReadError),
) {
    read_file_filtered(path, opts, None, on_doc, on_error);
}

/// [`read_file`], skipping (before parsing) each record whose text `skip` accepts; returns the
/// number of records skipped.
pub fn read_file_filtered(
    path: &Path,
    opts: &NormalizeOptions,
    skip: Option<&dyn Fn(&str) -> bool>,
    on_doc: &mut dyn FnMut(Document),
    on_error: &mut dyn FnMut(ReadError),
) -> usize {
    let file_error = |reason: String| ReadError {
        file: path.to_path_buf(),
        record: None,
        reason,
    };
    let mut file = match open(path) {
        Ok(f) => f,
        Err(e) => {
            on_error(file_error(format!("cannot open: {e}")));
            return 0;
        }
    };
    // A file of ordinary size is read whole into this thread's buffers and, when gzipped,
    // inflated with its reused state: no allocation per file.
    let mut bufs = BUFFERS.with(|b| b.take()).unwrap_or_else(Buffers::new);
    let mut read = match read_head(&mut file, &mut bufs.input) {
        Ok(r) => r,
        Err(e) => {
            BUFFERS.with(|b| b.set(Some(bufs)));
            on_error(file_error(format!("cannot read: {e}")));
            return 0;
        }
    };
    let Buffers {
        input,
        output,
        inflate,
        whole,
        deflate,
    } = &mut bufs;
    // A short first read of a gzip file is its end when what it read is one whole member:
    // inflated here; anything else reads on to the end of the file.
    let mut inflated = None;
    if !read.ended {
        inflated = input
            .get(..read.len)
            .and_then(|head| inflate_whole(head, whole, deflate));
        if inflated.is_none() {
            read = match read_rest(&mut file, input, read.len) {
                Ok(r) => r,
                Err(e) => {
                    BUFFERS.with(|b| b.set(Some(bufs)));
                    on_error(file_error(format!("cannot read: {e}")));
                    return 0;
                }
            };
        }
    }
    if read.ended || inflated.is_some() {
        let data = input.get(..read.len).unwrap_or_default();
        let skipped = if data.starts_with(&[0x1f, 0x8b]) {
            let reader: Box<dyn BufRead> =
                match inflated.or_else(|| inflate_whole(data, whole, deflate)) {
                    Some(n) => Box::new(whole.get(..n).unwrap_or_default()),
                    None => Box::new(Gunzip::new(data, output.as_mut_slice(), inflate)),
                };
            read_stream_filtered(reader, path, opts, skip, on_doc, on_error)
        } else {
            read_stream_filtered(Box::new(data), path, opts, skip, on_doc, on_error)
        };
        if input.len() > KEPT_BUFFER_BYTES {
            *input = Vec::new();
        }
        BUFFERS.with(|b| b.set(Some(bufs)));
        return skipped;
    }
    // A larger file is streamed: what was read, then the rest.
    let mut head = std::mem::take(&mut bufs.input);
    head.truncate(read.len);
    BUFFERS.with(|b| b.set(Some(bufs)));
    let file = std::io::Cursor::new(head).chain(file);
    let mut raw = BufReader::with_capacity(1 << 16, file);
    let gz = match raw.fill_buf() {
        Ok(b) => b.starts_with(&[0x1f, 0x8b]),
        Err(e) => {
            on_error(file_error(format!("cannot read: {e}")));
            return 0;
        }
    };
    let reader: Box<dyn BufRead> = if gz {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::bufread::MultiGzDecoder::new(raw),
        ))
    } else {
        Box::new(raw)
    };
    read_stream_filtered(reader, path, opts, skip, on_doc, on_error)
}

/// What [`read_head`] or [`read_rest`] read.
struct Head {
    /// Bytes read, at the start of the buffer.
    len: usize,
    /// The end of the file was seen (else: `WHOLE_FILE_BYTES + 1` bytes were read, or a first
    /// read returned fewer bytes than asked, see [`read_head`]).
    ended: bool,
}

/// The first read of a file asks for this much (the buffer is kept from file to file).
const FIRST_READ: usize = 64 << 10;

/// A first read of a gzip file that returns fewer bytes than asked, and fewer than this, stops
/// reading: a regular file's read returns less than asked only at its end, so the read that
/// would return 0 is saved (one system call per delivery file) when the bytes are a whole gzip
/// member, checked by its trailer. Network file systems cut reads at 32 KiB or more.
const SHORT_READ_END: usize = 32 << 10;

/// Reads the start of `file` into `buf`, which is kept initialised from file to file (its
/// length only grows): up to `WHOLE_FILE_BYTES + 1` bytes, stopping early after a short first
/// read of a small gzip file (see [`SHORT_READ_END`]).
fn read_head(file: &mut File, buf: &mut Vec<u8>) -> std::io::Result<Head> {
    if buf.len() < FIRST_READ {
        buf.resize(FIRST_READ, 0);
    }
    let room = buf.len().min(read_limit());
    let n = loop {
        match file.read(buf.get_mut(..room).unwrap_or_default()) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    if n == 0 {
        return Ok(Head {
            len: 0,
            ended: true,
        });
    }
    if n < room && n < SHORT_READ_END && buf.starts_with(&[0x1f, 0x8b]) {
        return Ok(Head {
            len: n,
            ended: false,
        });
    }
    read_rest(file, buf, n)
}

/// Reads on from `len` bytes already in `buf` to the end of `file`, or until more than
/// `WHOLE_FILE_BYTES` were read.
fn read_rest(file: &mut File, buf: &mut Vec<u8>, mut len: usize) -> std::io::Result<Head> {
    let limit = read_limit();
    while len < limit {
        if len == buf.len() {
            let grown = len.max(FIRST_READ).saturating_mul(2).min(limit);
            buf.resize(grown, 0);
        }
        let end = buf.len().min(limit);
        match file.read(buf.get_mut(len..end).unwrap_or_default()) {
            Ok(0) => return Ok(Head { len, ended: true }),
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Head { len, ended: false })
}

/// A file is read whole when it ends within this many bytes (`WHOLE_FILE_BYTES` and one).
fn read_limit() -> usize {
    usize::try_from(WHOLE_FILE_BYTES)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
}

/// Opens `path` for reading. On Linux the file is opened relative to its folder, kept open
/// (`O_PATH`) from an earlier call on this thread while no listing happened since (see
/// [`forget_folders`]): resolving every component of a long path again for each small file was
/// ~7% of a hunt (the kernel's path walk). The last [`KEPT_FOLDERS`] folders are kept, most
/// recent first: a hunt reads an hour of delivery files at a time, which spans a folder per
/// account and region. Anything unusual, and any failure, goes through `File::open(path)`, so
/// errors read as before.
#[cfg(target_os = "linux")]
fn open(path: &Path) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let Some(slash) = memchr::memrchr(b'/', bytes) else {
        return File::open(path);
    };
    let (dir, name) = (&bytes[..slash.max(1)], &bytes[slash + 1..]);
    // `name` is what the kernel would resolve last; `a/b/` (a folder) and `..` stay with
    // `File::open`, whose path walk treats them its own way.
    if name.is_empty() || name == b"." || name == b".." {
        return File::open(path);
    }
    let listing = LISTING.load(std::sync::atomic::Ordering::Relaxed);
    let opened = DIRS.with(|cache| {
        let mut cache = cache.borrow_mut();
        cache.retain(|f| f.listing == listing);
        match cache.iter().position(|f| f.path.as_slice() == dir) {
            Some(0) => {}
            Some(at) => {
                let folder = cache.remove(at);
                cache.insert(0, folder);
            }
            None => {
                let fd = rustix::fs::open(
                    std::ffi::OsStr::from_bytes(dir),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ok()?;
                cache.truncate(KEPT_FOLDERS - 1);
                cache.insert(
                    0,
                    Folder {
                        path: dir.to_vec(),
                        fd,
                        listing,
                    },
                );
            }
        }
        rustix::fs::openat(
            &cache.first()?.fd,
            std::ffi::OsStr::from_bytes(name),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()
    });
    match opened {
        Some(fd) => Ok(File::from(fd)),
        None => File::open(path),
    }
}

/// How many folders [`open`] keeps open per thread.
#[cfg(target_os = "linux")]
const KEPT_FOLDERS: usize = 64;

#[cfg(not(target_os = "linux"))]
fn open(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

/// Makes every thread's [`open`] forget the folder it keeps, so that a kept folder never
/// outlives the listing it serves (a folder renamed or replaced since would still be read):
/// called by [`expand_paths`], on whichever thread lists.
fn forget_folders() {
    #[cfg(target_os = "linux")]
    LISTING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Counts [`expand_paths`] calls; a kept folder is used only under the count it was opened at.
#[cfg(target_os = "linux")]
static LISTING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A folder [`open`] keeps.
#[cfg(target_os = "linux")]
struct Folder {
    path: Vec<u8>,
    fd: std::os::fd::OwnedFd,
    /// [`LISTING`] when it was opened.
    listing: u64,
}

#[cfg(target_os = "linux")]
thread_local! {
    /// The folders of the files [`open`] opened last on this thread, most recent first.
    static DIRS: std::cell::RefCell<Vec<Folder>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads from any buffered reader; `path` names it in documents and errors.
pub fn read_stream(
    reader: Box<dyn BufRead + '_>,
    path: &Path,
    opts: &NormalizeOptions,
    on_doc: &mut dyn FnMut(Document),
    on_error: &mut dyn FnMut(ReadError),
) {
    read_stream_filtered(reader, path, opts, None, on_doc, on_error);
}

fn read_stream_filtered(
    mut reader: Box<dyn BufRead + '_>,
    path: &Path,
    opts: &NormalizeOptions,
    skip: Option<&dyn Fn(&str) -> bool>,
    on_doc: &mut dyn FnMut(Document),
    on_error: &mut dyn FnMut(ReadError),
) -> usize {
    let head = match reader.fill_buf() {
        Ok(b) => sniff(b),
        Err(e) => {
            on_error(ReadError {
                file: path.to_path_buf(),
                record: None,
                reason: format!("cannot read: {e}"),
            });
            return 0;
        }
    };
    let mut ctx = RecordSink {
        path,
        opts,
        on_doc,
        on_error,
        record: 0,
        skip,
        skipped: 0,
    };
    match head {
        Shape::Records | Shape::Array => {
            let layout = if head == Shape::Records {
                Layout::Records
            } else {
                Layout::Array
            };
            let res = split(&mut *reader, layout, &mut |p| match p {
                Piece::Record(bytes) => match std::str::from_utf8(bytes) {
                    Ok(text) => ctx.record(text),
                    Err(e) => {
                        ctx.record += 1;
                        ctx.error(format!("invalid utf-8: {e}"));
                    }
                },
                Piece::Skipped(reason) => {
                    ctx.record += 1;
                    ctx.error(reason);
                }
            });
            if let Err(e) = res {
                let rec = ctx.record + 1;
                (ctx.on_error)(ReadError {
                    file: path.to_path_buf(),
                    record: Some(rec),
                    reason: format!("file unreadable from here on: {e}"),
                });
            }
        }
        Shape::Lines => read_lines(reader, &mut ctx),
        Shape::Empty => {}
    }
    ctx.skipped
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Shape {
    Records,
    Array,
    Lines,
    Empty,
}

/// Decides from the first bytes: `{"Records"` → delivery file, `[` → array, else lines.
fn sniff(b: &[u8]) -> Shape {
    let t = trim_start(b);
    match t.first() {
        None => Shape::Empty,
        Some(b'[') => Shape::Array,
        Some(b'{') => {
            let rest = trim_start(&t[1..]);
            if rest.starts_with(b"\"Records\"") {
                Shape::Records
            } else {
                Shape::Lines
            }
        }
        Some(_) => Shape::Lines,
    }
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

struct RecordSink<'a> {
    path: &'a Path,
    opts: &'a NormalizeOptions,
    on_doc: &'a mut dyn FnMut(Document),
    on_error: &'a mut dyn FnMut(ReadError),
    record: usize,
    /// Records whose text this accepts are skipped unparsed.
    skip: Option<&'a dyn Fn(&str) -> bool>,
    skipped: usize,
}

impl RecordSink<'_> {
    fn error(&mut self, reason: String) {
        (self.on_error)(ReadError {
            file: self.path.to_path_buf(),
            record: Some(self.record),
            reason,
        });
    }

    /// One record's text.
    fn record(&mut self, raw: &str) {
        self.record += 1;
        if self.skip.is_some_and(|skip| skip(raw)) {
            self.skipped += 1;
            return;
        }
        let v: Json = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) => return self.error(format!("invalid json: {e}")),
        };
        self.value(v, raw);
    }

    fn value(&mut self, v: Json, raw: &str) {
        // Already-ECS documents pass through; pretty-printed records are kept compact.
        match normalize_parsed(v, raw, self.opts) {
            Ok(doc) => self.emit(doc),
            Err(e) => self.error(e.to_string()),
        }
    }

    fn emit(&mut self, doc: EcsDoc) {
        (self.on_doc)(Document {
            doc,
            file: self.path.to_path_buf(),
            record: self.record,
        });
    }
}

fn read_lines(mut reader: Box<dyn BufRead + '_>, sink: &mut RecordSink<'_>) {
    let mut bytes = Vec::new();
    let mut first = true;
    loop {
        bytes.clear();
        match reader.read_until(b'\n', &mut bytes) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                sink.record += 1;
                sink.error(format!("file unreadable from here on: {e}"));
                return;
            }
        }
        // A line that is not UTF-8 is one bad record, not the end of the file.
        let line = match std::str::from_utf8(&bytes) {
            Ok(l) => l,
            Err(e) => {
                first = false;
                sink.record += 1;
                sink.error(format!(
                    "invalid UTF-8 at byte {} of the line: record skipped",
                    e.valid_up_to()
                ));
                continue;
            }
        };
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let was_first = std::mem::replace(&mut first, false);
        if was_first && t == "{" {
            // A pretty-printed object: read the rest of the stream as JSON values.
            let mut rest = String::from(t);
            if let Err(e) = reader.read_to_string(&mut rest) {
                sink.record += 1;
                sink.error(format!("file unreadable from here on: {e}"));
                return;
            }
            for v in serde_json::Deserializer::from_str(&rest).into_iter::<Box<RawValue>>() {
                match v {
                    Ok(raw) => sink.record(raw.get()),
                    Err(e) => {
                        sink.record += 1;
                        sink.error(format!("invalid json: {e}"));
                        return;
                    }
                }
            }
            return;
        }
        // A one-line delivery file.
        if t.starts_with("{\"Records\"") {
            if let Ok(Json::Object(mut m)) = serde_json::from_str::<Json>(t) {
                if let Some(Json::Array(recs)) = m.remove("Records") {
                    for r in recs {
                        sink.record += 1;
                        let raw = r.to_string();
                        sink.value(r, &raw);
                    }
                    continue;
                }
            }
        }
        sink.record(t);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Write;

    /// What `read_file` hands on for `bytes`: (event ids, errors as text).
    fn outcome(path: &Path) -> (Vec<String>, Vec<String>) {
        let (mut ids, mut errors) = (Vec::new(), Vec::new());
        read_file(
            path,
            &NormalizeOptions::default(),
            &mut |d| ids.push(d.doc.to_value()["event"]["id"].to_string()),
            &mut |e| errors.push(e.to_string()),
        );
        (ids, errors)
    }

    /// The same through the streaming `Gunzip` alone.
    fn streamed(path: &Path) -> (Vec<String>, Vec<String>) {
        let (mut ids, mut errors) = (Vec::new(), Vec::new());
        let input = std::fs::read(path).unwrap();
        let mut output = vec![0; INFLATE_CHUNK];
        let mut inflate = flate2::Decompress::new(false);
        read_stream(
            Box::new(Gunzip::new(&input, &mut output, &mut inflate)),
            path,
            &NormalizeOptions::default(),
            &mut |d| ids.push(d.doc.to_value()["event"]["id"].to_string()),
            &mut |e| errors.push(e.to_string()),
        );
        (ids, errors)
    }

    fn gz(text: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn whole_file_inflation_reads_and_reports_as_the_streaming_one() {
        let dir = tempfile::tempdir().unwrap();
        let rec = |i: usize| {
            format!("{{\"eventTime\":\"2026-10-01T00:00:00Z\",\"eventID\":\"{i}\",\"eventName\":\"A\"}}")
        };
        let delivery = |from: usize, n: usize| {
            let recs: Vec<String> = (from..from + n).map(rec).collect();
            format!("{{\"Records\":[{}]}}", recs.join(","))
        };
        let lines =
            |from: usize, n: usize| (from..from + n).map(|i| rec(i) + "\n").collect::<String>();
        let one = gz(&delivery(0, 3));
        let n = one.len();
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = one.clone();
            f(&mut b);
            b
        };
        let set_isize = |b: &mut Vec<u8>, v: u32| {
            let n = b.len();
            b[n - 4..].copy_from_slice(&v.to_le_bytes());
        };
        let size = u32::from_le_bytes(one[n - 4..].try_into().unwrap());
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            ("one member", one.clone(), true),
            ("empty", gz(""), true),
            (
                "two members",
                [gz(&lines(0, 2)), gz(&lines(2, 2))].concat(),
                false,
            ),
            (
                "the same member twice",
                [gz(&lines(0, 2)), gz(&lines(0, 2))].concat(),
                false,
            ),
            (
                "an empty member after",
                [one.clone(), gz("")].concat(),
                false,
            ),
            (
                "junk after",
                [one.clone(), b"junk".to_vec()].concat(),
                false,
            ),
            ("crc wrong", with(&|b| b[n - 8] ^= 1), false),
            ("isize too small", with(&|b| set_isize(b, size - 1)), false),
            ("isize too large", with(&|b| set_isize(b, size + 1)), false),
            (
                "isize past the limit",
                with(&|b| set_isize(b, u32::MAX)),
                false,
            ),
            ("no trailer", one[..n - 8].to_vec(), false),
            ("cut in the deflate stream", one[..n / 2].to_vec(), false),
            ("cut in the header", one[..6].to_vec(), false),
            ("inflating past the limit", gz(&lines(0, 100)), false),
        ];
        let mut bufs = Buffers::new();
        for (what, bytes, whole) in cases {
            let p = dir.path().join("f.json.gz");
            std::fs::write(&p, &bytes).unwrap();
            assert_eq!(
                inflate_whole(&bytes, &mut bufs.whole, &mut bufs.deflate).is_some(),
                whole,
                "{what}"
            );
            let got = outcome(&p);
            assert_eq!(got, streamed(&p), "{what}");
            if whole {
                assert!(got.1.is_empty(), "{what}: {got:?}");
            }
        }
        assert!(bufs.whole.len() <= WHOLE_INFLATE_BYTES);
    }

    #[test]
    fn folders_are_listed_in_file_name_order() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "a/b/1.json",
            "a.b/2.json",
            "a-b/3.json",
            "a/c.json",
            "B/4.gz",
            "a0.log",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
        let want: Vec<PathBuf> = walkdir::WalkDir::new(dir.path())
            .sort_by_file_name()
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
            .collect();
        let root = format!("{}/", dir.path().display());
        for p in [dir.path().to_path_buf(), PathBuf::from(root)] {
            let got = expand_paths(&[p], &mut |e| panic!("{e}"));
            assert_eq!(got.len(), 6);
            let names = |v: &[PathBuf]| {
                v.iter()
                    .map(|p| p.file_name().unwrap().to_owned())
                    .collect::<Vec<_>>()
            };
            assert_eq!(names(&got), names(&want));
        }
    }

    #[test]
    fn files_larger_than_the_whole_file_limit_are_streamed_after_the_read_part() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&format!(
                "{{\"eventTime\":\"2026-10-01T00:00:00Z\",\"eventID\":\"{i}\",\"eventName\":\"A\"}}\n"
            ));
        }
        assert!(text.len() as u64 > WHOLE_FILE_BYTES);
        let plain = dir.path().join("big.log");
        std::fs::write(&plain, &text).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        gz.write_all(text.as_bytes()).unwrap();
        let zipped = dir.path().join("big.log.gz");
        std::fs::write(&zipped, gz.finish().unwrap()).unwrap();
        for p in [plain, zipped] {
            let (mut docs, mut errors) = (0, 0);
            read_file(
                &p,
                &NormalizeOptions::default(),
                &mut |_| docs += 1,
                &mut |_| errors += 1,
            );
            assert_eq!((docs, errors), (200, 0), "{}", p.display());
        }
    }
}
