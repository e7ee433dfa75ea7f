//! The layer-list parser (`arch::parse`, what `--arch` and a model file's
//! `arch` metadata go through) and the shape check (`ModelSpec::new`): any
//! text is refused with a one-line message or accepted; an accepted list
//! reads back from its own text, and fitting it to an image never panics
//! and never yields more than the parameter cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use simdnet::arch;
use simdnet::model::{ModelSpec, MAX_PARAMS};

fuzz_target!(|data: &[u8]| {
    let (shape, text) = match data.split_first() {
        Some((&side, rest)) => {
            // Bits 0-5: the rows; bits 6-7: up to 3 extra columns (non-square images too).
            let rows = side as usize % 64 + 1;
            ((rows, rows + side as usize / 64), String::from_utf8_lossy(rest))
        }
        None => return,
    };
    let layers = match arch::parse(&text) {
        Ok(l) => l,
        Err(e) => {
            assert!(!e.contains('\n'), "a multi-line error: {e}");
            return;
        }
    };
    let again = arch::parse(&arch::to_string(&layers)).expect("an accepted list reads back");
    assert_eq!(again, layers);
    match ModelSpec::new(shape, &layers) {
        Ok(spec) => {
            assert!(spec.param_count() <= MAX_PARAMS);
            assert_eq!(spec.layers().len(), layers.len());
            assert_eq!(spec.arch(), arch::to_string(&layers));
        }
        Err(e) => assert!(!e.contains('\n'), "a multi-line error: {e}"),
    }
});
