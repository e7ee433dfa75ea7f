//! Direct convolution for layers with a short patch (k·k·cin ≤
//! [`DIRECT_MAX_PATCH`], e.g. the first layer of an image model: 3×3×1 = 9),
//! where im2col costs more than the product it feeds: its rows are 9 floats
//! long, copied 3 at a time, and the GEMM's K = 9 leaves its microkernel
//! mostly loading.
//!
//! Both passes read a zero-padded copy of each image, `xpad`
//! `[oh + k − 1, ow + k − 1, cin]` (plus [`PAD_TAIL`] zero pixels), so no
//! tap needs a bounds test:
//! - forward: oneDNN's scheme. A tile of `P` consecutive output positions ×
//!   `V` vectors of output channels stays in registers; each kernel row
//!   (tap, ci) is loaded once as V vectors and each of the P inputs is
//!   broadcast into them. Positions run along the padded rows, so a tile may
//!   straddle a row end: the k − 1 positions past `ow` are computed and not
//!   stored (wp / ow more FMAs, 30 / 28 for the book's 28×28 'same' conv).
//! - dW: `R` kernel rows × V vectors of output channels accumulate over every
//!   position of one image (a position's dz vectors are loaded once and each
//!   of the R inputs broadcast into them); the per-image sums (and the bias
//!   gradient's) are added in image order, so the result does not depend on
//!   the thread count. Each image's dz is made just before its dW reads it:
//!   `dout ⊙ act'(out)` in place, or, where a MaxPooling2D follows the
//!   layer, the pool's backward pass into one image's slot reused by each
//!   worker, so that the layer's largest tensor never crosses memory again
//!   (see [`DzSource::ThroughPool`]).
//!
//! Shapes are those of [`super::conv2d`]; its `reference` is the oracle.

use super::conv2d::ConvGeometry;
use super::dense::activation_backward_and_bias_grad_plain;
use super::maxpool::{self, PoolGeometry};
use crate::gemm::simd::Simd;
use crate::gemm::{Activation, Isa};
use rayon::prelude::*;

/// The longest patch (k·k·cin) the direct path takes. Measured on Zen 4,
/// batch 32: the book's conv1 (patch 9) forward takes 0.24 ms direct
/// against 0.52 through im2col (whose copies of 3 floats cost more than the
/// product); at patch 288 (its conv2) the GEMM wins: forward 2.28 ms
/// against 2.36 direct, dW 2.15 against 3.19.
pub const DIRECT_MAX_PATCH: usize = 32;

/// Zero pixels after each padded image: the forward tile's last positions
/// read up to `P − 1 + k − 1` pixels past the padded grid.
const PAD_TAIL: usize = 24;

/// The most vectors of output channels one tile holds.
const MAX_V: usize = 4;

/// Whether [`forward`] and [`backward_weights`] take this layer.
pub fn applies(g: &ConvGeometry) -> bool {
    g.patch_len() <= DIRECT_MAX_PATCH
}

/// Padded rows and columns of one image.
fn padded_dims(g: &ConvGeometry) -> (usize, usize) {
    (g.oh + g.k - 1, g.ow + g.k - 1)
}

/// Floats of one padded image in the scratch.
pub fn padded_len(g: &ConvGeometry) -> usize {
    let (hp, wp) = padded_dims(g);
    (hp * wp + PAD_TAIL) * g.cin
}

/// Floats of scratch per image: the padded image, then the image's dW sum
/// and its bias gradient's.
pub fn scratch_len(g: &ConvGeometry) -> usize {
    padded_len(g) + (g.patch_len() + 1) * g.cout
}

/// Copies each image of x `[batch, h, w, cin]` into its padded slot of `scratch`.
pub fn pad_input(scratch: &mut [f32], x: &[f32], g: &ConvGeometry, batch: usize) {
    let (_, wp) = padded_dims(g);
    let rowlen = g.w * g.cin;
    scratch[..batch * scratch_len(g)]
        .par_chunks_mut(scratch_len(g))
        .zip(x[..batch * g.in_len()].par_chunks(g.in_len()))
        .for_each(|(s, x)| {
            let xpad = &mut s[..padded_len(g)];
            xpad.fill(0.0);
            for y in 0..g.h {
                let dst = ((y + g.pad) * wp + g.pad) * g.cin;
                xpad[dst..dst + rowlen].copy_from_slice(&x[y * rowlen..][..rowlen]);
            }
        });
}

/// out `[batch, oh, ow, cout]` = act(conv(x, kernel) + bias), reading the
/// padded images [`pad_input`] left in `scratch`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    isa: Isa,
    out: &mut [f32],
    scratch: &[f32],
    kernel: &[f32],
    bias: &[f32],
    g: &ConvGeometry,
    batch: usize,
    act: Activation,
) {
    assert!(applies(g) && isa.is_available(), "direct conv: {isa} on patch {}", g.patch_len());
    assert!(kernel.len() >= g.patch_len() * g.cout && bias.len() >= g.cout);
    let out = &mut out[..batch * g.out_len()];
    out.par_chunks_mut(g.out_len()).zip(scratch[..batch * scratch_len(g)].par_chunks(scratch_len(g))).for_each(
        |(out, s)| {
            let args = Image {
                xpad: s.as_ptr(),
                out: out.as_mut_ptr(),
                kernel: kernel.as_ptr(),
                bias: bias.as_ptr(),
                g: *g,
                act,
            };
            // SAFETY: `out` is one image's output (out_len), `s` one image's
            // scratch whose padded part covers every tap of every position
            // `forward_image` computes (PAD_TAIL); kernel and bias are checked
            // above; the ISA is available (asserted).
            unsafe { dispatch_forward(isa, &args) }
        },
    );
}

/// Where a conv's backward pass gets each image's dz `[oh, ow, cout]` from.
#[derive(Clone, Copy)]
pub enum DzSource<'a> {
    /// dz = dout ⊙ act'(out), made in place: `dz` holds the layer's dout
    /// `[batch, oh, ow, cout]` and `out` its output.
    InPlace { out: &'a [f32], act: Activation },
    /// dz is the input gradient of the MaxPooling2D `pool` after the layer
    /// (`act`'s derivative fused, see [`maxpool::maxpool_backward`]), from
    /// its dout and out `[batch, pool.oh, pool.ow, cout]` and the layer's
    /// output `conv_out`, made image by image just before the conv's
    /// products read it, so the pool's gradient never crosses memory on its
    /// own. The direct path makes each worker's images' dz in turn in the
    /// first image slot of its part (dz is then scratch), where the dW reads
    /// it from L2: for the book's first conv this saved four passes over a
    /// 3.2 MB tensor (the pool's write, the bias gradient's read and write,
    /// the dW's read): 0.52 → 0.47 ms for the pool's backward, the bias
    /// gradient and the dW together, best of five alternating rounds (Zen 4,
    /// batch 32). The im2col path writes each image's dz in its place.
    ThroughPool { pool_dout: &'a [f32], pool_out: &'a [f32], conv_out: &'a [f32], pool: PoolGeometry, act: Activation },
}

impl DzSource<'_> {
    /// Image `image`'s dz into `dz` (`[oh, ow, cout]`; for `InPlace`
    /// holding that image's dout) and its column sums, the bias gradient,
    /// into `db` (`[cout]`, overwritten). Plain loops: run it under
    /// [`crate::nn::vectorized`].
    #[inline(always)]
    pub(crate) fn image_dz(&self, dz: &mut [f32], db: &mut [f32], image: usize, g: &ConvGeometry) {
        let ol = g.out_len();
        match *self {
            DzSource::InPlace { out, act } => {
                activation_backward_and_bias_grad_plain(db, dz, &out[image * ol..][..ol], None, g.cout, act)
            }
            DzSource::ThroughPool { pool_dout, pool_out, conv_out, pool, act } => {
                let (pi, po) = (pool.in_len(), pool.out_len());
                maxpool::backward_image(
                    dz,
                    &pool_dout[image * po..][..po],
                    &conv_out[image * pi..][..pi],
                    &pool_out[image * po..][..po],
                    &pool,
                    act,
                    Some(db),
                );
            }
        }
    }
}

/// dkernel `[k, k, cin, cout]` and dbias `[cout]` (overwritten) = Σ over the
/// batch's positions of the padded input patch ⊗ dz, and of dz, with each
/// image's dz from `source` (`dz`: `[batch, oh, ow, cout]`, see
/// [`DzSource`]). Uses the scratch after each padded image for that image's sums.
#[allow(clippy::too_many_arguments)]
pub fn backward_weights(
    isa: Isa,
    dkernel: &mut [f32],
    dbias: &mut [f32],
    scratch: &mut [f32],
    dz: &mut [f32],
    source: DzSource,
    g: &ConvGeometry,
    batch: usize,
) {
    assert!(applies(g) && isa.is_available(), "direct conv: {isa} on patch {}", g.patch_len());
    let (pl, kn, sl, ol) = (padded_len(g), g.patch_len() * g.cout, scratch_len(g), g.out_len());
    if let DzSource::ThroughPool { pool, .. } = source {
        assert_eq!((pool.h, pool.w, pool.c), (g.oh, g.ow, g.cout), "the pool reads this layer's output");
    }
    // Contiguous runs of images, one per worker (the slot a worker reuses
    // for ThroughPool); an image's sums do not depend on the split.
    let per_worker = crate::nn::images_per_worker(batch);
    let parts =
        scratch[..batch * sl].par_chunks_mut(per_worker * sl).zip(dz[..batch * ol].par_chunks_mut(per_worker * ol));
    parts.enumerate().for_each(|(part, (scratch, dz))| {
        for (j, s) in scratch.chunks_exact_mut(sl).enumerate() {
            let image = part * per_worker + j;
            let (xpad, sums) = s.split_at_mut(pl);
            let (dw, db) = sums.split_at_mut(kn);
            let dz = match source {
                DzSource::InPlace { .. } => &mut dz[j * ol..][..ol],
                DzSource::ThroughPool { .. } => &mut dz[..ol],
            };
            crate::nn::vectorized(
                isa,
                #[inline(always)]
                || source.image_dz(dz, db, image, g),
            );
            let args = WeightGrad { xpad: xpad.as_ptr(), dz: dz.as_ptr(), dw: dw.as_mut_ptr(), g: *g };
            // SAFETY: `xpad` is one padded image, `dz` that image's out_len
            // gradients, `dw` patch_len·cout floats; the ISA is available.
            unsafe { dispatch_weights(isa, &args) }
        }
    });
    // Image order, whatever the threads: bit-identical for any thread count.
    let (dkernel, dbias) = (&mut dkernel[..kn], &mut dbias[..g.cout]);
    let mut images = scratch[..batch * sl].chunks_exact(sl).map(|s| s[pl..].split_at(kn));
    if let Some((dw, db)) = images.next() {
        dkernel.copy_from_slice(dw);
        dbias.copy_from_slice(db);
    }
    for (dw, db) in images {
        for (d, &v) in dkernel.iter_mut().zip(dw).chain(dbias.iter_mut().zip(db)) {
            *d += v;
        }
    }
}

/// One image's forward operands (raw, for the `#[target_feature]` entries).
struct Image {
    xpad: *const f32,
    out: *mut f32,
    kernel: *const f32,
    bias: *const f32,
    g: ConvGeometry,
    act: Activation,
}

/// One image's dW operands.
struct WeightGrad {
    xpad: *const f32,
    dz: *const f32,
    dw: *mut f32,
    g: ConvGeometry,
}

/// # Safety
/// As [`forward_image`]; `isa` is available.
unsafe fn dispatch_forward(isa: Isa, a: &Image) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => forward_avx512(a),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => forward_avx2(a),
        _ => forward_image::<crate::gemm::simd::VWide>(a),
    }
}

/// # Safety
/// As [`weights_image`]; `isa` is available.
unsafe fn dispatch_weights(isa: Isa, a: &WeightGrad) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => weights_avx512(a),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => weights_avx2(a),
        _ => weights_image::<crate::gemm::simd::VWide>(a),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn forward_avx512(a: &Image) {
    forward_image::<crate::gemm::simd::V512>(a)
}
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_avx2(a: &Image) {
    forward_image::<crate::gemm::simd::V256>(a)
}
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn weights_avx512(a: &WeightGrad) {
    weights_image::<crate::gemm::simd::V512>(a)
}
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weights_avx2(a: &WeightGrad) {
    weights_image::<crate::gemm::simd::V256>(a)
}

/// One image: output channels in blocks of up to [`MAX_V`] vectors, each
/// block's positions in tiles of P (fewer vectors, longer tiles: P·V ≈ 16
/// accumulators, and loads V + P per P·V FMAs). With 16 registers (AVX2) a
/// tile holds P·V + V + 1 ≤ 16 vectors (accumulators, kernel row, the
/// broadcast), else it spills: blocks of at most 2 vectors, P·V = 12.
///
/// # Safety
/// `a.xpad` holds [`padded_len`] floats, `a.out` out_len, `a.kernel`
/// patch_len·cout, `a.bias` cout; `S`'s instruction set is enabled.
#[inline(always)]
unsafe fn forward_image<S: Simd>(a: &Image) {
    let wide = S::REGISTERS >= 32;
    let max_v = if wide { MAX_V } else { 2 };
    let mut co = 0;
    while co < a.g.cout {
        let lanes = (a.g.cout - co).min(max_v * S::LANES);
        match (lanes.div_ceil(S::LANES), wide) {
            (1, _) => forward_block::<S, 1, 12>(a, co, lanes),
            (2, true) => forward_block::<S, 2, 8>(a, co, lanes),
            (2, false) => forward_block::<S, 2, 6>(a, co, lanes),
            (3, true) => forward_block::<S, 3, 5>(a, co, lanes),
            (3, false) => forward_block::<S, 3, 3>(a, co, lanes),
            (_, true) => forward_block::<S, 4, 4>(a, co, lanes),
            (_, false) => forward_block::<S, 4, 2>(a, co, lanes),
        }
        co += lanes;
    }
}

/// Output channels `co .. co + lanes` (V vectors, the last maybe partial).
///
/// # Safety
/// As [`forward_image`].
#[inline(always)]
unsafe fn forward_block<S: Simd, const V: usize, const P: usize>(a: &Image, co: usize, lanes: usize) {
    if lanes == V * S::LANES {
        forward_tiles::<S, V, P, true>(a, co, lanes)
    } else {
        forward_tiles::<S, V, P, false>(a, co, lanes)
    }
}

/// [`forward_block`], with `FULL` = whole vectors only (no width test in
/// the tile's loop).
///
/// # Safety
/// As [`forward_image`].
#[inline(always)]
unsafe fn forward_tiles<S: Simd, const V: usize, const P: usize, const FULL: bool>(a: &Image, co: usize, lanes: usize) {
    let g = &a.g;
    let (_, wp) = padded_dims(g);
    let width = |v: usize| if FULL { S::LANES } else { (lanes - v * S::LANES).min(S::LANES) };
    let mut bias = [S::zero(); V];
    for (v, b) in bias.iter_mut().enumerate() {
        *b = S::load_upto(a.bias.add(co + v * S::LANES), width(v));
    }
    // Each kernel row's (tap, ci) offset in the padded image from a
    // position's top-left pixel, so the tile's loop has no divisions.
    let rows = g.patch_len();
    let mut offs = [0usize; DIRECT_MAX_PATCH];
    for (r, o) in offs[..rows].iter_mut().enumerate() {
        let (t, ci) = (r / g.cin, r % g.cin);
        *o = ((t / g.k) * wp + t % g.k) * g.cin + ci;
    }
    let positions = g.oh * wp;
    // The tile's first position, as (row, column) of the padded grid.
    let (mut ty, mut tx) = (0, 0);
    let mut q0 = 0;
    while q0 < positions {
        let mut acc = [[S::zero(); V]; P];
        let x0 = a.xpad.add(q0 * g.cin);
        for (r, &off) in offs[..rows].iter().enumerate() {
            let row = a.kernel.add(r * g.cout + co);
            let mut w = [S::zero(); V];
            for (v, w) in w.iter_mut().enumerate() {
                *w = S::load_upto(row.add(v * S::LANES), width(v));
            }
            let x = x0.add(off);
            for (p, acc) in acc.iter_mut().enumerate() {
                let xb = S::bcast(x.add(p * g.cin));
                for v in 0..V {
                    acc[v] = S::fmadd(xb, w[v], acc[v]);
                }
            }
        }
        let (mut oy, mut ox) = (ty, tx);
        for acc in &acc {
            if oy >= g.oh {
                break;
            }
            // The padded columns' positions are computed, not kept.
            if ox < g.ow {
                let dst = a.out.add((oy * g.ow + ox) * g.cout + co);
                for v in 0..V {
                    let z = S::add(acc[v], bias[v]);
                    let y = match a.act {
                        Activation::Linear => z,
                        Activation::Relu => S::relu(z),
                        Activation::Sigmoid => S::sigmoid(z),
                    };
                    S::store_upto(dst.add(v * S::LANES), width(v), y);
                }
            }
            ox += 1;
            if ox == wp {
                (oy, ox) = (oy + 1, 0);
            }
        }
        (ty, tx) = (oy, ox);
        q0 += P;
    }
}

/// One image's dW: kernel rows (tap, ci) in blocks of R, output channels
/// in blocks of V vectors, R·V accumulators; per position V loads and R
/// broadcasts for R·V FMAs. With 32 registers (AVX-512) R = 4 and V up to
/// [`MAX_V`] (the last row block shorter). With 16 (AVX2) the compiler
/// loads a position's R broadcasts before its FMAs, so a block holds
/// R·V + V + R ≤ 16 vectors: R = (16 − V) / (V + 1), and V up to 4 (R = 2
/// at V = 4: the book's 9 rows × 32 channels in 5 passes over the image,
/// against 4 + 5 rows × 2 blocks of 2 vectors, whose 5-row block spilled an
/// accumulator to the stack every position).
///
/// # Safety
/// `a.xpad` holds [`padded_len`] floats, `a.dz` out_len, `a.dw`
/// patch_len·cout; `S`'s instruction set is enabled.
#[inline(always)]
unsafe fn weights_image<S: Simd>(a: &WeightGrad) {
    let g = &a.g;
    let rows = g.patch_len();
    let wide = S::REGISTERS >= 32;
    let mut co = 0;
    while co < g.cout {
        let lanes = (g.cout - co).min(MAX_V * S::LANES);
        let vectors = lanes.div_ceil(S::LANES);
        let max_r = if wide { 4 } else { ((S::REGISTERS - vectors) / (vectors + 1)).max(1) };
        let mut r = 0;
        while r < rows {
            let n = (rows - r).min(max_r);
            // On AVX-512 a short last block runs row by row, as measured on Zen 4.
            let n = if wide && n < max_r { 1 } else { n };
            match vectors {
                1 => weights_rows::<S, 1>(a, r, n, co, lanes),
                2 => weights_rows::<S, 2>(a, r, n, co, lanes),
                3 => weights_rows::<S, 3>(a, r, n, co, lanes),
                _ => weights_rows::<S, 4>(a, r, n, co, lanes),
            }
            r += n;
        }
        co += lanes;
    }
}

/// dW rows `r .. r + n` (n ≤ 7) × V vectors of output channels.
///
/// # Safety
/// As [`weights_block`].
#[inline(always)]
unsafe fn weights_rows<S: Simd, const V: usize>(a: &WeightGrad, r: usize, n: usize, co: usize, lanes: usize) {
    if lanes == V * S::LANES {
        weights_rows_of::<S, V, true>(a, r, n, co, lanes)
    } else {
        weights_rows_of::<S, V, false>(a, r, n, co, lanes)
    }
}

/// [`weights_rows`], with `FULL` = whole vectors only (no width test per
/// position).
///
/// # Safety
/// As [`weights_block`].
#[inline(always)]
unsafe fn weights_rows_of<S: Simd, const V: usize, const FULL: bool>(
    a: &WeightGrad,
    r: usize,
    n: usize,
    co: usize,
    lanes: usize,
) {
    match n {
        1 => weights_block::<S, V, 1, FULL>(a, r, co, lanes),
        2 => weights_block::<S, V, 2, FULL>(a, r, co, lanes),
        3 => weights_block::<S, V, 3, FULL>(a, r, co, lanes),
        4 => weights_block::<S, V, 4, FULL>(a, r, co, lanes),
        5 => weights_block::<S, V, 5, FULL>(a, r, co, lanes),
        6 => weights_block::<S, V, 6, FULL>(a, r, co, lanes),
        _ => weights_block::<S, V, 7, FULL>(a, r, co, lanes),
    }
}

/// dW rows `r .. r + R` × output channels `co .. co + lanes`.
///
/// # Safety
/// As [`weights_image`]; `r + R ≤ patch_len`.
#[inline(always)]
unsafe fn weights_block<S: Simd, const V: usize, const R: usize, const FULL: bool>(
    a: &WeightGrad,
    r: usize,
    co: usize,
    lanes: usize,
) {
    let g = &a.g;
    let (_, wp) = padded_dims(g);
    let width = |v: usize| if FULL { S::LANES } else { (lanes - v * S::LANES).min(S::LANES) };
    // Each row's offset in the padded image from a position's top-left pixel.
    let mut offs = [0usize; R];
    for (i, o) in offs.iter_mut().enumerate() {
        let (t, ci) = ((r + i) / g.cin, (r + i) % g.cin);
        *o = ((t / g.k) * wp + t % g.k) * g.cin + ci;
    }
    let mut acc = [[S::zero(); V]; R];
    for oy in 0..g.oh {
        // Position (oy, 0)'s dz and top-left input, stepped along the row.
        let mut dz = a.dz.add(oy * g.ow * g.cout + co);
        let mut x = a.xpad.add(oy * wp * g.cin);
        for _ in 0..g.ow {
            let mut d = [S::zero(); V];
            for (v, d) in d.iter_mut().enumerate() {
                *d = S::load_upto(dz.add(v * S::LANES), width(v));
            }
            for (i, acc) in acc.iter_mut().enumerate() {
                let xb = S::bcast(x.add(offs[i]));
                for v in 0..V {
                    acc[v] = S::fmadd(xb, d[v], acc[v]);
                }
            }
            dz = dz.add(g.cout);
            x = x.add(g.cin);
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        let dst = a.dw.add((r + i) * g.cout + co);
        for (v, &acc) in acc.iter().enumerate() {
            S::store_upto(dst.add(v * S::LANES), width(v), acc);
        }
    }
}
