//! Architectures: the layer list a model is built from, as `--arch` and the
//! model files spell it.
//!
//! `conv2d(32,3,relu,same),maxpool(2),conv2d(64,3,relu,same),maxpool(2),flatten,dense(100,relu),dropout(0.4),dense(10)`
//! is the book's chapter-8 CNN; `mlp` and `cnn` name the two presets. Parsing
//! checks the syntax and the ranges of each value; whether the layers fit an
//! input shape is checked by [`crate::model::ModelSpec::new`].

use crate::gemm::Activation;
use std::fmt;

/// Conv2D's padding, as Keras names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Output as large as the input (zeros around it).
    Same,
    /// Only the positions where the kernel fits inside the input.
    Valid,
}

/// One layer as written, before it is fitted to an input shape.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerSpec {
    Conv2D { filters: usize, kernel: usize, act: Activation, padding: Padding },
    MaxPool { pool: usize },
    Flatten,
    Dense { units: usize, act: Activation },
    Dropout { rate: f32 },
}

/// The most layers a list may hold.
pub const MAX_LAYERS: usize = 64;
/// The most filters of one Conv2D and units of one Dense layer.
pub const MAX_FILTERS: usize = 4096;
pub const MAX_UNITS: usize = 1_000_000;
/// Conv2D kernels are odd, 1 to this.
pub const MAX_KERNEL: usize = 7;

impl fmt::Display for LayerSpec {
    /// The syntax [`parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerSpec::Conv2D { filters, kernel, act, padding } => {
                let pad = if *padding == Padding::Same { "same" } else { "valid" };
                write!(f, "conv2d({filters},{kernel},{},{pad})", act.name())
            }
            LayerSpec::MaxPool { pool } => write!(f, "maxpool({pool})"),
            LayerSpec::Flatten => write!(f, "flatten"),
            LayerSpec::Dense { units, act: Activation::Linear } => write!(f, "dense({units})"),
            LayerSpec::Dense { units, act } => write!(f, "dense({units},{})", act.name()),
            LayerSpec::Dropout { rate } => write!(f, "dropout({rate})"),
        }
    }
}

/// A layer list as text: `conv2d(32,3,relu,same),maxpool(2),…`.
pub fn to_string(layers: &[LayerSpec]) -> String {
    layers.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(",")
}

/// The Keras tutorial's MLP shaped by `--hidden`, `--activation` and
/// `--dropout`: Flatten → Dense(h, act) [→ Dropout] … → Dense(classes).
pub fn mlp(hidden: &[usize], act: Activation, dropout: f32, classes: usize) -> Vec<LayerSpec> {
    let mut layers = vec![LayerSpec::Flatten];
    for &units in hidden {
        layers.push(LayerSpec::Dense { units, act });
        if dropout > 0.0 {
            layers.push(LayerSpec::Dropout { rate: dropout });
        }
    }
    layers.push(LayerSpec::Dense { units: classes, act: Activation::Linear });
    layers
}

/// The book's chapter-8 CNN (8-2) for `classes` classes.
pub fn cnn(classes: usize) -> Vec<LayerSpec> {
    let conv = |filters| LayerSpec::Conv2D { filters, kernel: 3, act: Activation::Relu, padding: Padding::Same };
    vec![
        conv(32),
        LayerSpec::MaxPool { pool: 2 },
        conv(64),
        LayerSpec::MaxPool { pool: 2 },
        LayerSpec::Flatten,
        LayerSpec::Dense { units: 100, act: Activation::Relu },
        LayerSpec::Dropout { rate: 0.4 },
        LayerSpec::Dense { units: classes, act: Activation::Linear },
    ]
}

/// Splits `s` at the commas outside parentheses.
pub fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn activation(word: &str) -> Option<Activation> {
    match word {
        "relu" => Some(Activation::Relu),
        "sigmoid" => Some(Activation::Sigmoid),
        "linear" => Some(Activation::Linear),
        _ => None,
    }
}

fn whole(what: &str, v: &str, max: usize) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("{what} {v:?} is not a whole number from 1 to {max}")),
    }
}

/// One layer, e.g. `conv2d(32,3,relu,same)`; the error says what is wrong
/// with it (the caller names its position).
fn parse_layer(item: &str) -> Result<LayerSpec, String> {
    let (name, args) = match item.split_once('(') {
        Some((name, rest)) => {
            let inner = rest.strip_suffix(')').ok_or("a '(' without its closing ')'")?;
            if inner.contains(['(', ')']) {
                return Err("nested parentheses".into());
            }
            let args: Vec<&str> = inner.split(',').map(str::trim).collect();
            (name.trim(), if args == [""] { Vec::new() } else { args })
        }
        None if item.contains(')') => return Err("a ')' without its '('".into()),
        None => (item.trim(), Vec::new()),
    };
    let count = |min: usize, max: usize, usage: &str| {
        if args.len() < min || args.len() > max {
            Err(format!("takes {usage}, got {} argument{}", args.len(), if args.len() == 1 { "" } else { "s" }))
        } else {
            Ok(())
        }
    };
    match name.to_ascii_lowercase().as_str() {
        "conv2d" | "conv" => {
            count(2, 4, "(filters, kernel[, activation][, padding])")?;
            let filters = whole("filters", args[0], MAX_FILTERS)?;
            let kernel = whole("kernel size", args[1], MAX_KERNEL)?;
            if kernel.is_multiple_of(2) {
                return Err(format!("kernel size {kernel} is even: simdnet takes odd kernels, 1 to {MAX_KERNEL}"));
            }
            // Keras' defaults: activation=None (linear), padding='valid'.
            let (mut act, mut padding) = (None, None);
            for &word in &args[2..] {
                match (activation(word), word) {
                    (Some(a), _) if act.is_none() => act = Some(a),
                    (None, "same") if padding.is_none() => padding = Some(Padding::Same),
                    (None, "valid") if padding.is_none() => padding = Some(Padding::Valid),
                    _ => {
                        return Err(format!(
                            "{word:?} is not an activation (relu, sigmoid, linear) or a padding (same, valid), \
                             or is given twice"
                        ))
                    }
                }
            }
            Ok(LayerSpec::Conv2D {
                filters,
                kernel,
                act: act.unwrap_or(Activation::Linear),
                padding: padding.unwrap_or(Padding::Valid),
            })
        }
        "maxpool" | "maxpooling2d" | "max_pooling2d" | "maxpool2d" => {
            count(0, 1, "(pool size)")?;
            let pool = match args.first() {
                Some(v) => whole("pool size", v, 1024)?,
                None => 2,
            };
            Ok(LayerSpec::MaxPool { pool })
        }
        "flatten" => {
            count(0, 0, "no arguments")?;
            Ok(LayerSpec::Flatten)
        }
        "dense" => {
            count(1, 2, "(units[, activation])")?;
            let units = whole("units", args[0], MAX_UNITS)?;
            let act = match args.get(1) {
                // Softmax is fused into the loss: the last layer's logits stay linear.
                Some(&"softmax") => Activation::Linear,
                Some(w) => activation(w).ok_or_else(|| format!("{w:?} is not relu, sigmoid, linear or softmax"))?,
                None => Activation::Linear,
            };
            Ok(LayerSpec::Dense { units, act })
        }
        "dropout" => {
            count(1, 1, "(rate)")?;
            match args[0].parse::<f32>() {
                Ok(rate) if rate > 0.0 && rate < 1.0 => Ok(LayerSpec::Dropout { rate }),
                _ => Err(format!("rate {:?} is not a number in (0, 1)", args[0])),
            }
        }
        "" => Err("empty layer".into()),
        other => Err(format!("unknown layer {other:?} (expected conv2d, maxpool, flatten, dense or dropout)")),
    }
}

/// Parses a layer list; the error names the layer (position and text) and
/// what is wrong with it.
pub fn parse(s: &str) -> Result<Vec<LayerSpec>, String> {
    let items = split_top_level(s.trim());
    if items.len() > MAX_LAYERS {
        return Err(format!("{} layers: at most {MAX_LAYERS}", items.len()));
    }
    let mut layers = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let layer = parse_layer(item.trim()).map_err(|e| format!("layer {} {:?}: {e}", i + 1, item.trim()))?;
        if let (LayerSpec::Dense { act, .. }, true) = (&layer, item.contains("softmax")) {
            if i + 1 != items.len() && *act == Activation::Linear {
                return Err(format!("layer {} {:?}: softmax belongs to the last layer only", i + 1, item.trim()));
            }
        }
        layers.push(layer);
    }
    Ok(layers)
}

/// What `--arch` names: a preset or a layer list.
#[derive(Clone, Debug, PartialEq)]
pub enum Arch {
    /// The tutorial MLP, shaped by `--hidden`, `--activation`, `--dropout`.
    Mlp,
    /// The book's chapter-8 CNN.
    Cnn,
    /// A list of layers; the last must be `dense(CLASSES)`.
    Layers(Vec<LayerSpec>),
}

impl Arch {
    pub fn parse(s: &str) -> Result<Arch, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mlp" => Ok(Arch::Mlp),
            "cnn" => Ok(Arch::Cnn),
            _ => parse(s).map(Arch::Layers),
        }
    }

    /// `mlp`, `cnn` or the layer list.
    pub fn name(&self) -> String {
        match self {
            Arch::Mlp => "mlp".into(),
            Arch::Cnn => "cnn".into(),
            Arch::Layers(l) => to_string(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_book_cnn_reads_back_from_its_text() {
        let text = to_string(&cnn(10));
        assert_eq!(
            text,
            "conv2d(32,3,relu,same),maxpool(2),conv2d(64,3,relu,same),maxpool(2),flatten,dense(100,relu),dropout(0.4),dense(10)"
        );
        assert_eq!(parse(&text).unwrap(), cnn(10));
        assert_eq!(Arch::parse("CNN").unwrap(), Arch::Cnn);
    }

    #[test]
    fn keras_defaults_and_aliases() {
        assert_eq!(
            parse("conv2d(8, 5), max_pooling2d, dense(10, softmax)").unwrap(),
            vec![
                LayerSpec::Conv2D { filters: 8, kernel: 5, act: Activation::Linear, padding: Padding::Valid },
                LayerSpec::MaxPool { pool: 2 },
                LayerSpec::Dense { units: 10, act: Activation::Linear },
            ]
        );
        assert_eq!(
            parse("conv2d(4,1,same,sigmoid)").unwrap()[0],
            LayerSpec::Conv2D { filters: 4, kernel: 1, act: Activation::Sigmoid, padding: Padding::Same }
        );
    }

    #[test]
    fn errors_name_the_layer_and_the_problem() {
        let err = |s: &str| parse(s).unwrap_err();
        assert_eq!(
            err("flatten,densse(10)"),
            "layer 2 \"densse(10)\": unknown layer \"densse\" (expected conv2d, maxpool, flatten, dense or dropout)"
        );
        assert!(err("conv2d(32,4)").contains("kernel size 4 is even"), "{}", err("conv2d(32,4)"));
        assert!(err("conv2d(0,3)").contains("filters \"0\" is not a whole number"));
        assert!(err("conv2d(32)").contains("takes (filters, kernel"));
        assert!(err("conv2d(3,3,relu,tanh)").contains("\"tanh\" is not an activation"));
        assert!(err("conv2d(3,3,relu,relu)").contains("given twice"));
        assert!(err("dense(10").contains("without its closing"));
        assert!(err("dense(10))").contains("layer 1"));
        assert!(err("dropout(1)").contains("rate \"1\" is not a number in (0, 1)"));
        assert!(err("dropout(NaN)").contains("not a number in (0, 1)"));
        assert!(err("flatten,,dense(10)").contains("layer 2 \"\": empty layer"));
        assert!(err("dense(10,softmax),dense(10)").contains("softmax belongs to the last layer"));
        assert!(err("dense(99999999999999999999999)").contains("units"));
        assert!(err(&vec!["flatten"; 65].join(",")).contains("at most 64"));
    }
}
