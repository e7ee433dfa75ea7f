//! The BLIS-style driver: LOOP 5 (NC), LOOP 4 (KC, pack B → B~), LOOP 3 (MC,
//! pack A → A~), then the kernel's LOOP 2 / LOOP 1 / microkernel.
//!
//! Small shapes decide the MLP's speed, so packing is skipped whenever the
//! operand can be read in place at no loss: B with unit column stride is read
//! directly (a partial last vector by masked loads) unless its rows alias in
//! L1 and many row panels reuse it (see [`B_ALIAS_BYTES`]); A with a unit
//! stride in either direction is broadcast straight from memory for narrow
//! C, and a row-major A for any C unless its rows alias in L1 (see
//! [`ALIAS_BYTES`]). A last column panel
//! whose last vector has only a few columns gets them packed as an
//! interleaved tail (see `kernel::tile`, [`il_tail_cols`]). A part of C 9 or
//! 10 columns wide with A read by rows runs the split thin kernel
//! (`split.rs`, [`runs_split`]) on its own packed B~ (a dense 10-wide B on
//! one thread: packed by the block's first tile; when the product is one
//! block, on the stack and without the driver's loops, see
//! [`split_small`]). Packing buffers are
//! thread-local and only grow, so a training step does not allocate after
//! the first call.

use std::cell::Cell;

use super::kernel::{last_panel_cols, panel_cols, prefetch, runs_rows_outer, Block, Kernel};
use super::simd::Simd;
use super::{Activation, Epilogue, MatMut, MatRef};

/// NC: LOOP 5 splits the n columns into NC-wide parts; a packed B~ block
/// (KC × NC, 1 MiB) is sized to stay in a 2 MiB L2 cache while the A~ block
/// and C's rows pass through it (a multiple of `Avx512`'s and `Avx2`'s NR;
/// `Avx512Shallow`'s 48 leaves a 16-column panel). A B~ block that fills
/// the whole L2 (NC = 4096) measured much slower on wide products
/// (docs/performance.md, *Kernel design*).
pub const NC: usize = 1024;
/// KC: LOOP 4 splits the k dimension into KC-deep blocks; a B~ micro-panel
/// (KC × NR) fits in the L1 cache alongside the A~ sliver. (Wide blocks on
/// Zen 4's AVX-512 take `DEEP_KC`.)
pub const KC: usize = 256;
/// MC: LOOP 3 splits the m rows into MC-tall parts; a packed A~ block
/// (MC × KC) is sized for the L2 cache (multiple of every MR).
pub const MC: usize = 192;

/// KC of a wide block with a packed operand on kernels and CPUs that take
/// deep blocks (`Kernel::DEEP_KC`): one k block for the 1024 square.
pub(crate) const DEEP_KC: usize = 1024;
/// MC with [`DEEP_KC`]: the packed A~ block stays MC × KC floats (192 KiB),
/// which measured faster on the large squares than MC = 192 at the deeper
/// KC (docs/performance.md, *Kernel design*).
pub(crate) const DEEP_MC: usize = MC * KC / DEEP_KC;

/// KC when neither operand is packed (B~ and A~ are B and A themselves):
/// there is no packed block to keep in cache, and splitting k would only add
/// passes over C (β = 1 reloads) and tile restarts; forward layer 1 at batch
/// 32 (k = 784) runs ~7% faster in one block than in four. Bounded so a huge
/// k still streams C in finite blocks.
pub(crate) const DIRECT_KC: usize = 1024;

/// A row-major B is read in place when C has at most this many rows, even
/// if its rows alias (see [`B_ALIAS_BYTES`]): few row panels read each B
/// panel, and packing would cost more than it saves.
const DIRECT_B_MAX_M: usize = 32;
/// A row-major B whose rows alias at 2 KiB but not 4 KiB (see
/// [`B_ALIAS_BYTES`]) is still read in place, where `Kernel::B_IN_PLACE`
/// allows, when C has at most this many rows: packing B costs the same
/// whatever m, and with few row panels to share it, it cost more than the
/// aliasing. Read in place (in column groups of 4 panels, see
/// `kernel::rows_outer_group`), products up to 512 rows measured faster
/// than packed on Zen 4's AVX-512, 768 rows slower (docs/performance.md,
/// *Kernel design*).
const ALIASED_B_MAX_M: usize = 512;
/// A is read in place (not packed) when C has at most this many columns,
/// whatever A's layout.
const DIRECT_A_MAX_N: usize = 128;
/// A row-major A whose row stride is a multiple of this many bytes is packed
/// when C is wide: its MR rows then share one L1 set (4 KiB aliasing), and
/// reading them in place made the 1024 square ~30% slower. Other row-major
/// A are read in place at any width (256–1000 squares measured 3–9% faster
/// than packing them: the broadcasts hit L1 either way, and packing's
/// scatter is saved).
const ALIAS_BYTES: usize = 4096;
/// A row-major B whose row stride is a multiple of this many bytes is
/// packed even where `Kernel::B_IN_PLACE` reads B in place: a panel's k
/// rows, read one after another, then fall into 4 L1 sets (2 at 4 KiB)
/// and evict the A rows that share them. On Zen 4's AVX-512, packing at
/// 2 KiB multiples measured faster on the large products and equal on 512²
/// (now read in place, see [`ALIASED_B_MAX_M`]); packing at 1 KiB
/// multiples helped some shapes and cost others, so those stay in place
/// (docs/performance.md, *Kernel design*).
const B_ALIAS_BYTES: usize = 2048;

/// Below this many flops (2·m·n·k) a call stays on the calling thread. The
/// batch-32 GEMMs of the tutorial model (≤ 5 MFLOP, ~35 µs) lose more to
/// waking a second thread than they gain on a time-shared 2-vCPU machine;
/// batch 256 (40 MFLOP) gains ~25% from two threads.
pub const PAR_MIN_FLOPS: usize = 1 << 23;

/// The shortest k block that uses an interleaved tail: a tile pays up to
/// three shuffles per row after its k loop, and the packing pass is per
/// block: measured on 32×100×k, slower at k = 10, equal at 16, faster from
/// 24 on (docs/performance.md, *Kernel design*).
pub(crate) const IL_MIN_KC: usize = 16;

/// Products under this depth run `Avx512Shallow` (8 × 48 tiles) instead
/// of `Avx512` (8 × 32) on the AVX-512 path when C is wider than 32
/// columns: in a shallow product a tile's fixed costs (prologue, C's
/// stores, the call) weigh against few k steps, and n = 100 takes two
/// panels (48 + 52) instead of three. From [`IL_MIN_KC`] on, because the
/// joined last panel (48 + up to 4 columns) needs an interleaved tail.
/// Measured 2–3% faster on the weight-gradient shape 784×100×k for k = 16
/// to 48 (docs/performance.md, *Kernel design*).
pub(crate) const SHALLOW_MAX_K: usize = 64;

/// Whether an AVX-512 product `n` wide and `k` deep runs `Avx512Shallow`:
/// C wider than one 32-column panel and k from [`IL_MIN_KC`] to
/// [`SHALLOW_MAX_K`], or to [`KC`] when A is read in place in column panels
/// (`a_cols`: a transposed A, C at most [`DIRECT_A_MAX_N`] wide; the weight
/// gradient Xᵀ·dY at any batch up to 256). Each k step of such a tile reads
/// a new line of A, and two panels read it twice where three read it three
/// times: faster for a transposed A, while a row-major A measured equal and
/// the 256 square slower. Narrower C tiles the same either way, and would
/// pack B~ 48 floats wide for nothing (docs/performance.md, *Kernel
/// design*).
pub(crate) fn runs_shallow(n: usize, k: usize, a_cols: bool) -> bool {
    let max_k = if a_cols && n <= DIRECT_A_MAX_N { KC } else { SHALLOW_MAX_K - 1 };
    n > 32 && (IL_MIN_KC..=max_k).contains(&k)
}

/// C widths the split thin kernel serves (`split.rs`, AVX-512): eight
/// columns plus at most two, the tutorial's 10-class output layer.
pub(crate) const SPLIT_COLS: std::ops::RangeInclusive<usize> = 9..=10;
/// The shallowest product that runs split: each row pays a reduction (a few
/// shuffles and adds) after its k loop, and B~ is packed. 32×10×k
/// (`examples/gemm_shape`, alternating with the plain kernels): k = 4, 8,
/// 12 (and 128×10×8) −5% to +14%, k = 16 1.5×, k = 24 1.7×, k = 100 1.3×.
pub(crate) const SPLIT_MIN_K: usize = 16;

/// Floats of one chunk of split B~ (eight k steps): five vectors of 16,
/// four for columns 0..8 and one for columns 8..10 (see `split::pack`).
pub(crate) const SPLIT_CHUNK: usize = 80;

/// Floats of a split B~ `kc` deep: whole chunks of eight k.
pub(crate) const fn split_len(kc: usize) -> usize {
    kc.div_ceil(8) * SPLIT_CHUNK
}

/// Whether the `w` columns of B packed for the split kernel are a dense
/// 10-wide B (rows of 10 floats back to back, as W of the output layer),
/// whose chunks `split.rs` builds from plain loads.
pub(crate) fn split_dense(b: &MatRef, w: usize) -> bool {
    b.cs == 1 && b.rs == 10 && w == 10
}

/// Whether a part of C `nc` wide (of a product `k` deep) runs the split
/// thin kernel: the kernel has one, A~ is read by rows (`a_rows`), C has
/// unit column stride and k ≥ [`SPLIT_MIN_K`]. It does not depend on the
/// thread count, so neither do the results.
pub(crate) fn runs_split<K: Kernel>(nc: usize, k: usize, a_rows: bool, c_unit_cols: bool) -> bool {
    K::SPLIT && a_rows && c_unit_cols && SPLIT_COLS.contains(&nc) && k >= SPLIT_MIN_K
}

/// The most KC blocks a row-split product packs and runs as one group (see
/// `gemm`'s LOOP 4): k up to 1024 (the tutorial's 784, a batch of 1024 in a
/// weight gradient) in one group, and a group's B~ at most 4 · KC · (NC +
/// 16) floats, ~4 MiB, so it stays in the last-level cache while the tasks
/// run (a group of [`DEEP_KC`] blocks holds one).
const GROUP_BLOCKS: usize = 4;

/// One KC block of LOOP 4 (rows `pc..pc + kc` of B), packed: B~ (or B
/// itself), its interleaved tail, and the epilogue's bias and mask on the
/// last block only.
#[derive(Clone, Copy)]
struct KBlock {
    pc: usize,
    kc: usize,
    first: bool,
    last: bool,
    b: *const f32,
    rsb: isize,
    b_panel: isize,
    b_il: *const f32,
    /// B itself for a split block whose first tile packs B~ (see
    /// `split::block`), else null.
    b_dense: *const f32,
    bias: *const f32,
    mask: *const f32,
}

impl KBlock {
    const EMPTY: KBlock = KBlock {
        pc: 0,
        kc: 0,
        first: false,
        last: false,
        b: std::ptr::null(),
        rsb: 0,
        b_panel: 0,
        b_il: std::ptr::null(),
        b_dense: std::ptr::null(),
        bias: std::ptr::null(),
        mask: std::ptr::null(),
    };
}

thread_local! {
    static BUF_A: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    static BUF_B: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Borrows a thread-local buffer for the closure. Taking the Vec out (rather
/// than a RefCell borrow) keeps re-entrant calls (rayon work stealing) safe:
/// they simply get a fresh buffer.
fn with_buf<R>(key: &'static std::thread::LocalKey<Cell<Vec<f32>>>, f: impl FnOnce(&mut Vec<f32>) -> R) -> R {
    let mut v = key.with(|c| c.take());
    let r = f(&mut v);
    key.with(|c| {
        let old = c.take();
        c.set(if old.capacity() > v.capacity() { old } else { v });
    });
    r
}

/// A 64-byte aligned region of `len` floats inside `v` (grown if needed).
fn aligned(v: &mut Vec<f32>, len: usize) -> *mut f32 {
    if v.len() < len + 16 {
        v.resize(len + 16, 0.0);
    }
    let p = v.as_mut_ptr();
    let off = p.align_offset(64).min(15);
    // SAFETY: off ≤ 15 and v.len() ≥ len + 16, so [off, off + len) is in bounds.
    unsafe { p.add(off) }
}

#[derive(Clone, Copy)]
struct SendPtr<T>(T);
// SAFETY: the raw pointers wrapped here point into buffers that outlive the
// parallel region; tasks write disjoint parts of C and only read the rest.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}
impl<T: Copy> SendPtr<T> {
    /// By-value access, so closures capture the whole (Send) wrapper.
    fn get(self) -> T {
        self.0
    }
}

/// Rows of a row-major B that `pack_b` copies into every panel before the
/// next rows: each row (4 KiB in the 1024 square) is read front to back
/// while in cache, where panel by panel each of the kc rows was visited once
/// per panel, a page apart. Eight rows measured best of 1, 2–4, 8 and 32
/// on both the AVX-512 and the AVX2 path (docs/performance.md, *Kernel
/// design*).
const PACK_B_ROWS: usize = 8;

/// Packs B[p0.., j0..][..kc, ..nc] into NR-wide column panels, each `kc × NR`
/// row-major, zero-padded on the right; a merged last panel (see
/// [`panel_cols`]) is `kc × (NR + LANES)`.
///
/// Generic over the kernel's vectors and inlined into its
/// `#[target_feature]` entry point ([`Kernel::pack_b`]): a row-major B is
/// copied a vector at a time, the partial vector of a narrower panel by a
/// masked load that also writes its zero padding. (Compiled for baseline
/// x86-64, the copies were 16-byte SSE moves and a narrower panel's row went
/// one float at a time.)
///
/// # Safety
/// `b` must be valid for the view's extent and `dst` for
/// `packed_b_len(nc, kc, nr, S::LANES)` floats; `S`'s instruction set
/// enabled.
#[inline(always)]
pub(crate) unsafe fn pack_b<S: Simd>(
    b: &MatRef,
    p0: usize,
    j0: usize,
    kc: usize,
    nc: usize,
    nr: usize,
    merge_max: usize,
    dst: *mut f32,
) {
    let lanes = S::LANES;
    debug_assert!(nr.is_multiple_of(lanes));
    let src = b.data.as_ptr();
    // The panel at column j: valid columns, stored width, and where it
    // starts in B~ (every earlier panel is exactly NR wide).
    let panel = |j: usize| {
        let w = panel_cols(nc - j, nr, merge_max);
        (w, if w > nr { nr + lanes } else { nr }, dst.add(j * kc))
    };
    if b.cs == 1 {
        // Row-major B: a band of PACK_B_ROWS rows at a time, across every
        // panel, so each row is read front to back while it is in cache.
        let mut p = 0;
        while p < kc {
            let band = p..(p + PACK_B_ROWS).min(kc);
            let mut j = 0;
            while j < nc {
                let (w, pw, d) = panel(j);
                for p in band.clone() {
                    let row = src.add((p0 + p) * b.rs + j0 + j);
                    let dr = d.add(p * pw);
                    // pw is a whole number of vectors; lanes past w load as zero.
                    let mut c = 0;
                    while c < pw {
                        let x = if c + lanes <= w {
                            S::load(row.add(c))
                        } else if c < w {
                            S::load_part(row.add(c), w - c)
                        } else {
                            S::zero()
                        };
                        S::store(dr.add(c), x);
                        c += lanes;
                    }
                }
                j += w;
            }
            p = band.end;
        }
        return;
    }
    let mut j = 0;
    while j < nc {
        let (w, pw, d) = panel(j);
        let col = |jj: usize| src.add(p0 * b.rs + (j0 + j + jj) * b.cs);
        let mut jj = 0;
        if b.rs == 1 {
            // Column-contiguous B (a transposed view, e.g. Wᵀ in an input
            // gradient): 4 × 4 blocks transposed in registers, as
            // `pack_a` does for row-major A.
            while jj + 4 <= w {
                pack_rows([0, 1, 2, 3].map(|q| col(jj + q)), kc, pw, d.add(jj), None);
                jj += 4;
            }
        }
        // General B, or the columns left: read down each column.
        for jj in jj..w {
            let col = col(jj);
            for p in 0..kc {
                *d.add(p * pw + jj) = *col.add(p * b.rs);
            }
        }
        for p in 0..kc {
            for jj in w..pw {
                *d.add(p * pw + jj) = 0.0;
            }
        }
        j += w;
    }
}

/// Floats a packed B~ of `kc × nc` needs: whole NR panels plus room for one
/// merged panel's extra vector.
fn packed_b_len(nc: usize, kc: usize, nr: usize, lanes: usize) -> usize {
    (nc.div_ceil(nr) * nr + lanes) * kc
}

/// Columns in the interleaved tail of a block `nc` wide and `kc` deep (see
/// `kernel::tile`), or 0 when it has none: the block must be at least
/// [`IL_MIN_KC`] deep, the kernel must have such tiles for its last panel's
/// vector count, and that panel's last vector at most `LANES / IL` valid
/// columns.
pub(crate) fn il_tail_cols<K: Kernel>(nc: usize, kc: usize) -> usize {
    if kc < IL_MIN_KC {
        return 0;
    }
    let last = last_panel_cols(nc, K::NR, K::MERGE_MAX);
    let nv = last.div_ceil(K::LANES);
    let w = last - (nv - 1) * K::LANES;
    if K::IL > 1 && K::IL_NV.contains(&nv) && w <= K::LANES / K::IL {
        w
    } else {
        0
    }
}

/// Floats of an interleaved tail `kc` deep.
fn il_len(kc: usize, lanes: usize, il: usize, a_rows: bool) -> usize {
    if a_rows {
        kc.div_ceil(il) * lanes
    } else {
        kc * lanes
    }
}

/// Packs columns `j0..j0 + w` of `B[p0..p0 + kc]` as the interleaved tail
/// for A~ read by rows (see [`Block::b_il`]): `ceil(kc / il)` vectors of
/// `lanes` floats, lane `c·il + q` = `B[p0 + il·chunk + q, j0 + c]`, zero
/// past kc and past w.
///
/// # Safety
/// `b` valid for its extent, the sub-view inside it; `dst` writable for
/// `il_len(kc, lanes, il)` floats.
#[allow(clippy::too_many_arguments)]
unsafe fn pack_il_rows(b: &MatRef, p0: usize, j0: usize, kc: usize, w: usize, lanes: usize, il: usize, dst: *mut f32) {
    let src = b.data.as_ptr();
    let cols = lanes / il;
    let at = |p: usize, c: usize| src.add((p0 + p) * b.rs + (j0 + c) * b.cs);
    let mut ch = 0;
    // Whole chunks of four unit-stride columns: 4 × 4 (or 2 × 4) blocks
    // transposed in SSE registers, as `pack_rows` packs A.
    if b.cs == 1 && w == 4 && cols == 4 {
        if il == 4 {
            while (ch + 1) * 4 <= kc {
                pack_rows([0, 1, 2, 3].map(|q| at(ch * 4 + q, 0)), 4, 4, dst.add(ch * lanes), None);
                ch += 1;
            }
        }
        #[cfg(target_arch = "x86_64")]
        if il == 2 {
            use std::arch::x86_64::*;
            while (ch + 1) * 2 <= kc {
                let (r0, r1) = (_mm_loadu_ps(at(ch * 2, 0)), _mm_loadu_ps(at(ch * 2 + 1, 0)));
                let d = dst.add(ch * lanes);
                _mm_storeu_ps(d, _mm_unpacklo_ps(r0, r1)); // c0: q0 q1, c1: q0 q1
                _mm_storeu_ps(d.add(4), _mm_unpackhi_ps(r0, r1));
                ch += 1;
            }
        }
    }
    for ch in ch..kc.div_ceil(il) {
        let d = dst.add(ch * lanes);
        for c in 0..cols {
            for q in 0..il {
                let p = ch * il + q;
                *d.add(c * il + q) = if c < w && p < kc { *at(p, c) } else { 0.0 };
            }
        }
    }
}

/// Packs columns `j0..j0 + w` of `B[p0..p0 + kc]` as the interleaved tail
/// for column-panel A~ (see [`Block::b_il`]): `kc` vectors of `lanes`
/// floats, lane `c·il + q` = `B[p0 + p, j0 + c]`, zero past w.
///
/// # Safety
/// As [`pack_il_rows`], `dst` writable for `kc · lanes` floats.
#[allow(clippy::too_many_arguments)]
unsafe fn pack_il_cols(b: &MatRef, p0: usize, j0: usize, kc: usize, w: usize, lanes: usize, il: usize, dst: *mut f32) {
    let src = b.data.as_ptr();
    for p in 0..kc {
        let d = dst.add(p * lanes);
        let row = src.add((p0 + p) * b.rs + j0 * b.cs);
        for c in 0..lanes / il {
            let x = if c < w { *row.add(c * b.cs) } else { 0.0 };
            for q in 0..il {
                *d.add(c * il + q) = x;
            }
        }
    }
}

/// Packs A[i0.., p0..][..mc, ..kc] into MR-tall row panels, each `kc × MR`
/// with the MR values of one k contiguous (the last panel keeps stride MR
/// but only its valid rows are read).
///
/// # Safety
/// `a` valid for its extent; `dst` for `ceil(mc / MR) · MR · kc` floats.
unsafe fn pack_a(a: &MatRef, i0: usize, p0: usize, mc: usize, kc: usize, mr: usize, dst: *mut f32) {
    if kc == 0 {
        return;
    }
    let src = a.data.as_ptr();
    let mut i = 0;
    while i < mc {
        let h = (mc - i).min(mr);
        let d = dst.add(i * kc);
        let base = src.add((i0 + i) * a.rs + p0 * a.cs);
        if a.cs == 1 {
            // Row-major A: a whole panel of eight rows, or four rows at a
            // time, 4 × 4 blocks transposed in registers (see `pack_rows`),
            // then any rows left one by one. `next`: the four rows after a
            // four-row group (past mc: a hint only, never read); an 8-row
            // panel asks for none (see `pack_rows`).
            let mut r = 0;
            if h == 8 {
                pack_rows::<8>(std::array::from_fn(|q| base.add(q * a.rs)), kc, mr, d, None);
                r = 8;
            }
            while r + 4 <= h {
                let rows = [0, 1, 2, 3].map(|q| base.add((r + q) * a.rs));
                let next = [4, 5, 6, 7].map(|q| base.wrapping_add((r + q) * a.rs));
                pack_rows(rows, kc, mr, d.add(r), Some(next));
                r += 4;
            }
            for r in r..h {
                let row = base.add(r * a.rs);
                for p in 0..kc {
                    *d.add(p * mr + r) = *row.add(p);
                }
            }
        } else {
            for p in 0..kc {
                for r in 0..h {
                    *d.add(p * mr + r) = *base.add(r * a.rs + p * a.cs);
                }
            }
        }
        i += mr;
    }
}

/// Packs `kc` values of `R` rows of A (unit column stride; R = 4 or 8)
/// into `R` adjacent lanes of the MR-interleaved panel: `d[p·mr + q] =
/// rows[q][p]` (also four unit-stride columns of B into a B~ panel `mr`
/// wide).
/// On x86-64, 4 × 4 blocks are transposed in SSE registers (baseline, no
/// run-time check): one load and one store per four values where the scalar
/// loop does four of each. The scalar loop is also slowed by 4 KiB aliasing
/// between its loads and stores, and it was ~9% of a 1024 square's time.
/// Eight rows (a whole MR = 8 panel) write each k's 32 bytes at once, so
/// every line of the panel is written in one pass; in halves of four rows
/// a 1024-deep panel (32 KiB) left L1 between its two passes (measured on
/// 1024² with deep k blocks, docs/performance.md, *Kernel design*).
/// `next`: four rows whose first `kc` floats to request ahead, one cache
/// line per step. pack_a passes the next four rows of A to four-row
/// groups: each row is a short run of lines in its own page, which the
/// hardware prefetcher barely starts on (it shrank pack_a's share of the
/// 1024 square, and AVX2's 6-row panels were slower without it). An 8-row
/// panel passes none: rows 4 KiB apart share one L1 set, and 8 rows plus 8
/// prefetched ones overfill its 8 ways; without the prefetch its packing
/// ran faster, though in the GEMM the gain is small, as A mostly comes from
/// memory (docs/performance.md, *Kernel design*).
///
/// # Safety
/// Each `rows[q]` readable for `kc` floats; `d` writable at `p·mr + q` for
/// `p < kc`, `q < R`. `next` may point anywhere (prefetches never fault).
#[inline(always)]
unsafe fn pack_rows<const R: usize>(
    rows: [*const f32; R],
    kc: usize,
    mr: usize,
    d: *mut f32,
    next: Option<[*const f32; 4]>,
) {
    const { assert!(R == 4 || R == 8) };
    let mut p = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        while p + 4 <= kc {
            if let Some(next) = next {
                // One line of the next four rows per step: all kc / 16
                // lines of each by the end.
                let t = p / 4;
                prefetch(next[t % 4].wrapping_add((t / 4) * 16));
            }
            for h in 0..R / 4 {
                let [r0, r1, r2, r3] = [0, 1, 2, 3].map(|q| _mm_loadu_ps(rows[4 * h + q].add(p)));
                let lo01 = _mm_unpacklo_ps(r0, r1); // r0[0] r1[0] r0[1] r1[1]
                let lo23 = _mm_unpacklo_ps(r2, r3);
                let hi01 = _mm_unpackhi_ps(r0, r1); // r0[2] r1[2] r0[3] r1[3]
                let hi23 = _mm_unpackhi_ps(r2, r3);
                let d = d.add(4 * h);
                _mm_storeu_ps(d.add(p * mr), _mm_movelh_ps(lo01, lo23));
                _mm_storeu_ps(d.add((p + 1) * mr), _mm_movehl_ps(lo23, lo01));
                _mm_storeu_ps(d.add((p + 2) * mr), _mm_movelh_ps(hi01, hi23));
                _mm_storeu_ps(d.add((p + 3) * mr), _mm_movehl_ps(hi23, hi01));
            }
            p += 4;
        }
    }
    for p in p..kc {
        for (q, row) in rows.iter().enumerate() {
            *d.add(p * mr + q) = *row.add(p);
        }
    }
}

/// Split B~ for one KC block, on the stack (64-byte aligned).
#[repr(C, align(64))]
struct SplitBuf([std::mem::MaybeUninit<f32>; split_len(KC)]);

/// The output layer's product when it is one block on one thread: C 10
/// wide from a dense 10-wide B (W of the output layer), A read by rows, k
/// from [`SPLIT_MIN_K`] to [`KC`] and m up to [`MC`] (under 2·MC·10·KC ≈ 1
/// MFLOP, far below [`PAR_MIN_FLOPS`], so never parallel whatever the
/// pool). Runs the split block at once, its first tile packing B~ into a
/// stack buffer; the general path's set-up (the thread-count query, the
/// group arrays, a thread-local buffer, the closures) was ~6% of a
/// 32×10×100 call in perf. Returns false, having done nothing, for any
/// other product.
fn split_small<K: Kernel>(alpha: f32, a: &MatRef, b: &MatRef, beta: f32, c: &mut MatMut, epi: &Epilogue) -> bool {
    let (m, n, k) = (c.rows, c.cols, a.cols);
    if !(m <= MC && k <= KC && a.cs == 1 && runs_split::<K>(n, k, true, c.cs == 1) && split_dense(b, n)) {
        return false;
    }
    let mut buf = SplitBuf([std::mem::MaybeUninit::uninit(); split_len(KC)]);
    let (mask, rsm) = epi.mask.map_or((std::ptr::null(), 0), |s| (s.data.as_ptr(), s.rs as isize));
    let blk = Block {
        mc: m,
        nc: n,
        kc: k,
        a: a.data.as_ptr(),
        rsa: a.rs as isize,
        csa: 1,
        a_panel: (K::MR * a.rs) as isize,
        a_packed: false,
        a_src: std::ptr::null(),
        rsa_src: 0,
        // Written by the block's first tile (or up front) before it is read.
        b: buf.0.as_mut_ptr().cast::<f32>(),
        rsb: 0,
        b_panel: 0,
        b_masked: false,
        b_il: std::ptr::null(),
        b_split: true,
        b_dense: b.data.as_ptr(),
        c: c.data.as_mut_ptr(),
        rsc: c.rs as isize,
        csc: 1,
        alpha,
        beta,
        bias: epi.bias.map_or(std::ptr::null(), |s| s.as_ptr()),
        act: epi.act,
        mask,
        rsm,
    };
    // SAFETY: shapes and extents were checked by the caller; A has unit
    // column stride, C unit column stride and n columns, B is dense and
    // 10 wide with k rows, and the buffer holds split_len(KC) ≥
    // split_len(k) floats.
    unsafe { K::block(&blk) };
    true
}

/// The blocked GEMM for one kernel. Shapes are already checked.
pub(crate) fn gemm<K: Kernel>(alpha: f32, a: &MatRef, b: &MatRef, beta: f32, c: &mut MatMut, epi: &Epilogue) {
    let (m, n, k) = (c.rows, c.cols, a.cols);
    if m == 0 || n == 0 || split_small::<K>(alpha, a, b, beta, c, epi) {
        return;
    }
    let threads = rayon::current_num_threads();
    // Tasks write disjoint rows (or column panels) of C, which is only true
    // when the C view does not overlap itself; otherwise stay sequential.
    let c_disjoint = (c.cs >= 1 && c.rs >= n * c.cs) || (c.rs >= 1 && c.cs >= m * c.rs);
    let parallel = threads > 1 && c_disjoint && 2 * m * n * k >= PAR_MIN_FLOPS;

    // Read a row-major B in place when few row panels reuse it, or, on
    // kernels and CPUs that stream it well (`Kernel::B_IN_PLACE`), unless
    // its rows alias in L1. Wide, deep blocks stream their B~ panels from
    // L2 whether packed or not (LOOP 1 runs outside LOOP 2, see
    // `kernel::block_loops`), so packing only adds a pass over B from L3;
    // in narrower blocks a panel read in place served as well as a packed
    // one. On Zen 4's AVX-512, in place measured faster than packed from
    // 64² to 256×100×784, but far slower on the 1024 square (rows 4 KiB
    // apart), so that still packs, as do rows 2 KiB apart under many rows
    // (see `B_ALIAS_BYTES`, `ALIASED_B_MAX_M`; docs/performance.md,
    // *Kernel design*).
    // The most rows of C for which such kernels read B in place, by how
    // its rows alias: any number, ALIASED_B_MAX_M at 2 KiB, none at 4 KiB.
    let b_row_bytes = b.rs * std::mem::size_of::<f32>();
    let b_in_place_max_m = if b_row_bytes.is_multiple_of(ALIAS_BYTES) {
        0
    } else if b_row_bytes.is_multiple_of(B_ALIAS_BYTES) {
        ALIASED_B_MAX_M
    } else {
        usize::MAX
    };
    let b_direct =
        b.cs == 1 && (m <= DIRECT_B_MAX_M || (K::B_IN_PLACE && super::half_width_avx512() && m <= b_in_place_max_m));
    // Read A in place (a unit stride either way) unless many column panels
    // reuse it: packing costs about m·k copies, amortized over n / NR tiles.
    // A row-major A is read in place at any width unless its rows alias.
    let a_direct = ((a.cs == 1 || a.rs == 1) && n <= DIRECT_A_MAX_N)
        || (a.cs == 1 && !(a.rs * std::mem::size_of::<f32>()).is_multiple_of(ALIAS_BYTES));
    // A~ read by rows (csa = 1), else by column panels (rsa = 1: packed,
    // or a transposed A read in place); interleaved tails differ by form.
    let a_rows = a_direct && a.cs == 1;

    let (crs, ccs) = (c.rs, c.cs);
    let c_ptr = SendPtr(c.data.as_mut_ptr());
    let bias = epi.bias.map_or(std::ptr::null(), |s| s.as_ptr());
    let (mask, rsm) = epi.mask.map_or((std::ptr::null(), 0), |s| (s.data.as_ptr(), s.rs));

    with_buf(&BUF_B, |buf_b| {
        // LOOP 5: NC-wide column parts of B and C.
        let mut jc = 0;
        while jc < n {
            let nc = (n - jc).min(NC);
            // A part 9 or 10 wide with A by rows runs the split thin kernel
            // on its own packed B~.
            let split = runs_split::<K>(nc, k, a_rows, ccs == 1);
            let b_direct = b_direct && !split;
            // A dense 10-wide B (W of the output layer) on one thread: the
            // block's first tile packs B~ in its k loop (see `split::block`);
            // parallel tasks would race on it.
            let split_in_block = split && !parallel && split_dense(b, nc);
            // LOOP 4: KC-deep blocks of k; a k = 0 product still runs once
            // for the epilogue (C = act(β·C + bias)). Blocks are packed and
            // run in groups: one block at a time, except when rows are split
            // over threads, where a group's blocks (up to `GROUP_BLOCKS`)
            // are all packed first and each task then runs its rows through
            // every block of the group. The threads meet once per group
            // instead of once per block, and a task's rows of C stay in its
            // core's cache between blocks. Every value of C still sums the
            // blocks in k order, so the results do not depend on the
            // grouping or the threads.
            let row_split = parallel && m >= 2 * K::MR;
            // Deep k blocks (see `Kernel::DEEP_KC`): an operand packed, k
            // deeper than one KC block, and the deep block wide enough to
            // run LOOP 1 outside LOOP 2.
            let deep = K::DEEP_KC
                && !(b_direct && a_direct)
                && k > KC
                && runs_rows_outer(nc, k.min(DEEP_KC), K::NR)
                && super::half_width_avx512();
            let kc_max = if b_direct && a_direct {
                DIRECT_KC
            } else if deep {
                DEEP_KC
            } else {
                KC
            };
            let mc_max = if deep { DEEP_MC } else { MC };
            let mut pc = 0;
            loop {
                // The group's blocks: depth, and offset of its B~ (then its
                // interleaved tail) in the buffer.
                let mut geo = [(0usize, 0usize, 0usize, 0usize, 0usize); GROUP_BLOCKS];
                let (mut count, mut total, mut p) = (0, 0, pc);
                loop {
                    let kc = (k - p).min(kc_max);
                    let il_cols = if split { 0 } else { il_tail_cols::<K>(nc, kc) };
                    let b_len = if b_direct {
                        0
                    } else if split {
                        split_len(kc)
                    } else {
                        packed_b_len(nc, kc, K::NR, K::LANES).next_multiple_of(16)
                    };
                    let tail_len = if il_cols > 0 { il_len(kc, K::LANES, K::IL, a_rows) } else { 0 };
                    let len = (b_len + tail_len).next_multiple_of(16);
                    // A group packs at most GROUP_BLOCKS · KC rows of B~:
                    // one `DEEP_KC` block.
                    let full = count == GROUP_BLOCKS || (b_len > 0 && p - pc >= GROUP_BLOCKS * KC);
                    if count > 0 && (!row_split || full) {
                        break;
                    }
                    geo[count] = (p, kc, il_cols, total, b_len);
                    total += len;
                    count += 1;
                    p += kc;
                    if p >= k {
                        break;
                    }
                }
                let buf = if total > 0 { aligned(buf_b, total) } else { std::ptr::null_mut() };
                let mut blocks = [KBlock::EMPTY; GROUP_BLOCKS];
                for (kb, &(pc, kc, il_cols, offset, b_len)) in blocks.iter_mut().zip(&geo[..count]) {
                    // SAFETY: the buffer holds `total` floats; this block's B~
                    // and tail lie in [offset, offset + len).
                    let buf = if buf.is_null() { buf } else { unsafe { buf.add(offset) } };
                    // Pack B → B~, or read B in place (its partial last vector masked).
                    let (bp, rsb, b_panel);
                    if b_direct {
                        // Not dereferenced when kc = 0 (B may be empty), hence wrapping.
                        bp = b.data.as_ptr().wrapping_add(pc * b.rs + jc);
                        rsb = b.rs as isize;
                        b_panel = K::NR as isize;
                    } else if split {
                        if !split_in_block {
                            // SAFETY: buf holds split_len(kc) floats; the sub-view is inside B.
                            unsafe { K::pack_split(b, pc, jc, kc, nc, buf) };
                        }
                        bp = buf as *const f32;
                        rsb = 0;
                        b_panel = 0;
                    } else {
                        // SAFETY: buf holds packed_b_len floats; the sub-view is inside B.
                        unsafe { K::pack_b(b, pc, jc, kc, nc, buf) };
                        bp = buf as *const f32;
                        rsb = K::NR as isize;
                        b_panel = (K::NR * kc) as isize;
                    }
                    let b_il = if il_cols > 0 {
                        // SAFETY: the buffer holds b_len + il_len floats past offset.
                        let d = unsafe { buf.add(b_len) };
                        let j0 = jc + nc - il_cols;
                        // SAFETY: d holds il_len floats; the last il_cols columns
                        // of this block's rows pc..pc+kc are inside B.
                        unsafe {
                            if a_rows {
                                pack_il_rows(b, pc, j0, kc, il_cols, K::LANES, K::IL, d)
                            } else {
                                pack_il_cols(b, pc, j0, kc, il_cols, K::LANES, K::IL, d)
                            }
                        };
                        d as *const f32
                    } else {
                        std::ptr::null()
                    };
                    let last = pc + kc >= k;
                    *kb = KBlock {
                        pc,
                        kc,
                        first: pc == 0,
                        b: bp,
                        rsb,
                        b_panel,
                        b_il,
                        // Rows pc..pc + kc of B, all its 10 columns (jc = 0).
                        b_dense: if split_in_block {
                            b.data.as_ptr().wrapping_add(pc * b.rs)
                        } else {
                            std::ptr::null()
                        },
                        // SAFETY: bias has n values (checked), jc < n.
                        bias: if last && !bias.is_null() { unsafe { bias.add(jc) } } else { std::ptr::null() },
                        // SAFETY: the mask is m × n with unit column stride (checked), jc < n.
                        mask: if last && !mask.is_null() { unsafe { mask.add(jc) } } else { std::ptr::null() },
                        last,
                    };
                }
                // By reference: moving the array into the wrapper cost a
                // memcpy per call (~1.6% of a 32×10×100 call in perf).
                let blocks = SendPtr(&blocks);
                // The block before LOOP 3 gives it rows, built afresh per
                // task: copying one prototype struct (152 bytes, just
                // written field by field) cost a memcpy and a failed store
                // forward, ~3% of a 32×10×100 call.
                let proto = |kb: &KBlock| Block {
                    mc: 0,
                    nc,
                    kc: kb.kc,
                    a: std::ptr::null(),
                    rsa: 0,
                    csa: 0,
                    a_panel: 0,
                    a_packed: false,
                    a_src: std::ptr::null(),
                    rsa_src: 0,
                    b: kb.b,
                    rsb: kb.rsb,
                    b_panel: kb.b_panel,
                    b_masked: b_direct,
                    b_il: kb.b_il,
                    b_split: split,
                    b_dense: kb.b_dense,
                    c: std::ptr::null_mut(),
                    rsc: crs as isize,
                    csc: ccs as isize,
                    alpha,
                    beta: if kb.first { beta } else { 1.0 },
                    bias: kb.bias,
                    act: if kb.last { epi.act } else { Activation::Linear },
                    mask: kb.mask,
                    rsm: rsm as isize,
                };

                // LOOP 3: MC-tall row parts of A and C (a task each when parallel).
                // `a_space`: where to pack this block's A panels (sized for
                // them), or null to use the calling thread's buffer.
                let run_rows = |kb: &KBlock, ic: usize, mc: usize, jr0: usize, ncs: usize, a_space: *mut f32| {
                    let (pc, kc) = (kb.pc, kb.kc);
                    let mut blk = proto(kb);
                    blk.mc = mc;
                    // SAFETY: (ic, jc + jr0) is inside C; the block covers rows
                    // ic..ic+mc and columns jc+jr0.. of C only.
                    blk.c = unsafe { c_ptr.get().add(ic * crs + (jc + jr0) * ccs) };
                    if jr0 > 0 {
                        let panels = (jr0 / K::NR) as isize;
                        blk.b = blk.b.wrapping_offset(panels * blk.b_panel);
                        if !blk.bias.is_null() {
                            // SAFETY: jc + jr0 < n.
                            blk.bias = unsafe { blk.bias.add(jr0) };
                        }
                    }
                    if !blk.mask.is_null() {
                        // SAFETY: (ic, jc + jr0) is inside the mask, which has C's shape.
                        blk.mask = unsafe { blk.mask.add(ic * rsm + jr0) };
                    }
                    blk.nc = ncs;
                    if jr0 + ncs < nc {
                        // Not the block's last panel: no interleaved tail.
                        blk.b_il = std::ptr::null();
                    }
                    if ic > 0 {
                        // A later row part of a split block: B~ is packed.
                        blk.b_dense = std::ptr::null();
                    }
                    if a_direct {
                        // Not dereferenced when kc = 0 (A may be empty), hence wrapping.
                        blk.a = a.data.as_ptr().wrapping_add(ic * a.rs + pc * a.cs);
                        if a.cs == 1 {
                            blk.rsa = a.rs as isize;
                            blk.csa = 1;
                        } else {
                            blk.rsa = 1;
                            blk.csa = a.cs as isize;
                        }
                        blk.a_panel = K::MR as isize * blk.rsa;
                        // SAFETY: Block's memory contract holds (see above).
                        unsafe { K::block(&blk) };
                    } else {
                        let mut pack_and_run = |d: *mut f32| {
                            if K::FUSED_PACK_A && a.cs == 1 && runs_rows_outer(blk.nc, kc, K::NR) {
                                // The block's first tiles pack the whole row
                                // panels as they run (`Block::a_src`); only a
                                // partial last panel is packed here.
                                let full = mc / K::MR * K::MR;
                                if full < mc {
                                    // SAFETY: d holds mc.div_ceil(MR)·MR·kc floats, the
                                    // last panel from full·kc; the sub-view is inside A.
                                    unsafe { pack_a(a, ic + full, pc, mc - full, kc, K::MR, d.add(full * kc)) };
                                }
                                blk.a_src = a.data.as_ptr().wrapping_add(ic * a.rs + pc);
                                blk.rsa_src = a.rs as isize;
                            } else {
                                // SAFETY: d holds mc.div_ceil(MR)·MR·kc floats; the sub-view is inside A.
                                unsafe { pack_a(a, ic, pc, mc, kc, K::MR, d) };
                            }
                            blk.a = d;
                            blk.rsa = 1;
                            blk.csa = K::MR as isize;
                            blk.a_panel = (K::MR * kc) as isize;
                            blk.a_packed = true;
                            // SAFETY: Block's memory contract holds (see above).
                            unsafe { K::block(&blk) };
                        };
                        if a_space.is_null() {
                            with_buf(&BUF_A, |buf_a| pack_and_run(aligned(buf_a, mc.div_ceil(K::MR) * K::MR * kc)))
                        } else {
                            pack_and_run(a_space)
                        }
                    }
                };

                // Runs `task(t, a_space)` for t in 0..tasks on the pool. Each
                // task packs A into its own slice of the *calling* thread's
                // buffer (sized for all tasks here), never into a worker's
                // thread-local one: which worker steals which task varies, and
                // a worker's first steal would allocate inside a training step.
                let with_task_spaces = |tasks: usize, task_rows: usize, task: &(dyn Fn(usize, *mut f32) + Sync)| {
                    use rayon::prelude::*;
                    // (The group's first block is its deepest.)
                    let kc = blocks.get()[0].kc;
                    let per_task =
                        if a_direct { 0 } else { (task_rows.div_ceil(K::MR) * K::MR * kc).next_multiple_of(16) };
                    with_buf(&BUF_A, |buf_a| {
                        let base =
                            SendPtr(if a_direct { std::ptr::null_mut() } else { aligned(buf_a, tasks * per_task) });
                        (0..tasks).into_par_iter().for_each(|t| {
                            let space = if a_direct {
                                std::ptr::null_mut()
                            } else {
                                // SAFETY: the buffer holds tasks·per_task floats; task t
                                // alone uses [t·per_task, (t + 1)·per_task), 64-byte aligned.
                                unsafe { base.get().add(t * per_task) }
                            };
                            task(t, space);
                        });
                    });
                };

                if row_split {
                    // Split LOOP 3 over rows: a multiple of `threads` tasks of
                    // whole MR panels, each ≤ MC rows (DEEP_MC in deep
                    // blocks), so the load balances; each task runs its rows
                    // through the group's blocks.
                    let rounds = m.div_ceil(threads * mc_max);
                    let chunk = m.div_ceil(threads * rounds).div_ceil(K::MR) * K::MR;
                    let tasks = m.div_ceil(chunk);
                    with_task_spaces(tasks, chunk, &|t, a_space| {
                        let ic = t * chunk;
                        for kb in &blocks.get()[..count] {
                            run_rows(kb, ic, (m - ic).min(chunk), 0, nc, a_space);
                        }
                    });
                } else if parallel {
                    // Few rows: split LOOP 2 over whole column panels (a
                    // merged last panel stays whole, in the last task).
                    let merged = panel_cols(nc % K::NR + K::NR, K::NR, K::MERGE_MAX) > K::NR;
                    let panels =
                        if merged && nc > K::NR && !nc.is_multiple_of(K::NR) { nc / K::NR } else { nc.div_ceil(K::NR) };
                    let per = panels.div_ceil(threads);
                    let tasks = panels.div_ceil(per);
                    with_task_spaces(tasks, m, &|t, a_space| {
                        let jr0 = t * per * K::NR;
                        let end = if t + 1 == tasks { nc } else { jr0 + per * K::NR };
                        run_rows(&blocks.get()[0], 0, m, jr0, end - jr0, a_space);
                    });
                } else {
                    let mut ic = 0;
                    while ic < m {
                        let mc = (m - ic).min(mc_max);
                        run_rows(&blocks.get()[0], ic, mc, 0, nc, std::ptr::null_mut());
                        ic += mc;
                    }
                }

                pc = p;
                if pc >= k {
                    break;
                }
            }
            jc += nc;
        }
    });
}
