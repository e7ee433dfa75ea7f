//! `model.summary()` as Keras 3 prints it.

use crate::model::ModelSpec;

/// `1234567` → `1,234,567`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Bytes as Keras shows them: `310.59 KB`.
fn human_bytes(bytes: usize) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{b:.2} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2} KB", b / 1024.0)
    } else {
        format!("{:.2} MB", b / (1024.0 * 1024.0))
    }
}

/// The summary table of a Sequential model with this architecture.
pub fn summary(spec: &ModelSpec) -> String {
    // (name (type), output shape, params)
    let rows: Vec<(String, String, usize)> = spec
        .layers()
        .iter()
        .map(|l| (format!("{} ({})", l.name, l.class), l.output.keras(), l.param_count()))
        .collect();
    let widths = [33usize, 24, 15];
    let line = |l: &str, m: &str, r: &str, fill: &str| {
        format!("{l}{}{m}{}{m}{}{r}\n", fill.repeat(widths[0]), fill.repeat(widths[1]), fill.repeat(widths[2]))
    };
    let row = |a: &str, b: &str, c: &str, sep: &str| {
        format!(
            "{sep} {a:<w0$}{sep} {b:<w1$}{sep} {c:>w2$} {sep}\n",
            w0 = widths[0] - 1,
            w1 = widths[1] - 1,
            w2 = widths[2] - 2
        )
    };
    let mut out = String::from("Model: \"sequential\"\n");
    out += &line("┏", "┳", "┓", "━");
    out += &row("Layer (type)", "Output Shape", "Param #", "┃");
    out += &line("┡", "╇", "┩", "━");
    for (i, (name, shape, params)) in rows.iter().enumerate() {
        out += &row(name, shape, &thousands(*params), "│");
        out += &if i + 1 < rows.len() { line("├", "┼", "┤", "─") } else { line("└", "┴", "┘", "─") };
    }
    let total = spec.param_count();
    out += &format!(" Total params: {} ({})\n", thousands(total), human_bytes(total * 4));
    out += &format!(" Trainable params: {} ({})\n", thousands(total), human_bytes(total * 4));
    out += &format!(" Non-trainable params: 0 ({})\n", human_bytes(0));
    out
}
