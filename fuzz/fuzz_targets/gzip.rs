//! The `.gz` path of the data loader (`idx::decompress_idx`): a gzip stream
//! (all members) decompressed while being held to the IDX header inside it.
//!
//! Input: one byte choosing the expected magic (even: images, odd: labels),
//! then the `.gz` file's bytes. The seeds are gzipped Fashion-MNIST cuts,
//! one of them split into several members.
#![no_main]

use libfuzzer_sys::fuzz_target;
use simdnet::idx::{decompress_idx, parse_header, GzError, MAGIC_IMAGES, MAGIC_LABELS, MAX_GZIP_RATIO};
use std::io::Read;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, gz)) = data.split_first() else {
        return;
    };
    let magic = if pick % 2 == 0 { MAGIC_IMAGES } else { MAGIC_LABELS };
    let len = gz.len() as u64;
    let mut out = Vec::new();
    let result = decompress_idx(gz, len, magic, &mut out, &|| None);
    // Never more output than the .gz can hold, whatever the header says.
    assert!(out.len() as u64 <= len * MAX_GZIP_RATIO);
    match result {
        Ok(n) => {
            assert_eq!(n, out.len() as u64);
            // Exactly one valid IDX file, and exactly what a plain
            // multi-member decoder makes of the whole stream.
            parse_header(&out, magic).expect("an accepted stream holds a valid IDX file");
            let mut all = Vec::new();
            flate2::read::MultiGzDecoder::new(gz)
                .take(out.len() as u64 + 1)
                .read_to_end(&mut all)
                .expect("an accepted stream decodes");
            assert_eq!(all, out);
        }
        Err(GzError::Input(problem)) => assert!(!problem.contains('\n'), "{problem}"),
        Err(e) => panic!("no output error and no signal, yet {e:?}"),
    }
    // A signal already received: never a success.
    let mut out = Vec::new();
    let stopped = decompress_idx(gz, len, magic, &mut out, &|| Some("SIGINT"));
    assert!(matches!(stopped, Err(GzError::Interrupted("SIGINT") | GzError::Input(_))), "{stopped:?}");
});
