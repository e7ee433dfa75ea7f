//! Conv2D, channels-last (NHWC, as Keras stores images), stride 1, `same` or
//! `valid` padding: `out = act(conv(x, kernel) + bias)` and its backward pass.
//!
//! Shapes: x `[batch, h, w, cin]`, kernel `[k, k, cin, cout]` (Keras' HWIO),
//! bias `[cout]`, out `[batch, oh, ow, cout]`.
//!
//! The fast path lowers the convolution to the SGEMM through im2col: an
//! image's `col` `[oh·ow, k·k·cin]` holds, for each output position, the
//! input patch under the kernel in (ky, kx, c) order, which is the row order
//! of the HWIO kernel read as a `[k·k·cin, cout]` matrix. Then, per image
//! (see [`conv2d_forward_with`] for why):
//! - forward: out = act(col · kernel + bias), the GEMM's fused epilogue;
//! - dkernel = Σ colᵀ · dz, with dz = dout ⊙ act'(out) and col made again;
//! - dx: dcol = dz · kernelᵀ, scattered back by col2im.
//!
//! `reference` keeps direct loops as the test oracle.

use super::conv_direct::{self, DzSource};
use crate::arch::Padding;
use crate::gemm::{self, Activation, Epilogue, Isa, MatMut, MatRef};
use rayon::prelude::*;

/// Sizes of one Conv2D layer, checked once when the model is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Input rows, columns, channels.
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    /// Kernel size (odd) and output channels.
    pub k: usize,
    pub cout: usize,
    /// Zero rows/columns added before the first input pixel (k/2 for `same`).
    pub pad: usize,
    /// Output rows and columns.
    pub oh: usize,
    pub ow: usize,
}

impl ConvGeometry {
    /// The geometry, or why the kernel does not fit the input.
    pub fn new(
        (h, w, cin): (usize, usize, usize),
        k: usize,
        cout: usize,
        padding: Padding,
    ) -> Result<ConvGeometry, String> {
        if h == 0 || w == 0 || cin == 0 || cout == 0 || k == 0 {
            return Err(format!("an empty convolution: input {h}x{w}x{cin}, kernel {k}, {cout} filters"));
        }
        if k.is_multiple_of(2) {
            return Err(format!("kernel size {k} is even"));
        }
        let (pad, oh, ow) = match padding {
            Padding::Same => (k / 2, h, w),
            Padding::Valid if k > h || k > w => {
                return Err(format!("a {k}x{k} kernel does not fit a {h}x{w} input with padding valid"))
            }
            Padding::Valid => (0, h - k + 1, w - k + 1),
        };
        Ok(ConvGeometry { h, w, cin, k, cout, pad, oh, ow })
    }

    /// Output positions per image.
    pub fn positions(&self) -> usize {
        self.oh * self.ow
    }
    /// Length of one im2col row: k·k·cin.
    pub fn patch_len(&self) -> usize {
        self.k * self.k * self.cin
    }
    pub fn in_len(&self) -> usize {
        self.h * self.w * self.cin
    }
    pub fn out_len(&self) -> usize {
        self.positions() * self.cout
    }
    /// Floats of `col` per image.
    pub fn col_len(&self) -> usize {
        self.positions() * self.patch_len()
    }
    /// Floats of the layer's scratch per image: for a layer the direct path
    /// takes, its padded input and dW sum (and room for the dcol of its input
    /// gradient); else room for an im2col (used in the first image's slot of
    /// each worker's run) and then the image's dW and bias-gradient sums.
    pub fn scratch_len(&self) -> usize {
        if conv_direct::applies(self) {
            self.col_len().max(conv_direct::scratch_len(self))
        } else {
            self.col_len() + self.sums_len()
        }
    }
    /// Floats of one image's dW and bias-gradient sums.
    fn sums_len(&self) -> usize {
        (self.patch_len() + 1) * self.cout
    }
    /// Floats of the whole scratch for `batch` images: theirs, then room
    /// for the kernel's transpose (the input gradient's GEMM reads it).
    pub fn scratch_floats(&self, batch: usize) -> usize {
        batch * self.scratch_len() + self.patch_len() * self.cout
    }
    /// The valid kernel offsets [lo, hi) along an axis of `size` for output `o`.
    #[inline]
    fn taps(&self, o: usize, size: usize) -> (usize, usize) {
        let lo = self.pad.saturating_sub(o);
        let hi = (size + self.pad - o).min(self.k);
        (lo, hi)
    }
}

/// col `[batch·oh·ow, k·k·cin]` from x `[batch, h, w, cin]`; padding reads as zeros.
pub fn im2col(col: &mut [f32], x: &[f32], g: &ConvGeometry, batch: usize) {
    let (col, x) = (&mut col[..batch * g.col_len()], &x[..batch * g.in_len()]);
    col.par_chunks_mut(g.col_len()).zip(x.par_chunks(g.in_len())).for_each(|(col, x)| im2col_image(col, x, g));
}

#[inline(always)]
fn im2col_image(col: &mut [f32], x: &[f32], g: &ConvGeometry) {
    let (kc, rowlen) = (g.k * g.cin, g.patch_len());
    for oy in 0..g.oh {
        let (ky0, ky1) = g.taps(oy, g.h);
        for ox in 0..g.ow {
            let (kx0, kx1) = g.taps(ox, g.w);
            let row = &mut col[(oy * g.ow + ox) * rowlen..][..rowlen];
            for ky in 0..g.k {
                let seg = &mut row[ky * kc..][..kc];
                if ky < ky0 || ky >= ky1 {
                    seg.fill(0.0);
                    continue;
                }
                // Input row iy, columns ix0.. for the taps kx0..kx1: one contiguous run.
                let iy = oy + ky - g.pad;
                let ix0 = ox + kx0 - g.pad;
                seg[..kx0 * g.cin].fill(0.0);
                copy_floats(&mut seg[kx0 * g.cin..kx1 * g.cin], &x[(iy * g.w + ix0) * g.cin..][..(kx1 - kx0) * g.cin]);
                seg[kx1 * g.cin..].fill(0.0);
            }
        }
    }
}

/// `dst.copy_from_slice(src)` in 64-byte pieces that LLVM copies inline:
/// im2col's runs are short (96 floats for a 3×3×32 patch row), and a
/// `memmove` call per run cost more than the copy (6% of the book CNN's
/// training step on an AVX-512 Xeon).
#[inline(always)]
fn copy_floats(dst: &mut [f32], src: &[f32]) {
    let (mut d, mut s) = (dst.chunks_exact_mut(16), src.chunks_exact(16));
    for (d, s) in (&mut d).zip(&mut s) {
        d.copy_from_slice(s);
    }
    for (d, &s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = s;
    }
}

/// dx `[batch, h, w, cin]` (overwritten) = the sum, over the patches that
/// read each input pixel, of dcol `[batch·oh·ow, k·k·cin]`.
pub fn col2im(dx: &mut [f32], dcol: &[f32], g: &ConvGeometry, batch: usize) {
    let (dx, dcol) = (&mut dx[..batch * g.in_len()], &dcol[..batch * g.col_len()]);
    dx.par_chunks_mut(g.in_len()).zip(dcol.par_chunks(g.col_len())).for_each(|(dx, dcol)| col2im_image(dx, dcol, g));
}

#[inline(always)]
fn col2im_image(dx: &mut [f32], dcol: &[f32], g: &ConvGeometry) {
    dx.fill(0.0);
    let (kc, rowlen) = (g.k * g.cin, g.patch_len());
    for oy in 0..g.oh {
        let (ky0, ky1) = g.taps(oy, g.h);
        for ox in 0..g.ow {
            let (kx0, kx1) = g.taps(ox, g.w);
            let row = &dcol[(oy * g.ow + ox) * rowlen..][..rowlen];
            for ky in ky0..ky1 {
                let iy = oy + ky - g.pad;
                let ix0 = ox + kx0 - g.pad;
                let src = &row[ky * kc + kx0 * g.cin..ky * kc + kx1 * g.cin];
                let dst = &mut dx[(iy * g.w + ix0) * g.cin..][..src.len()];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += s;
                }
            }
        }
    }
}

/// out `[batch, oh, ow, cout]` = act(conv(x, kernel) + bias). `col` (at
/// least `g.scratch_floats(batch)`) is scratch; on the direct path it
/// receives x padded, which the backward pass reads.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward(
    out: &mut [f32],
    col: &mut [f32],
    x: &[f32],
    kernel: &[f32],
    bias: &[f32],
    g: &ConvGeometry,
    batch: usize,
    act: Activation,
) {
    conv2d_forward_with(gemm::selected_isa(), out, col, x, kernel, bias, g, batch, act)
}

/// [`conv2d_forward`] on an explicit GEMM path (tests run every one).
///
/// Image by image: each worker reuses one image's im2col (225 KB for the
/// book's second conv), which stays in L2 between its copy and the GEMM,
/// where an im2col of the whole batch (7.2 MB) went out to L3 and came back
/// (Zen 3, batch 32: 6272×64×288 runs at 87% of peak from memory, one image's
/// 196×64×288 at 93% from L2).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_with(
    isa: Isa,
    out: &mut [f32],
    col: &mut [f32],
    x: &[f32],
    kernel: &[f32],
    bias: &[f32],
    g: &ConvGeometry,
    batch: usize,
    act: Activation,
) {
    if conv_direct::applies(g) {
        conv_direct::pad_input(col, x, g, batch);
        return conv_direct::forward(isa, out, col, kernel, bias, g, batch, act);
    }
    let (kk, ol, il, sl) = (g.patch_len(), g.out_len(), g.in_len(), g.scratch_len());
    let per_worker = crate::nn::images_per_worker(batch);
    let parts = out[..batch * ol]
        .par_chunks_mut(per_worker * ol)
        .zip(x[..batch * il].par_chunks(per_worker * il))
        .zip(col[..batch * sl].par_chunks_mut(per_worker * sl));
    parts.for_each(|((out, x), col)| {
        let col = &mut col[..g.col_len()];
        for (out, x) in out.chunks_exact_mut(ol).zip(x.chunks_exact(il)) {
            crate::nn::vectorized(
                isa,
                #[inline(always)]
                || im2col_image(col, x, g),
            );
            gemm::sgemm_with(
                isa,
                1.0,
                MatRef::row_major(col, g.positions(), kk),
                MatRef::row_major(kernel, kk, g.cout),
                0.0,
                MatMut::row_major(out, g.positions(), g.cout),
                Epilogue { bias: Some(bias), act, mask: None },
            );
        }
    });
}

/// Backward through `out = act(conv(x, kernel) + bias)`.
///
/// `dout` `[batch, oh, ow, cout]` holds dLoss/dout on entry and becomes dz
/// in place. `x` is the layer's input and `col` the scratch the forward
/// pass left (the direct path's padded x; else scratch). Writes dkernel
/// `[k, k, cin, cout]`, dbias `[cout]` (overwritten) and, where given, dx
/// `[batch, h, w, cin]`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    dx: Option<&mut [f32]>,
    dkernel: &mut [f32],
    dbias: &mut [f32],
    dout: &mut [f32],
    out: &[f32],
    x: &[f32],
    col: &mut [f32],
    kernel: &[f32],
    g: &ConvGeometry,
    batch: usize,
    act: Activation,
) {
    let source = DzSource::InPlace { out, act };
    conv2d_backward_from(gemm::selected_isa(), dx, dkernel, dbias, dout, source, x, col, kernel, g, batch)
}

/// [`conv2d_backward`] on an explicit GEMM path, each image's dz made from
/// `source` into its place in `dz` (`[batch, oh, ow, cout]`; for
/// `DzSource::InPlace` the layer's dout on entry). With
/// `DzSource::ThroughPool` the pool's backward pass (act' fused) makes each
/// image's dz inside this one, image by image, so the conv's dz is never a
/// whole tensor passing through memory between the two; `dz` is then
/// scratch, and the direct path takes no dx (its dz lives in a reused slot).
///
/// On the im2col path every step runs image by image, each worker reusing
/// one image's col: dz (in its place in `dz`) and the bias sums, the im2col
/// made again (from L2 it costs less than keeping the forward's 7.2 MB one
/// in L3), dW += colᵀ · dz into its group's sum ([`DW_GROUP`]), and, where
/// dx is wanted, dcol = dz · kernelᵀ into the same col and col2im. The
/// groups' sums are added in order, so the result does not depend on the
/// thread count.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_from(
    isa: Isa,
    dx: Option<&mut [f32]>,
    dkernel: &mut [f32],
    dbias: &mut [f32],
    dz: &mut [f32],
    source: DzSource,
    x: &[f32],
    col: &mut [f32],
    kernel: &[f32],
    g: &ConvGeometry,
    batch: usize,
) {
    if let DzSource::ThroughPool { pool, .. } = source {
        assert!(dx.is_none() || !conv_direct::applies(g), "the direct conv takes the pool's backward only without dx");
        assert_eq!((pool.h, pool.w, pool.c), (g.oh, g.ow, g.cout), "the pool reads this layer's output");
    }
    let (m, n) = (batch * g.positions(), g.cout);
    let dz = &mut dz[..m * n];
    if conv_direct::applies(g) {
        conv_direct::backward_weights(isa, dkernel, dbias, col, dz, source, g, batch);
        if let Some(dx) = dx {
            input_gradient(isa, dx, dz, kernel, col, g, batch);
        }
        return;
    }
    let (kk, ol, il, sl) = (g.patch_len(), g.out_len(), g.in_len(), g.scratch_len());
    let (scratch, rest) = col.split_at_mut(batch * sl);
    let kernel_t = dx.is_some().then(|| transpose_kernel(&mut rest[..kk * n], kernel, g));
    // Runs of whole groups, so that every group sums the same images in the
    // same order whatever the thread count.
    let per_worker = crate::nn::images_per_worker(batch).next_multiple_of(DW_GROUP).min(batch);
    let ctx = ImageGrad { isa, kernel_t, g, source };
    let parts = dz
        .par_chunks_mut(per_worker * ol)
        .zip(x[..batch * il].par_chunks(per_worker * il))
        .zip(scratch.par_chunks_mut(per_worker * sl))
        .enumerate();
    match dx {
        Some(dx) => {
            parts.zip(dx[..batch * il].par_chunks_mut(per_worker * il)).for_each(|((part, ((dz, x), scratch)), dx)| {
                ctx.run(part * per_worker, dz, x, scratch, dx.chunks_exact_mut(il).map(Some))
            })
        }
        None => parts.for_each(|(part, ((dz, x), scratch))| {
            ctx.run(part * per_worker, dz, x, scratch, std::iter::repeat_with(|| None))
        }),
    }
    // Group and image order, whatever the threads: bit-identical for any
    // thread count.
    let (dkernel, dbias) = (&mut dkernel[..kk * n], &mut dbias[..n]);
    let sums = |i: usize| scratch[i * sl + g.col_len()..][..kk * n + n].split_at(kk * n);
    dkernel.copy_from_slice(sums(0).0);
    dbias.copy_from_slice(sums(0).1);
    for i in 1..batch {
        let (dw, db) = sums(i);
        if i % DW_GROUP == 0 {
            dkernel.iter_mut().zip(dw).for_each(|(d, &v)| *d += v);
        }
        dbias.iter_mut().zip(db).for_each(|(d, &v)| *d += v);
    }
}

/// Images whose dW one GEMM after another accumulates (β = 1) in the first
/// one's slot; the groups' sums are then added in order. Per-image sums
/// (32 slots of 73 KB for the book's second conv) left L2 before they were
/// added.
const DW_GROUP: usize = 8;

/// kernelᵀ `[cout, k·k·cin]` into `dst`: the input gradient's GEMM runs
/// ~9% faster on a row-major B than on a transposed view.
fn transpose_kernel<'a>(dst: &'a mut [f32], kernel: &[f32], g: &ConvGeometry) -> &'a [f32] {
    let (kk, n) = (g.patch_len(), g.cout);
    for (j, row) in dst.chunks_exact_mut(kk).enumerate() {
        for (p, v) in row.iter_mut().enumerate() {
            *v = kernel[p * n + j];
        }
    }
    dst
}

/// What every image of the im2col path's backward pass shares.
struct ImageGrad<'a> {
    isa: Isa,
    /// kernelᵀ, where dx is wanted.
    kernel_t: Option<&'a [f32]>,
    g: &'a ConvGeometry,
    source: DzSource<'a>,
}

impl ImageGrad<'_> {
    /// One worker's run of images from image `first`: `dz`, `x` and
    /// `scratch` hold the run's images (dz made from the source in place),
    /// `dxs` yields each image's dx (or None). The run's first scratch slot
    /// holds the shared col; each slot's tail receives its image's bias
    /// sums, and the tail of each group's first slot the group's dW
    /// ([`DW_GROUP`]).
    fn run<'d>(
        &self,
        first: usize,
        dz: &mut [f32],
        x: &[f32],
        scratch: &mut [f32],
        dxs: impl Iterator<Item = Option<&'d mut [f32]>>,
    ) {
        let g = self.g;
        let (kk, n, ol, il, sl) = (g.patch_len(), g.cout, g.out_len(), g.in_len(), g.scratch_len());
        let (first_slot, others) = scratch.split_at_mut(sl);
        let (col, first_sums) = first_slot.split_at_mut(g.col_len());
        let sums = std::iter::once(first_sums).chain(others.chunks_exact_mut(sl).map(|s| &mut s[g.col_len()..]));
        let images = dz.chunks_exact_mut(ol).zip(x.chunks_exact(il));
        // The group's dW: the tail of its first image's slot.
        let mut group_dw: &mut [f32] = &mut [];
        for (j, ((dz, x), (sums, dx))) in images.zip(sums.zip(dxs)).enumerate() {
            let (dw, db) = sums.split_at_mut(kk * n);
            crate::nn::vectorized(
                self.isa,
                #[inline(always)]
                || {
                    self.source.image_dz(dz, db, first + j, g);
                    im2col_image(col, x, g);
                },
            );
            // dW (+)= colᵀ · dz : [kk, positions] x [positions, cout].
            let beta = if j % DW_GROUP == 0 {
                group_dw = dw;
                0.0
            } else {
                1.0
            };
            gemm::sgemm_with(
                self.isa,
                1.0,
                MatRef::row_major(col, g.positions(), kk).t(),
                MatRef::row_major(dz, g.positions(), n),
                beta,
                MatMut::row_major(group_dw, kk, n),
                Epilogue::default(),
            );
            if let (Some(dx), Some(kernel_t)) = (dx, self.kernel_t) {
                image_input_gradient(self.isa, dx, dz, kernel_t, col, g);
            }
        }
    }
}

/// dx `[batch, h, w, cin]` (overwritten) from dz `[batch, oh, ow, cout]`:
/// dcol = dz · kernelᵀ, `[positions, cout] x [cout, kk]` per image, then
/// col2im. `col` (`g.scratch_floats(batch)`) is scratch.
///
/// Each worker's images share one image's dcol, so that dcol (225 KB for the
/// book's second conv) is still in L2 when col2im reads it back and never
/// goes out to memory (against one GEMM over the batch into a 7 MB dcol and a
/// col2im from L3: `examples/conv_dx.rs`). kernelᵀ is copied out first,
/// after the batch's scratch ([`transpose_kernel`]).
pub fn input_gradient(
    isa: Isa,
    dx: &mut [f32],
    dz: &[f32],
    kernel: &[f32],
    col: &mut [f32],
    g: &ConvGeometry,
    batch: usize,
) {
    let (kk, n) = (g.patch_len(), g.cout);
    let (dcol, rest) = col.split_at_mut(batch * g.scratch_len());
    let kernel_t = transpose_kernel(&mut rest[..kk * n], kernel, g);
    // Contiguous runs of images, one per worker: the split never changes
    // what an image's gradient sums, so results are the same for any count.
    let per_worker = crate::nn::images_per_worker(batch);
    let parts = dx[..batch * g.in_len()]
        .par_chunks_mut(per_worker * g.in_len())
        .zip(dz[..batch * g.out_len()].par_chunks(per_worker * g.out_len()))
        .zip(dcol.par_chunks_mut(per_worker * g.scratch_len()));
    parts.for_each(|((dx, dz), dcol)| {
        let dcol = &mut dcol[..g.col_len()];
        for (dx, dz) in dx.chunks_exact_mut(g.in_len()).zip(dz.chunks_exact(g.out_len())) {
            image_input_gradient(isa, dx, dz, kernel_t, dcol, g);
        }
    });
}

/// One image's dx `[h, w, cin]` (overwritten) from its dz `[oh, ow, cout]`:
/// dcol = dz · kernelᵀ, `[positions, cout] x [cout, kk]`, into `dcol`
/// (`g.col_len()` floats of scratch), then col2im.
fn image_input_gradient(isa: Isa, dx: &mut [f32], dz: &[f32], kernel_t: &[f32], dcol: &mut [f32], g: &ConvGeometry) {
    let (kk, n) = (g.patch_len(), g.cout);
    gemm::sgemm_with(
        isa,
        1.0,
        MatRef::row_major(dz, g.positions(), n),
        MatRef::row_major(kernel_t, n, kk),
        0.0,
        MatMut::row_major(dcol, g.positions(), kk),
        Epilogue::default(),
    );
    crate::nn::vectorized(
        isa,
        #[inline(always)]
        || col2im_image(dx, dcol, g),
    );
}

/// Direct loops in f64: the oracle for the im2col path.
pub mod reference {
    use super::ConvGeometry;
    use crate::gemm::Activation;

    /// Calls `f(oy, ox, ky, kx, iy, ix)` for every kernel tap that lands inside the input.
    fn for_each_tap(g: &ConvGeometry, mut f: impl FnMut(usize, usize, usize, usize, usize, usize)) {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                for ky in 0..g.k {
                    for kx in 0..g.k {
                        let (iy, ix) = ((oy + ky) as isize - g.pad as isize, (ox + kx) as isize - g.pad as isize);
                        if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                            f(oy, ox, ky, kx, iy as usize, ix as usize);
                        }
                    }
                }
            }
        }
    }

    /// Same contract as [`super::conv2d_forward`] (no `col`).
    pub fn conv2d_forward(
        out: &mut [f32],
        x: &[f32],
        kernel: &[f32],
        bias: &[f32],
        g: &ConvGeometry,
        batch: usize,
        act: Activation,
    ) {
        for b in 0..batch {
            let mut z: Vec<f64> = (0..g.out_len()).map(|i| bias[i % g.cout] as f64).collect();
            for_each_tap(g, |oy, ox, ky, kx, iy, ix| {
                for ci in 0..g.cin {
                    let xv = x[b * g.in_len() + (iy * g.w + ix) * g.cin + ci] as f64;
                    for co in 0..g.cout {
                        z[(oy * g.ow + ox) * g.cout + co] +=
                            xv * kernel[((ky * g.k + kx) * g.cin + ci) * g.cout + co] as f64;
                    }
                }
            });
            for (o, z) in out[b * g.out_len()..][..g.out_len()].iter_mut().zip(z) {
                *o = act.apply(z as f32);
            }
        }
    }

    /// Same contract as [`super::conv2d_backward`] (no `col`; `dout` becomes dz).
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_backward(
        dx: Option<&mut [f32]>,
        dkernel: &mut [f32],
        dbias: &mut [f32],
        dout: &mut [f32],
        out: &[f32],
        x: &[f32],
        kernel: &[f32],
        g: &ConvGeometry,
        batch: usize,
        act: Activation,
    ) {
        let n = batch * g.out_len();
        for i in 0..n {
            dout[i] *= act.derivative_from_output(out[i]);
        }
        let mut dk = vec![0.0f64; dkernel.len()];
        let mut db = vec![0.0f64; g.cout];
        let mut dxs = vec![0.0f64; batch * g.in_len()];
        for b in 0..batch {
            let dz = &dout[b * g.out_len()..][..g.out_len()];
            for (i, &d) in dz.iter().enumerate() {
                db[i % g.cout] += d as f64;
            }
            for_each_tap(g, |oy, ox, ky, kx, iy, ix| {
                for ci in 0..g.cin {
                    let xi = b * g.in_len() + (iy * g.w + ix) * g.cin + ci;
                    for co in 0..g.cout {
                        let ki = ((ky * g.k + kx) * g.cin + ci) * g.cout + co;
                        let d = dz[(oy * g.ow + ox) * g.cout + co] as f64;
                        dk[ki] += x[xi] as f64 * d;
                        dxs[xi] += kernel[ki] as f64 * d;
                    }
                }
            });
        }
        for (o, v) in dkernel.iter_mut().zip(dk) {
            *o = v as f32;
        }
        for (o, v) in dbias.iter_mut().zip(db) {
            *o = v as f32;
        }
        if let Some(dx) = dx {
            for (o, v) in dx.iter_mut().zip(dxs) {
                *o = v as f32;
            }
        }
    }
}
