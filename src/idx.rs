//! IDX files (the MNIST format): a pure header parser over `&[u8]` (fuzzed),
//! files read into memory (or mapped, when huge), and `.gz` files
//! decompressed once into a cache, held to their header as they stream.
//!
//! Layout: magic `00 00 08 ND` (0x08 = unsigned byte, ND = number of
//! dimensions), ND big-endian u32 dimensions, then the data, row-major.

use crate::error::{Error, Result};
use crate::files::{self, io_problem};
use crate::interrupt;
use memmap2::Mmap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Magic of a label file: u8 data, one dimension.
pub const MAGIC_LABELS: u32 = 0x0000_0801;
/// Magic of an image file: u8 data, three dimensions.
pub const MAGIC_IMAGES: u32 = 0x0000_0803;

/// A parsed IDX header: the dimensions and where the data starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxHeader {
    pub dims: Vec<usize>,
    /// Byte offset of the first data byte.
    pub data_offset: usize,
    /// Number of data bytes (product of the dimensions).
    pub data_len: usize,
}

/// Parses and validates an IDX header against the whole file's bytes.
/// `expected_magic` is MAGIC_LABELS or MAGIC_IMAGES. Every size is checked
/// against `bytes.len()`; no allocation depends on a size read from the file
/// beyond the (at most 255) dimensions.
pub fn parse_header(bytes: &[u8], expected_magic: u32) -> std::result::Result<IdxHeader, String> {
    let header = parse_prefix(bytes, expected_magic)?;
    let IdxHeader { dims, data_offset, data_len } = &header;
    let available = bytes.len() - data_offset;
    if available < *data_len {
        return Err(format!("truncated data: dimensions {dims:?} need {data_len} bytes, the file has {available}"));
    }
    if available > *data_len {
        return Err(format!(
            "{} trailing bytes after the {data_len} bytes that dimensions {dims:?} describe",
            available - data_len
        ));
    }
    Ok(header)
}

/// Parses the header from the first bytes of an IDX file (`prefix` may hold
/// more or less than the data): the magic, the dimensions and the data length
/// they promise, which a stream can then be held to.
pub fn parse_prefix(prefix: &[u8], expected_magic: u32) -> std::result::Result<IdxHeader, String> {
    let bytes = prefix;
    if bytes.len() < 4 {
        return Err(format!("truncated header: {} bytes, an IDX file needs at least 4", bytes.len()));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format!("not an IDX file (magic 0x{magic:08x}, expected 0x{expected_magic:08x})"));
    }
    if bytes[2] != 0x08 {
        return Err(format!("unsupported IDX data type 0x{:02x} (only unsigned bytes, 0x08, are supported)", bytes[2]));
    }
    if magic != expected_magic {
        let kind = if expected_magic == MAGIC_LABELS { "labels" } else { "images" };
        return Err(format!(
            "wrong magic 0x{magic:08x} for {kind} (expected 0x{expected_magic:08x}, {} dimension(s))",
            expected_magic & 0xff
        ));
    }
    let ndims = bytes[3] as usize;
    let data_offset = 4 + 4 * ndims;
    if bytes.len() < data_offset {
        return Err(format!("truncated header: {} bytes, {ndims} dimensions need {data_offset}", bytes.len()));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|d| {
            let o = 4 + 4 * d;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let data_len = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|n| n.checked_add(data_offset).is_some())
        .ok_or_else(|| format!("dimensions {dims:?} overflow: their product does not fit in memory"))?;
    Ok(IdxHeader { dims, data_offset, data_len })
}

/// Where the bytes of an IDX file live.
enum Backing {
    /// The file itself, mapped: only for files over [`RESIDENT_MAX`].
    Mapped(Mmap),
    /// A copy in anonymous memory, read once: truncating or rewriting the
    /// file afterwards cannot touch it.
    Resident(Mmap),
    /// An empty file cannot be mapped; also used by tests for in-memory files.
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) | Backing::Resident(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// Files up to this size (1 GiB; Fashion-MNIST's largest is 47 MB) are read
/// into memory once instead of mapped: a mapped file that another process
/// truncates kills the reader with SIGBUS at its next access, while a copy
/// keeps training. Larger files are mapped, with that hazard (docs/safety.md).
pub const RESIDENT_MAX: u64 = 1 << 30;

/// A validated IDX file, in memory or memory-mapped.
pub struct IdxFile {
    backing: Backing,
    pub header: IdxHeader,
    /// The file the user named (the `.gz` where there was one), for messages.
    pub path: PathBuf,
}

impl IdxFile {
    /// Opens `path` (raw IDX, or `.gz` decompressed once into `cache_dir`),
    /// reads or maps it and validates the header.
    pub fn open(path: &Path, expected_magic: u32, cache_dir: &Path) -> Result<IdxFile> {
        let gz = path.extension().is_some_and(|e| e == "gz");
        let raw = if gz { decompress_to_cache(path, cache_dir, expected_magic)? } else { path.to_path_buf() };
        let opened = Self::open_raw(&raw, expected_magic, path);
        if gz && opened.is_err() {
            // Ours, and derived: a cache file that does not validate (left by
            // an older simdnet, or damaged) must not be reused.
            let _ = fs::remove_file(&raw);
        }
        opened
    }

    fn open_raw(raw: &Path, expected_magic: u32, name: &Path) -> Result<IdxFile> {
        let (mut file, len) = files::open_regular(raw, "an IDX file").map_err(|p| Error::file(raw, p))?;
        let backing = if len == 0 {
            Backing::Owned(Vec::new())
        } else if len <= RESIDENT_MAX {
            match read_resident(&mut file, len as usize) {
                Ok(copy) => Backing::Resident(copy),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(Error::file(raw, format!("shrank below its {len} bytes while being read")));
                }
                Err(e) => return Err(Error::file(raw, io_problem(&e))),
            }
        } else {
            // SAFETY: the map is read-only and private to this process. A file
            // truncated by another process while mapped would fault (SIGBUS);
            // only files over RESIDENT_MAX are mapped, the cache files are
            // only ever replaced by rename, never modified in place, and
            // docs/safety.md states the hazard for the rest.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::file(raw, io_problem(&e)))?;
            Backing::Mapped(map)
        };
        Self::from_backing(backing, expected_magic, name)
    }

    /// An IDX file held in memory (tests, fuzzing).
    pub fn from_bytes(bytes: Vec<u8>, expected_magic: u32, name: &Path) -> Result<IdxFile> {
        Self::from_backing(Backing::Owned(bytes), expected_magic, name)
    }

    fn from_backing(backing: Backing, expected_magic: u32, path: &Path) -> Result<IdxFile> {
        let header = parse_header(backing.bytes(), expected_magic).map_err(|p| Error::file(path, p))?;
        Ok(IdxFile { backing, header, path: path.to_path_buf() })
    }

    /// For a file read in random order (shuffled training batches): moves a
    /// large mapped file's bytes onto transparent huge pages. On 4 KiB pages
    /// nearly every image costs a TLB miss and a page walk (47 MB of
    /// training images are 11,500 pages), which was most of the batch
    /// gather's time. It costs a copy (~20 ms for 47 MB), so only training
    /// asks for it, not `eval`, `predict` or `summary`. Files read into
    /// memory were put on huge pages as they were read.
    pub fn prefer_huge_pages(&mut self) {
        let backing = std::mem::replace(&mut self.backing, Backing::Owned(Vec::new()));
        self.backing = match backing {
            Backing::Mapped(map) => Backing::Mapped(on_huge_pages(map)),
            other => other,
        };
    }

    /// The data bytes (after the header).
    pub fn data(&self) -> &[u8] {
        &self.backing.bytes()[self.header.data_offset..self.header.data_offset + self.header.data_len]
    }
}

/// Files at least this large are worth moving onto huge pages: below it,
/// the 4 KiB pages of a file fit the second-level TLB (2,048 entries).
const HUGE_PAGE_MIN: usize = 8 << 20;

/// `len` bytes of `file` read into an anonymous map, on transparent huge
/// pages where it is large enough and the kernel allows it.
fn read_resident(file: &mut File, len: usize) -> io::Result<Mmap> {
    let mut anon = memmap2::MmapOptions::new().len(len).map_anon()?;
    #[cfg(target_os = "linux")]
    if len >= HUGE_PAGE_MIN {
        // Before the first touch, so the pages are faulted in as huge ones;
        // a kernel without THP refuses, and 4 KiB pages do.
        let _ = anon.advise(memmap2::Advice::HugePage);
    }
    file.read_exact(&mut anon)?;
    anon.make_read_only()
}

/// A big map's bytes copied into an anonymous map backed by 2 MiB pages,
/// where the kernel allows it (else the file's own map).
fn on_huge_pages(map: Mmap) -> Mmap {
    #[cfg(target_os = "linux")]
    if map.len() >= HUGE_PAGE_MIN {
        let copy = || -> io::Result<Mmap> {
            let mut anon = memmap2::MmapOptions::new().len(map.len()).map_anon()?;
            anon.advise(memmap2::Advice::HugePage)?;
            anon.copy_from_slice(&map);
            anon.make_read_only()
        };
        if let Ok(resident) = copy() {
            return resident;
        }
    }
    map
}

/// Deflate cannot expand a byte to more than 1032 (a 258-byte match in under
/// two bits), so a `.gz` of `n` bytes never holds more than `1032·n`: a
/// header that asks for more is refused before anything is written.
pub const MAX_GZIP_RATIO: u64 = 1032;

/// Why decompressing an IDX `.gz` failed.
#[derive(Debug)]
pub enum GzError {
    /// The `.gz` (or the IDX inside it) is bad: the one-line problem.
    Input(String),
    /// Writing the output failed.
    Output(io::Error),
    /// SIGINT / SIGTERM ("SIGINT") arrived.
    Interrupted(&'static str),
}

/// Decompresses the IDX file inside the gzip stream `gz` (`gz_len` bytes,
/// all members, as `gzip -d` does) into `out`, holding the stream to its
/// header: the header is checked from the first bytes, no more than the
/// `data_offset + data_len` bytes it promises are ever written, a longer
/// stream is refused at its first extra byte, and a promise larger than
/// `MAX_GZIP_RATIO · gz_len` is refused before any data. `stop` is polled
/// every 64 KiB. Returns the bytes written (pure over its reader and writer:
/// fuzzed).
pub fn decompress_idx(
    gz: impl Read,
    gz_len: u64,
    expected_magic: u32,
    out: &mut impl Write,
    stop: &dyn Fn() -> Option<&'static str>,
) -> std::result::Result<u64, GzError> {
    let mut decoder = flate2::read::MultiGzDecoder::new(io::BufReader::new(gz));
    let corrupt = |e: io::Error| GzError::Input(format!("corrupt gzip data: {e}"));
    let mut buf = vec![0u8; 1 << 16];
    // The header: 4 bytes, then the 4·ndims the fourth one announces.
    let mut head = Vec::new();
    read_up_to(&mut decoder, &mut head, 4).map_err(corrupt)?;
    let want = head.get(3).map_or(4, |&n| 4 + 4 * n as usize);
    read_up_to(&mut decoder, &mut head, want).map_err(corrupt)?;
    let header = parse_prefix(&head, expected_magic).map_err(GzError::Input)?;
    let IdxHeader { dims, data_offset, data_len } = &header;
    let total = (data_offset + data_len) as u64;
    if total > gz_len.saturating_mul(MAX_GZIP_RATIO) {
        return Err(GzError::Input(format!(
            "truncated data: dimensions {dims:?} need {data_len} bytes, more than a {gz_len}-byte gzip file \
             can hold (at most {MAX_GZIP_RATIO} times its size)"
        )));
    }
    out.write_all(&head).map_err(GzError::Output)?;
    let mut left = *data_len;
    while left > 0 {
        if let Some(signal) = stop() {
            return Err(GzError::Interrupted(signal));
        }
        let n = decoder.read(&mut buf[..left.min(1 << 16)]).map_err(corrupt)?;
        if n == 0 {
            return Err(GzError::Input(format!(
                "truncated data: dimensions {dims:?} need {data_len} bytes, the file has {}",
                data_len - left
            )));
        }
        out.write_all(&buf[..n]).map_err(GzError::Output)?;
        left -= n;
    }
    // The end of the stream (which checks the last member's CRC), or the
    // first byte past what the header describes: refused without reading on.
    if let Some(signal) = stop() {
        return Err(GzError::Interrupted(signal));
    }
    match decoder.read(&mut buf[..1]).map_err(corrupt)? {
        0 => Ok(total),
        _ => Err(GzError::Input(format!("trailing data after the {data_len} bytes that dimensions {dims:?} describe"))),
    }
}

/// Reads from `r` until `head` holds `want` bytes or the stream ends.
fn read_up_to(r: &mut impl Read, head: &mut Vec<u8>, want: usize) -> io::Result<()> {
    let have = head.len();
    if want > have {
        r.take((want - have) as u64).read_to_end(head)?;
    }
    Ok(())
}

/// Decompresses `gz` into `cache_dir` once; later calls reuse the cached file.
/// The cache name carries the source's size and modification time, so a
/// replaced `.gz` is decompressed again. The output is held to the IDX header
/// of `expected_magic` as it streams ([`decompress_idx`]) and goes to a
/// temporary file, renamed into place only once complete and valid, and
/// removed on every error, SIGINT / SIGTERM included ([`interrupt`]).
pub fn decompress_to_cache(gz: &Path, cache_dir: &Path, expected_magic: u32) -> Result<PathBuf> {
    let (input, gz_len) = files::open_regular(gz, "a gzip file").map_err(|p| Error::file(gz, p))?;
    let meta = input.metadata().map_err(|e| Error::file(gz, io_problem(&e)))?;
    let mtime =
        meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
    let stem = gz.file_stem().map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned());
    let cached = cache_dir.join(format!("{stem}.{gz_len}-{mtime}"));
    if cached.is_file() {
        return Ok(cached);
    }
    fs::create_dir_all(cache_dir).map_err(|e| {
        Error::file(cache_dir, format!("cannot create cache directory: {} (use --cache-dir)", io_problem(&e)))
    })?;
    let cannot_write =
        |e: &io::Error| Error::file(cache_dir, format!("cannot write cache: {} (use --cache-dir)", io_problem(e)));
    // SIGINT / SIGTERM now stop the loop below instead of killing the
    // process with the temporary file in place.
    let _section = interrupt::Section::enter();
    crate::atomic::remove_stale_temps(&cached);
    let tmp = crate::atomic::temp_path(&cached);
    let result = (|| -> Result<()> {
        let out = fs::OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| cannot_write(&e))?;
        let mut out = io::BufWriter::new(out);
        decompress_idx(input, gz_len, expected_magic, &mut out, &interrupt::requested).map_err(|e| match e {
            GzError::Input(p) => Error::file(gz, p),
            GzError::Output(e) => cannot_write(&e),
            GzError::Interrupted(signal) => {
                Error::file(gz, format!("interrupted by {signal} while decompressing (nothing was cached)"))
            }
        })?;
        let file = out.into_inner().map_err(|e| cannot_write(e.error()))?;
        file.sync_all().map_err(|e| cannot_write(&e))?;
        fs::rename(&tmp, &cached).map_err(|e| Error::file(&cached, format!("cannot write cache: {}", io_problem(&e))))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| cached)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn labels_file(n: u8) -> Vec<u8> {
        let mut v = vec![0, 0, 8, 1, 0, 0, 0, n];
        v.extend(0..n);
        v
    }

    fn run(stream: &[u8], stop: Option<&'static str>) -> (std::result::Result<u64, GzError>, Vec<u8>) {
        let mut out = Vec::new();
        let r = decompress_idx(stream, stream.len() as u64, MAGIC_LABELS, &mut out, &|| stop);
        (r, out)
    }

    #[test]
    fn every_member_counts_empty_ones_included() {
        let file = labels_file(20);
        let mut stream = gz(&[]);
        stream.extend(gz(&file[..2]));
        stream.extend(gz(&[]));
        stream.extend(gz(&file[2..9]));
        stream.extend(gz(&file[9..]));
        stream.extend(gz(&[]));
        let (r, out) = run(&stream, None);
        assert_eq!(r.unwrap(), file.len() as u64);
        assert_eq!(out, file);
    }

    #[test]
    fn stops_at_the_first_byte_past_the_header() {
        let mut file = labels_file(20);
        file.push(0);
        let (r, out) = run(&gz(&file), None);
        match r {
            Err(GzError::Input(p)) => assert_eq!(p, "trailing data after the 20 bytes that dimensions [20] describe"),
            other => panic!("{other:?}"),
        }
        assert_eq!(out.len(), 28, "nothing past the header's bytes is written");
        // In a member of its own, too.
        let mut stream = gz(&labels_file(20));
        stream.extend(gz(&[0; 1000]));
        assert!(matches!(run(&stream, None).0, Err(GzError::Input(p)) if p.starts_with("trailing data")));
    }

    #[test]
    fn refuses_a_header_the_gz_cannot_hold_before_writing() {
        let stream = gz(&[0, 0, 8, 1, 0x7f, 0xff, 0xff, 0xff]);
        let (r, out) = run(&stream, None);
        assert!(matches!(r, Err(GzError::Input(p)) if p.contains("more than a") && p.contains("1032 times")));
        assert!(out.is_empty());
        let (r, out) = run(&gz(&labels_file(20)[..15]), None);
        assert!(
            matches!(r, Err(GzError::Input(p)) if p == "truncated data: dimensions [20] need 20 bytes, the file has 7")
        );
        assert_eq!(out.len(), 15);
    }

    #[test]
    fn a_signal_stops_it() {
        let (r, _) = run(&gz(&labels_file(20)), Some("SIGTERM"));
        assert!(matches!(r, Err(GzError::Interrupted("SIGTERM"))));
        // Even an empty data set is never reported complete.
        let (r, _) = run(&gz(&labels_file(0)), Some("SIGINT"));
        assert!(matches!(r, Err(GzError::Interrupted("SIGINT"))));
    }
}
