//! The safetensors model loader (`checkpoint::from_bytes`), metadata
//! validation included. A file it accepts must round-trip bit for bit and run.
#![no_main]

use libfuzzer_sys::fuzz_target;
use simdnet::checkpoint;
use simdnet::model::Workspace;

fuzz_target!(|data: &[u8]| {
    let Ok(loaded) = checkpoint::from_bytes(data) else {
        return;
    };
    let model = &loaded.model;
    assert_eq!(model.params.len(), model.spec.param_count());
    assert_eq!(loaded.class_names.len(), model.spec.classes());
    // The parameters alone take 4 bytes each: a header cannot make us hold
    // more than the file does.
    assert!(model.params.len() * 4 <= data.len());

    let bytes = checkpoint::to_bytes(model, &loaded.class_names).expect("an accepted model serializes");
    let again = checkpoint::from_bytes(&bytes).expect("a saved model loads");
    assert_eq!(again.model.spec, model.spec);
    assert_eq!(again.class_names, loaded.class_names);
    let bits = |p: &[f32]| p.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&again.model.params), bits(&model.params));

    // One forward pass of a blank image through whatever shape was accepted.
    let mut ws = Workspace::new(&model.spec, 1, 0);
    let x = vec![0.0f32; model.spec.input_dim()];
    let logits = model.forward(&mut ws, &x, 1);
    assert_eq!(logits.len(), model.spec.classes());
});
