//! Models saved as safetensors: tensors named by layer and laid out as Keras
//! does, so `set_weights` takes them unchanged (`conv2d.kernel` `[k, k, cin,
//! cout]` HWIO, `conv2d.bias` `[cout]`, `dense.kernel` `[in, out]` whose rows
//! follow Flatten's (row, column, channel) order, `dense.bias`, …); the layer
//! list in the header's metadata (`arch`), so a file alone rebuilds its
//! model. Loading validates everything before allocating by the model's size.

use crate::arch::{self, LayerSpec};
use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::gemm::Activation;
use crate::model::{Model, ModelSpec};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use safetensors::SafeTensorError;
use std::collections::HashMap;
use std::path::Path;

/// Format tag stored in the metadata, checked on load: v2 stores the layer
/// list (`arch`); v1 files (the MLP before layers) keep loading.
pub const FORMAT: &str = "simdnet-v2";
/// The MLP-only format of earlier releases.
pub const FORMAT_V1: &str = "simdnet-mlp-v1";

/// The largest model file we agree to read (1 GiB): a bigger one is not ours.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// Serializes `model` (and its class names) to safetensors bytes.
pub fn to_bytes(model: &Model, class_names: &[String]) -> Result<Vec<u8>> {
    let spec = &model.spec;
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("input_shape".to_string(), format!("{},{}", spec.input_shape().0, spec.input_shape().1));
    meta.insert("arch".to_string(), spec.arch());
    meta.insert("classes".to_string(), spec.classes().to_string());
    meta.insert("class_names".to_string(), serde_json::to_string(class_names).expect("strings serialize"));
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = spec
        .param_layers()
        .flat_map(|l| {
            let kernel_shape = l.kernel_shape().expect("a layer with parameters has a kernel");
            [("kernel", kernel_shape, l.kernel.clone()), ("bias", vec![l.bias.len()], l.bias.clone())].map(
                |(suffix, shape, r)| {
                    (
                        format!("{}.{suffix}", l.name),
                        shape,
                        model.params[r].iter().flat_map(|v| v.to_le_bytes()).collect(),
                    )
                },
            )
        })
        .collect();
    let mut tensors = Vec::new();
    for (name, shape, data) in &bytes {
        let view = TensorView::new(Dtype::F32, shape.clone(), data)
            .map_err(|e| Error::new(format!("cannot serialize {name}: {e}")))?;
        tensors.push((name.clone(), view));
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

/// The architecture a v1 (MLP) header describes.
fn v1_layers(get: &dyn Fn(&str) -> std::result::Result<String, String>) -> std::result::Result<Vec<LayerSpec>, String> {
    let hidden_s = get("hidden")?;
    let hidden = if hidden_s.is_empty() {
        Vec::new()
    } else {
        hidden_s.split(',').map(|h| parse_usize("hidden", h)).collect::<std::result::Result<Vec<_>, _>>()?
    };
    if hidden.contains(&0) {
        return Err("metadata describes an empty layer (0 units)".into());
    }
    let activation = match get("activation")?.as_str() {
        "relu" => Activation::Relu,
        "sigmoid" => Activation::Sigmoid,
        other => return Err(format!("metadata activation {other:?} is not relu or sigmoid")),
    };
    let classes = parse_usize("classes", &get("classes")?)?;
    let dropout: f32 = get("dropout")?.parse().map_err(|_| "metadata dropout is not a number".to_string())?;
    if !(0.0..1.0).contains(&dropout) {
        return Err(format!("metadata dropout {dropout} is outside [0, 1)"));
    }
    Ok(arch::mlp(&hidden, activation, dropout, classes))
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
    let get = |k: &str| meta.get(k).cloned().ok_or_else(|| format!("metadata lacks {k:?}"));
    let layers = match get("format")?.as_str() {
        FORMAT => arch::parse(&get("arch")?).map_err(|e| format!("metadata arch: {e}"))?,
        FORMAT_V1 => v1_layers(&get)?,
        other => return Err(format!("unknown format {other:?} (expected {FORMAT:?} or {FORMAT_V1:?})")),
    };
    let shape_s = get("input_shape")?;
    let shape: Vec<&str> = shape_s.split(',').collect();
    if shape.len() != 2 {
        return Err(format!("metadata input_shape = {shape_s:?} needs two numbers"));
    }
    let input_shape = (parse_usize("input_shape", shape[0])?, parse_usize("input_shape", shape[1])?);
    if input_shape.0 > 1 << 16 || input_shape.1 > 1 << 16 {
        return Err(format!("metadata input_shape {shape_s:?} is larger than 65536x65536"));
    }
    // Sizes every layer with checked arithmetic and no allocation by the
    // model's size: a lying header must not make us allocate anything.
    let spec = ModelSpec::new(input_shape, &layers).map_err(|e| format!("metadata arch: {e}"))?;
    let classes = parse_usize("classes", &get("classes")?)?;
    if classes != spec.classes() {
        return Err(format!("metadata classes = {classes}, the last layer has {} units", spec.classes()));
    }
    let class_names: Vec<String> =
        serde_json::from_str(&get("class_names")?).map_err(|e| format!("metadata class_names: {e}"))?;
    if class_names.len() != classes {
        return Err(format!("{} class names for {classes} classes", class_names.len()));
    }
    if spec.param_count().saturating_mul(4) > bytes.len() {
        return Err(format!("metadata describes {} parameters, the file holds fewer", spec.param_count()));
    }
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| format!("corrupt safetensors data: {e}"))?;
    let expected_names = 2 * spec.param_layers().count();
    if tensors.len() != expected_names {
        return Err(format!("{} tensors, the architecture has {expected_names}", tensors.len()));
    }
    let mut params = vec![0.0f32; spec.param_count()];
    for l in spec.param_layers() {
        let kernel_shape = l.kernel_shape().expect("a layer with parameters has a kernel");
        for (suffix, range, shape) in
            [("kernel", l.kernel.clone(), kernel_shape), ("bias", l.bias.clone(), vec![l.bias.len()])]
        {
            let name = format!("{}.{suffix}", l.name);
            let t = tensors.tensor(&name).map_err(|_| format!("missing tensor {name}"))?;
            if t.dtype() != Dtype::F32 {
                return Err(format!("tensor {name} has dtype {:?}, expected F32", t.dtype()));
            }
            if t.shape() != shape.as_slice() {
                return Err(format!("tensor {name} has shape {:?}, expected {shape:?}", t.shape()));
            }
            for (p, b) in params[range.clone()].iter_mut().zip(t.data().chunks_exact(4)) {
                *p = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            check_finite(&name, &params[range])?;
        }
    }
    let model = Model::from_params(spec, params)?;
    Ok(Loaded { model, class_names })
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
