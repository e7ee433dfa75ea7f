//! Models saved as safetensors: tensors named by layer as Keras does
//! (`dense.kernel` `[in, out]`, `dense.bias` `[out]`, `dense_1.kernel`, …),
//! the architecture in the header's metadata. Loading validates everything.

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::gemm::Activation;
use crate::model::{Model, ModelSpec};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use safetensors::SafeTensorError;
use std::collections::HashMap;
use std::path::Path;

/// Format tag stored in the metadata, checked on load.
pub const FORMAT: &str = "simdnet-mlp-v1";

/// The largest model file we agree to read (1 GiB): a bigger one is not ours.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// Serializes `model` (and its class names) to safetensors bytes.
pub fn to_bytes(model: &Model, class_names: &[String]) -> Result<Vec<u8>> {
    let spec = &model.spec;
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("input_shape".to_string(), format!("{},{}", spec.input_shape.0, spec.input_shape.1));
    meta.insert("hidden".to_string(), spec.hidden.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(","));
    meta.insert("activation".to_string(), spec.activation.name().to_string());
    meta.insert("classes".to_string(), spec.classes.to_string());
    meta.insert("dropout".to_string(), spec.dropout.to_string());
    meta.insert("class_names".to_string(), serde_json::to_string(class_names).expect("strings serialize"));
    let bytes: Vec<Vec<u8>> = model
        .layers
        .iter()
        .flat_map(|l| [l.kernel.clone(), l.bias.clone()])
        .map(|r| model.params[r].iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let mut tensors = Vec::new();
    for (i, l) in model.layers.iter().enumerate() {
        let kernel = TensorView::new(Dtype::F32, vec![l.in_dim, l.out_dim], &bytes[2 * i])
            .map_err(|e| Error::new(format!("cannot serialize {}: {e}", l.name)))?;
        let bias = TensorView::new(Dtype::F32, vec![l.out_dim], &bytes[2 * i + 1])
            .map_err(|e| Error::new(format!("cannot serialize {}: {e}", l.name)))?;
        tensors.push((format!("{}.kernel", l.name), kernel));
        tensors.push((format!("{}.bias", l.name), bias));
    }
    safetensors::serialize(tensors, Some(meta)).map_err(|e| Error::new(format!("cannot serialize model: {e}")))
}

/// Saves `model` to `path` atomically.
pub fn save(model: &Model, class_names: &[String], path: &Path) -> Result<()> {
    write_atomic(path, &to_bytes(model, class_names)?)
}

/// A loaded model and its class names.
#[derive(Debug)]
pub struct Loaded {
    pub model: Model,
    pub class_names: Vec<String>,
}

fn parse_usize(field: &str, v: &str) -> std::result::Result<usize, String> {
    v.trim().parse::<usize>().map_err(|_| format!("metadata {field} = {v:?} is not a non-negative integer"))
}

/// Headers larger than this are refused by the safetensors crate as "too large".
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Names a file cut short inside its header as truncated.
fn check_length(bytes: &[u8]) -> std::result::Result<(), String> {
    let Some(head) = bytes.first_chunk::<8>() else {
        return Err(format!("truncated or not a safetensors file: only {} bytes", bytes.len()));
    };
    let header = u64::from_le_bytes(*head);
    let rest = bytes.len() as u64 - 8;
    if header <= MAX_HEADER_BYTES && header > rest {
        return Err(format!("truncated: the header needs {header} bytes, only {rest} follow"));
    }
    Ok(())
}

/// Parses and validates safetensors bytes (pure: fuzzed).
pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Loaded, String> {
    check_length(bytes)?;
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| match e {
        SafeTensorError::MetadataIncompleteBuffer => {
            format!("truncated or padded: {} bytes do not match the tensor data its header describes", bytes.len())
        }
        e => format!("not a safetensors file: {e}"),
    })?;
    let meta = metadata.metadata().clone().ok_or("no simdnet metadata in the header")?;
    let get = |k: &str| meta.get(k).map(String::as_str).ok_or_else(|| format!("metadata lacks {k:?}"));
    if get("format")? != FORMAT {
        return Err(format!("unknown format {:?} (expected {FORMAT:?})", get("format")?));
    }
    let shape: Vec<&str> = get("input_shape")?.split(',').collect();
    if shape.len() != 2 {
        return Err(format!("metadata input_shape = {:?} needs two numbers", get("input_shape")?));
    }
    let input_shape = (parse_usize("input_shape", shape[0])?, parse_usize("input_shape", shape[1])?);
    let hidden_s = get("hidden")?;
    let hidden = if hidden_s.is_empty() {
        Vec::new()
    } else {
        hidden_s.split(',').map(|h| parse_usize("hidden", h)).collect::<std::result::Result<Vec<_>, _>>()?
    };
    let activation = match get("activation")? {
        "relu" => Activation::Relu,
        "sigmoid" => Activation::Sigmoid,
        other => return Err(format!("metadata activation {other:?} is not relu or sigmoid")),
    };
    let classes = parse_usize("classes", get("classes")?)?;
    let dropout: f32 = get("dropout")?.parse().map_err(|_| "metadata dropout is not a number".to_string())?;
    if !(0.0..1.0).contains(&dropout) {
        return Err(format!("metadata dropout {dropout} is outside [0, 1)"));
    }
    let class_names: Vec<String> =
        serde_json::from_str(get("class_names")?).map_err(|e| format!("metadata class_names: {e}"))?;
    let input_dim = input_shape.0.checked_mul(input_shape.1).ok_or("input_shape overflows")?;
    if input_dim == 0 || classes < 2 || hidden.contains(&0) {
        return Err("metadata describes an empty layer (0 inputs, 0 units or fewer than 2 classes)".into());
    }
    if class_names.len() != classes {
        return Err(format!("{} class names for {classes} classes", class_names.len()));
    }
    // Size the model from the metadata only after checking it fits the file:
    // a lying header must not make us allocate more than the file holds.
    let mut dims = vec![input_dim];
    dims.extend(&hidden);
    dims.push(classes);
    let mut count = 0usize;
    for w in dims.windows(2) {
        count = w[0]
            .checked_mul(w[1])
            .and_then(|k| k.checked_add(w[1]))
            .and_then(|n| n.checked_add(count))
            .ok_or("layer sizes overflow")?;
    }
    if count.saturating_mul(4) > bytes.len() {
        return Err(format!("metadata describes {count} parameters, the file holds fewer"));
    }
    let spec = ModelSpec { input_shape, hidden, activation, classes, dropout };
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| format!("corrupt safetensors data: {e}"))?;
    let layers = spec.layers();
    let expected_names = 2 * layers.len();
    if tensors.len() != expected_names {
        return Err(format!("{} tensors, the architecture has {expected_names}", tensors.len()));
    }
    let mut params = vec![0.0f32; spec.param_count()];
    for l in &layers {
        for (suffix, range, shape) in
            [("kernel", l.kernel.clone(), vec![l.in_dim, l.out_dim]), ("bias", l.bias.clone(), vec![l.out_dim])]
        {
            let name = format!("{}.{suffix}", l.name);
            let t = tensors.tensor(&name).map_err(|_| format!("missing tensor {name}"))?;
            if t.dtype() != Dtype::F32 {
                return Err(format!("tensor {name} has dtype {:?}, expected F32", t.dtype()));
            }
            if t.shape() != shape.as_slice() {
                return Err(format!("tensor {name} has shape {:?}, expected {shape:?}", t.shape()));
            }
            for (p, b) in params[range].iter_mut().zip(t.data().chunks_exact(4)) {
                *p = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
    }
    Ok(Loaded { model: Model::from_params(spec, params), class_names })
}

/// Loads and validates a model file. Anything but a regular file (a FIFO,
/// `/dev/zero`) is refused before it is opened, and no more than the length
/// the file had when opened (at most `MAX_FILE_BYTES`) is ever read.
pub fn load(path: &Path) -> Result<Loaded> {
    use std::io::Read;
    // The OS's own words for a missing or unreadable path ("No such file or
    // directory (os error 2)").
    std::fs::metadata(path).map_err(|e| Error::file(path, e))?;
    let (file, len) = crate::files::open_regular(path, "a model file").map_err(|p| Error::file(path, p))?;
    if len > MAX_FILE_BYTES {
        return Err(Error::file(path, format!("{len} bytes is too large for a simdnet model")));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut bytes).map_err(|e| Error::file(path, crate::files::io_problem(&e)))?;
    from_bytes(&bytes).map_err(|p| Error::file(path, p))
}

/// Refuses a tensor holding NaN or an infinity: a model that diverged would
/// otherwise evaluate to `test_loss: NaN` and predict `NaN%`. `name` is the
/// tensor's (`dense.kernel`), `values` its data.
pub fn check_finite(name: &str, values: &[f32]) -> std::result::Result<(), String> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(format!("tensor {name} holds a non-finite value ({}) at index {i}", values[i])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_finite_names_the_tensor_and_the_index() {
        assert_eq!(check_finite("dense.kernel", &[0.0, -1.5, f32::MAX, f32::MIN_POSITIVE]), Ok(()));
        assert_eq!(check_finite("dense.bias", &[]), Ok(()));
        assert_eq!(
            check_finite("dense.kernel", &[1.0, f32::NAN, f32::INFINITY]).unwrap_err(),
            "tensor dense.kernel holds a non-finite value (NaN) at index 1"
        );
        assert_eq!(
            check_finite("dense_1.bias", &[1.0, 2.0, f32::NEG_INFINITY]).unwrap_err(),
            "tensor dense_1.bias holds a non-finite value (-inf) at index 2"
        );
        assert_eq!(
            check_finite("dense_1.kernel", &[f32::INFINITY]).unwrap_err(),
            "tensor dense_1.kernel holds a non-finite value (inf) at index 0"
        );
    }
}
