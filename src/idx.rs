//! IDX files (the MNIST format): a pure header parser over `&[u8]` (fuzzed) and
//! memory-mapped files, decompressing `.gz` once into a cache.
//!
//! Layout: magic `00 00 08 ND` (0x08 = unsigned byte, ND = number of
//! dimensions), ND big-endian u32 dimensions, then the data, row-major.

use crate::error::{Error, Result};
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
        .ok_or_else(|| format!("dimensions {dims:?} overflow: their product does not fit in memory"))?;
    let available = bytes.len() - data_offset;
    if available < data_len {
        return Err(format!("truncated data: dimensions {dims:?} need {data_len} bytes, the file has {available}"));
    }
    if available > data_len {
        return Err(format!(
            "{} trailing bytes after the {data_len} bytes that dimensions {dims:?} describe",
            available - data_len
        ));
    }
    Ok(IdxHeader { dims, data_offset, data_len })
}

/// Where the bytes of a mapped IDX file live.
enum Backing {
    Mapped(Mmap),
    /// An empty file cannot be mapped; also used by tests for in-memory files.
    Owned(Vec<u8>),
}

/// A validated IDX file, memory-mapped.
pub struct IdxFile {
    backing: Backing,
    pub header: IdxHeader,
    /// The file the user named (the `.gz` where there was one), for messages.
    pub path: PathBuf,
}

impl IdxFile {
    /// Opens `path` (raw IDX, or `.gz` decompressed once into `cache_dir`),
    /// maps it and validates the header.
    pub fn open(path: &Path, expected_magic: u32, cache_dir: &Path) -> Result<IdxFile> {
        let raw = if path.extension().is_some_and(|e| e == "gz") {
            decompress_to_cache(path, cache_dir)?
        } else {
            path.to_path_buf()
        };
        let file = File::open(&raw).map_err(|e| Error::file(&raw, io_problem(&e)))?;
        let meta = file.metadata().map_err(|e| Error::file(&raw, io_problem(&e)))?;
        if !meta.is_file() {
            return Err(Error::file(&raw, not_a_file(&meta)));
        }
        let len = meta.len();
        let backing = if len == 0 {
            Backing::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only and private to this process. A file
            // truncated by another process while mapped would fault; the cache
            // files are only ever replaced by rename, never modified in place.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::file(&raw, io_problem(&e)))?;
            Backing::Mapped(map)
        };
        Self::from_backing(backing, expected_magic, path)
    }

    /// An IDX file held in memory (tests, fuzzing).
    pub fn from_bytes(bytes: Vec<u8>, expected_magic: u32, name: &Path) -> Result<IdxFile> {
        Self::from_backing(Backing::Owned(bytes), expected_magic, name)
    }

    fn from_backing(backing: Backing, expected_magic: u32, path: &Path) -> Result<IdxFile> {
        let bytes: &[u8] = match &backing {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        };
        let header = parse_header(bytes, expected_magic).map_err(|p| Error::file(path, p))?;
        Ok(IdxFile { backing, header, path: path.to_path_buf() })
    }

    /// For a file read in random order (shuffled training batches): moves a
    /// large mapped file's bytes onto transparent huge pages. On 4 KiB pages
    /// nearly every image costs a TLB miss and a page walk (47 MB of
    /// training images are 11,500 pages), which was most of the batch
    /// gather's time. It costs a copy (~20 ms for 47 MB), so only training
    /// asks for it, not `eval`, `predict` or `summary`.
    pub fn prefer_huge_pages(&mut self) {
        let backing = std::mem::replace(&mut self.backing, Backing::Owned(Vec::new()));
        self.backing = match backing {
            Backing::Mapped(map) => Backing::Mapped(on_huge_pages(map)),
            owned => owned,
        };
    }

    /// The data bytes (after the header).
    pub fn data(&self) -> &[u8] {
        let bytes: &[u8] = match &self.backing {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        };
        &bytes[self.header.data_offset..self.header.data_offset + self.header.data_len]
    }
}

/// Files at least this large are worth moving onto huge pages: below it,
/// the 4 KiB pages of a file fit the second-level TLB (2,048 entries).
const HUGE_PAGE_MIN: usize = 8 << 20;

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

/// What a path is when it should be a regular file.
fn not_a_file(meta: &fs::Metadata) -> &'static str {
    if meta.is_dir() {
        "is a directory, not an IDX file"
    } else {
        "is not a regular file"
    }
}

fn io_problem(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Decompresses `gz` into `cache_dir` once; later calls reuse the cached file.
/// The cache name carries the source's size and modification time, so a
/// replaced `.gz` is decompressed again. Writes go to a temporary file that is
/// renamed into place, so a killed run never leaves a partial cache file.
pub fn decompress_to_cache(gz: &Path, cache_dir: &Path) -> Result<PathBuf> {
    let meta = fs::metadata(gz).map_err(|e| Error::file(gz, io_problem(&e)))?;
    if !meta.is_file() {
        return Err(Error::file(gz, not_a_file(&meta)));
    }
    let mtime =
        meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
    let stem = gz.file_stem().map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned());
    let cached = cache_dir.join(format!("{stem}.{}-{mtime}", meta.len()));
    if cached.is_file() {
        return Ok(cached);
    }
    fs::create_dir_all(cache_dir).map_err(|e| {
        Error::file(cache_dir, format!("cannot create cache directory: {} (use --cache-dir)", io_problem(&e)))
    })?;
    let input = File::open(gz).map_err(|e| Error::file(gz, io_problem(&e)))?;
    let mut decoder = flate2::read::GzDecoder::new(io::BufReader::new(input));
    crate::atomic::remove_stale_temps(&cached);
    let tmp = crate::atomic::temp_path(&cached);
    let result = (|| -> Result<()> {
        let out = File::create(&tmp)
            .map_err(|e| Error::file(cache_dir, format!("cannot write cache: {} (use --cache-dir)", io_problem(&e))))?;
        let mut out = io::BufWriter::new(out);
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = decoder.read(&mut buf).map_err(|e| Error::file(gz, format!("corrupt gzip data: {e}")))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).map_err(|e| {
                Error::file(cache_dir, format!("cannot write cache: {} (use --cache-dir)", io_problem(&e)))
            })?;
        }
        let file = out
            .into_inner()
            .map_err(|e| Error::file(cache_dir, format!("cannot write cache: {}", io_problem(e.error()))))?;
        file.sync_all().map_err(|e| Error::file(cache_dir, format!("cannot write cache: {}", io_problem(&e))))?;
        fs::rename(&tmp, &cached).map_err(|e| Error::file(&cached, format!("cannot write cache: {}", io_problem(&e))))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| cached)
}
