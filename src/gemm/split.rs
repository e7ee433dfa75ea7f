//! The split-lane thin kernel (AVX-512): C 9 or 10 columns wide (the
//! tutorial's output layer, n = 10) with A read in place by rows.
//!
//! The plain kernels vectorise over C's columns, so a 10-column row fills
//! 10 of 16 lanes and no tiling of that layout passes 62.5% of peak. Here the
//! columns are split 8 + 2 and each part is interleaved with consecutive k,
//! so that every lane of every FMA does useful work:
//! - G1, columns 0..8, in two vectors of four columns: lane `4c + q` sums
//!   the k ≡ q (mod 4) terms of column c (4 + c in the second). Two FMAs
//!   per row cover four k steps, and their A operand is one broadcast,
//!   `A[i][p..p + 4]` to every group of four lanes (`vbroadcastf32x4` from
//!   memory, a load-port µop).
//! - G2, columns 8..n: lane `8c + q` sums the k ≡ q (mod 8) terms of column
//!   8 + c. One FMA per row covers eight k steps; its A operand is
//!   `A[i][p..p + 8]` broadcast to both halves (`vbroadcastf64x4`).
//!
//! Eight k steps of a row then take 4 + 1 FMAs instead of 8 (with n = 10 the
//! lanes are 100% used, against 62.5%), fed by 3 broadcasts. After the k
//! loop the partial sums are reduced: G1's per row (three shuffles), G2's
//! across the tile's rows (a tree of two-table permutes, 14 shuffles for
//! eight rows where one row alone took three), then one permute per row
//! gathers its n values and the common epilogue (`kernel::store_tile`)
//! writes them.
//!
//! B~ is packed per KC block in chunks of eight k (see [`pack`]); a dense
//! 10-wide B on one thread is packed by the block's first tile, inside its
//! k loop (see [`block`]). The reduction order of every element is fixed
//! by the layout, whatever the tile, thread or packing path, so results
//! stay bit-identical across thread counts.
//!
//! Why this layout: against the plain kernels it runs the 10-wide products
//! (32×10×100 and 256×10×100) about 1.3–1.4× faster. Of what remains of a
//! 32×10×100 call, packing B~, the reductions' shuffles and the last k % 8
//! steps each cost a few per cent; the row tree for G2 and the quads of k in
//! G1 (one broadcast feeds two FMAs, where pairs of k needed one per FMA)
//! each measured faster, and packing B~ in the first tile faster again.
//! Tried and left out, equal or slower: 12-row tiles, two accumulators per
//! row for the pairs (shorter FMA chains), gathering G2 when packing, G1
//! and G2 reduced four rows at a time by in-lane blends (LLVM made each
//! pair's one shuffle two), the packing tile building each vector just
//! before its FMAs, and skipping `rayon::current_num_threads` for small
//! products. The figures: docs/performance.md, *Kernel design*.

use std::arch::x86_64::*;

use super::driver::{split_dense, SPLIT_CHUNK, SPLIT_COLS};
use super::kernel::{opaque, panel_at, sigmoid_tile, store_tile, tile_at, unroll, Avx512, Block, Kernel, Tile};
use super::simd::V512;
use super::{Activation, MatRef};

/// Rows of a tile: 3 × 8 accumulators, and 8 rows amortise each B~ vector
/// load over 8 FMAs (12 rows, in the pair layout, measured equal).
const MR: usize = 8;

/// G1 packing, step 1: lane `2c + q` takes column c (< 8) of row q of a
/// pair of rows.
const PAIR_INDEX: [i32; 16] = [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23];

/// G1 packing, step 2: from the pairs of rows (0, 1) and (2, 3) of a
/// quad (step 1's layout), vector v's lane `4c + q` takes column 4v + c of
/// row q.
const fn quad_index(v: usize) -> [i32; 16] {
    let mut x = [0; 16];
    let mut c = 0;
    while c < 4 {
        let mut q = 0;
        while q < 4 {
            let lane = 2 * (4 * v + c) + q % 2;
            x[4 * c + q] = (if q < 2 { lane } else { 16 + lane }) as i32;
            q += 1;
        }
        c += 1;
    }
    x
}
const QUAD_INDEX: [[i32; 16]; 2] = [quad_index(0), quad_index(1)];

/// G1's reduction, step 1: lane `2c + j` (c < 8) of the sum of the two
/// picks is column c's partial sum over k offsets 2j and 2j + 1 (from the
/// accumulators of columns 0..4 and 4..8, lane `4c + q`).
const fn g1_sum_index(second: usize) -> [i32; 16] {
    let mut x = [0; 16];
    let mut c = 0;
    while c < 8 {
        let mut j = 0;
        while j < 2 {
            let q = 2 * j + second;
            x[2 * c + j] = (if c < 4 { 4 * c + q } else { 16 + 4 * (c - 4) + q }) as i32;
            j += 1;
        }
        c += 1;
    }
    x
}
const G1_SUM_INDEX: [[i32; 16]; 2] = [g1_sum_index(0), g1_sum_index(1)];

/// G2's reduction over rows, level 1 (rows 2u and 2u + 1 as the two
/// tables): lane `8c + 4ρ + j` = row ρ's lane `8c + j` (index 0) or
/// `8c + j + 4` (index 1).
const G2_PAIR_INDEX: [[i32; 16]; 2] = g2_fold_index(1);
/// Level 2 (pairs (0, 1) and (2, 3) as the tables): lane `8c + 2ρ + j` =
/// level-1 lane `8c + 4(ρ % 2) + j` (+ 2 for index 1) of pair ρ / 2.
const G2_QUAD_INDEX: [[i32; 16]; 2] = g2_fold_index(2);
/// Level 3 (rows 0..4 and 4..8 as the tables): lane `2r + c` = level-2
/// lane `8c + 2(r % 4)` (+ 1 for index 1) of quad r / 4.
const G2_OCT_INDEX: [[i32; 16]; 2] = g2_fold_index(3);

/// The two indexes of `level` (1..=3) of G2's row tree: its output has
/// `parts` partial sums per row and column (4, 2, 1) for `rows` rows
/// (2, 4, 8); index h reads the partials `step · h` further on.
const fn g2_fold_index(level: usize) -> [[i32; 16]; 2] {
    let (parts, step) = match level {
        1 => (4, 4),
        2 => (2, 2),
        _ => (1, 1),
    };
    let rows = 8 / parts;
    let mut x = [[0; 16]; 2];
    let mut h = 0;
    while h < 2 {
        let mut c = 0;
        while c < 2 {
            let mut r = 0;
            while r < rows {
                let mut j = 0;
                while j < parts {
                    // Table lane of (c, r, j): the table is r's group at
                    // the level below, inside it row r % (rows / 2).
                    let half = rows / 2;
                    let table = 16 * (r / half);
                    let below = match level {
                        1 => 8 * c + j,
                        2 => 8 * c + 4 * (r % half) + j,
                        _ => 8 * c + 2 * (r % half),
                    };
                    let lane = if parts == 1 { 2 * r + c } else { 8 * c + parts * r + j };
                    x[h][lane] = (table + below + step * h) as i32;
                    j += 1;
                }
                r += 1;
            }
            c += 1;
        }
        h += 1;
    }
    x
}

/// The output gather of row r: lanes 0..8 take G1's sums (lanes 2c of the
/// row's vector), lanes 8 and 9 take z's lanes 2r and 2r + 1 (G2).
const ROW_GATHER_INDEX: [[i32; 16]; 8] = {
    let mut x = [[0; 16]; 8];
    let mut r = 0;
    while r < 8 {
        let mut c = 0;
        while c < 8 {
            x[r][c] = 2 * c as i32;
            c += 1;
        }
        x[r][8] = 16 + 2 * r as i32;
        x[r][9] = 17 + 2 * r as i32;
        r += 1;
    }
    x
};

/// G2 packing of rows 2u (first operand) and 2u + 1 (second): their columns
/// 8 and 9 go to lanes 2u, 2u + 1 and 8 + 2u, 9 + 2u (the lanes of k offset
/// q = 2u, 2u + 1); the other lanes are blended away.
const fn g2_index(u: usize) -> [i32; 16] {
    let mut x = [0; 16];
    x[2 * u] = 8;
    x[2 * u + 1] = 16 + 8;
    x[8 + 2 * u] = 9;
    x[9 + 2 * u] = 16 + 9;
    x
}
const G2_INDEX: [[i32; 16]; 4] = [g2_index(0), g2_index(1), g2_index(2), g2_index(3)];

/// Dense G1 packing: vector (h, v) of a chunk is permuted from the
/// 16-float windows at floats `o = 40h + 4v` and `o + G1_SECOND_WINDOW` of
/// its 80 (rows of 10 back to back).
const G1_SECOND_WINDOW: usize = 18;
/// Lane `4c + q` takes float `10q + c` past `o`: in the first window for
/// q < 2, else in the second.
const G1_DENSE_INDEX: [i32; 16] = {
    let mut x = [0; 16];
    let mut i = 0;
    while i < 16 {
        let (c, q) = (i / 4, i % 4);
        x[i] = (if q < 2 { 10 * q + c } else { 16 + 10 * q + c - G1_SECOND_WINDOW }) as i32;
        i += 1;
    }
    x
};

/// Dense G2 packing: the 16-float windows of a chunk that hold its rows
/// (0, 1), (2, 3), (4, 5) and (6, 7)'s columns 8 and 9 (the last window
/// ends at the chunk's end).
const G2_WINDOWS: [usize; 4] = [8, 28, 48, 64];
/// Lane `8c + q` takes float `10q + 8 + c` of the chunk, from window q / 2.
/// Index 0 fills q < 4 from windows 0 and 1, index 1 fills q ≥ 4 from
/// windows 2 and 3 (the other lanes are blended away).
const G2_DENSE_INDEX: [[i32; 16]; 2] = {
    let mut x = [[0; 16]; 2];
    let mut i = 0;
    while i < 16 {
        let (c, q) = (i / 8, i % 8);
        let window = q / 2;
        let table = if window % 2 == 1 { 16 } else { 0 };
        x[q / 4][i] = (table + 10 * q + 8 + c - G2_WINDOWS[window]) as i32;
        i += 1;
    }
    x
};

/// The index vectors of a dense chunk's permutes ([`dense_chunk`]).
struct DenseIndex {
    g1: __m512i,
    g2_lo: __m512i,
    g2_hi: __m512i,
}

impl DenseIndex {
    /// # Safety
    /// AVX-512F available.
    #[inline(always)]
    unsafe fn load() -> Self {
        DenseIndex {
            g1: _mm512_loadu_si512(G1_DENSE_INDEX.as_ptr().cast()),
            g2_lo: _mm512_loadu_si512(G2_DENSE_INDEX[0].as_ptr().cast()),
            g2_hi: _mm512_loadu_si512(G2_DENSE_INDEX[1].as_ptr().cast()),
        }
    }
}

/// The five vectors of split B~ for one chunk of a contiguous 10-wide B
/// (rows of 10 back to back, as W of the output layer): the chunk is 80
/// consecutive floats at `s`, of which the first `valid` (10 per row, 80
/// for a whole chunk) are read; the rest count as zero (a last chunk of
/// kc % 8 rows). Each vector's 16 values lie in two 16-float windows of
/// the chunk, so each takes one two-table permute of plain loads (G2 two
/// and a blend); a partial chunk loads its windows masked.
///
/// # Safety
/// AVX-512F available; `s` readable for `valid` floats.
#[inline(always)]
unsafe fn dense_chunk(s: *const f32, valid: usize, ix: &DenseIndex) -> [__m512; 5] {
    // (Macros, not closures: a closure is a function without the caller's
    // target features, and `map` over one was left as a call.)
    macro_rules! window {
        ($o:expr) => {{
            let o: usize = $o;
            if valid >= 80 {
                _mm512_loadu_ps(s.add(o))
            } else {
                let n = valid.saturating_sub(o).min(16);
                _mm512_maskz_loadu_ps(((1u32 << n) - 1) as u16, s.add(o))
            }
        }};
    }
    macro_rules! g1 {
        ($h:expr, $v:expr) => {{
            let o = 40 * $h + 4 * $v;
            _mm512_permutex2var_ps(window!(o), ix.g1, window!(o + G1_SECOND_WINDOW))
        }};
    }
    let [o0, o1, o2, o3] = G2_WINDOWS;
    let lo = _mm512_permutex2var_ps(window!(o0), ix.g2_lo, window!(o1));
    let hi = _mm512_permutex2var_ps(window!(o2), ix.g2_hi, window!(o3));
    [g1!(0, 0), g1!(0, 1), g1!(1, 0), g1!(1, 1), _mm512_mask_blend_ps(0xF0F0, lo, hi)]
}

/// Floats of a dense B one chunk reads: eight rows of 10 (equal to
/// [`SPLIT_CHUNK`], the floats it packs to, but a different stride).
const DENSE_CHUNK_SRC: usize = 8 * 10;

/// Packs a dense 10-wide B (`kc` rows at `src`) into split B~ at `dst`: its
/// partial last chunk, if kc % 8 ≠ 0, and its whole chunks unless `partial_only`
/// (the first tile of `block` then packs those as it runs).
///
/// # Safety
/// AVX-512F available; `src` readable for `10 · kc` floats, `dst` writable
/// for `split_len(kc)`.
#[inline(always)]
unsafe fn pack_dense(src: *const f32, kc: usize, dst: *mut f32, partial_only: bool) {
    let ix = DenseIndex::load();
    let whole = kc / 8;
    if !partial_only {
        for g in 0..whole {
            store_chunk(dst.add(g * SPLIT_CHUNK), dense_chunk(src.add(g * DENSE_CHUNK_SRC), 80, &ix));
        }
    }
    if !kc.is_multiple_of(8) {
        let g = whole;
        store_chunk(dst.add(g * SPLIT_CHUNK), dense_chunk(src.add(g * DENSE_CHUNK_SRC), 10 * (kc - 8 * g), &ix));
    }
}

/// Stores a chunk's five vectors at `d` (80 floats).
///
/// # Safety
/// AVX-512F available; `d` writable for 80 floats.
#[inline(always)]
unsafe fn store_chunk(d: *mut f32, x: [__m512; 5]) {
    let [x0, x1, x2, x3, x4] = x;
    _mm512_storeu_ps(d, x0);
    _mm512_storeu_ps(d.add(16), x1);
    _mm512_storeu_ps(d.add(32), x2);
    _mm512_storeu_ps(d.add(48), x3);
    _mm512_storeu_ps(d.add(64), x4);
}

/// Packs `B[p0..p0 + kc][j0..j0 + w]` (w in [`SPLIT_COLS`]) as split B~: chunk g
/// (k steps `8g..8g + 8`) is [`SPLIT_CHUNK`] (80) floats,
/// - vector 2h + v (h, v < 2; G1): lane `4c + q` = `B[8g + 4h + q][4v + c]`,
/// - vector 4 (G2): lane `8c + q` = `B[8g + q][8 + c]`,
///
/// zero past kc and past w.
///
/// # Safety
/// AVX-512F available; `b` valid for its extent, the sub-view inside it;
/// `dst` writable for `split_len(kc)` floats.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn pack(b: &MatRef, p0: usize, j0: usize, kc: usize, w: usize, dst: *mut f32) {
    debug_assert!(SPLIT_COLS.contains(&w));
    let src = b.data.as_ptr();
    let at = |p: usize, c: usize| src.add((p0 + p) * b.rs + (j0 + c) * b.cs);
    // A row-major B: eight rows loaded (only their w columns; rows past kc
    // are zero), shuffled into place in registers. (Gathering G2 instead
    // measured slower.)
    let simd_chunks = if b.cs == 1 { kc.div_ceil(8) } else { 0 };
    let row_mask = ((1u32 << w) - 1) as u16;
    let pair = _mm512_loadu_si512(PAIR_INDEX.as_ptr().cast());
    let quad = QUAD_INDEX.map(|x| _mm512_loadu_si512(x.as_ptr().cast()));
    let g2 = G2_INDEX.map(|x| _mm512_loadu_si512(x.as_ptr().cast()));
    // A contiguous 10-wide B (see [`dense_chunk`]), its last partial
    // chunk too.
    let dense = split_dense(b, w);
    let dense_chunks = if dense { kc.div_ceil(8) } else { 0 };
    if dense {
        pack_dense(at(0, 0), kc, dst, false);
    }
    for g in dense_chunks..simd_chunks {
        let d = dst.add(g * SPLIT_CHUNK);
        let rows = (kc - 8 * g).min(8);
        let r: [__m512; 8] = std::array::from_fn(|q| {
            if q < rows {
                _mm512_maskz_loadu_ps(row_mask, at(8 * g + q, 0))
            } else {
                _mm512_setzero_ps()
            }
        });
        for h in 0..2 {
            let lo = _mm512_permutex2var_ps(r[4 * h], pair, r[4 * h + 1]);
            let hi = _mm512_permutex2var_ps(r[4 * h + 2], pair, r[4 * h + 3]);
            for (v, index) in quad.iter().enumerate() {
                _mm512_storeu_ps(d.add(32 * h + 16 * v), _mm512_permutex2var_ps(lo, *index, hi));
            }
        }
        // Column 9 of a 9-wide B is the masked load's zero.
        let mut v = _mm512_setzero_ps();
        for u in 0..4 {
            let t = _mm512_permutex2var_ps(r[2 * u], g2[u], r[2 * u + 1]);
            v = _mm512_mask_blend_ps(0x0303 << (2 * u), v, t);
        }
        _mm512_storeu_ps(d.add(64), v);
    }
    // A B without unit column stride: value by value.
    for g in simd_chunks..kc.div_ceil(8) {
        let d = dst.add(g * SPLIT_CHUNK);
        for h in 0..2 {
            for v in 0..2 {
                for c in 0..4 {
                    for q in 0..4 {
                        let p = 8 * g + 4 * h + q;
                        *d.add(32 * h + 16 * v + 4 * c + q) = if p < kc { *at(p, 4 * v + c) } else { 0.0 };
                    }
                }
            }
        }
        for c in 0..2 {
            for q in 0..8 {
                let p = 8 * g + q;
                *d.add(64 + 8 * c + q) = if p < kc && 8 + c < w { *at(p, 8 + c) } else { 0.0 };
            }
        }
    }
}

/// One tile of `M` rows: the k loop over split B~, the per-row reduction,
/// then the common epilogue. With `PACK`, the tile also packs B~'s whole
/// chunks from the dense 10-wide B at `src` (see [`block`]): each chunk's
/// five vectors are built from B, stored to B~ and used at once.
///
/// # Safety
/// As `kernel::tile` (direct path, unit column stride C), with `t.b` split
/// B~ of `t.k` steps and A~ by rows (`t.csa = 1`); with `PACK`, `src` a
/// dense 10-wide B of `t.k` rows and `t.b` writable for its whole chunks.
#[inline(always)]
unsafe fn tile<const M: usize, const PACK: bool>(t: &Tile, src: *const f32) {
    const { assert!(M <= MR) };
    debug_assert!(t.csa == 1 && t.csc == 1 && SPLIT_COLS.contains(&t.n));
    // Accumulators per row: G1's columns 0..4 and 4..8, and G2.
    let mut acc_lo = [_mm512_setzero_ps(); M];
    let mut acc_hi = [_mm512_setzero_ps(); M];
    let mut acc_g2 = [_mm512_setzero_ps(); M];
    // Rows from one opaque base per four (as `kernel::tile`): LLVM keeps a
    // pointer per row and one shared k offset.
    let rsa = t.rsa;
    let mut ag = [t.a; 16]; // only the first ceil(M / 4) are used
    unroll!(M.div_ceil(4), g, {
        ag[g] = opaque(t.a.wrapping_offset((4 * g) as isize * rsa));
    });
    let row = |ag: &[*const f32; 16], i: usize| ag[i / 4].wrapping_offset((i % 4) as isize * rsa);
    let mut b = t.b;
    let mut k = t.k;
    let mut s = src;
    let ix = DenseIndex::load();
    while k >= 8 {
        // With PACK, the chunk built from B and stored; else loaded below.
        let mut chunk = [_mm512_setzero_ps(); 5];
        if PACK {
            chunk = dense_chunk(s, 80, &ix);
            store_chunk(b.cast_mut(), chunk);
            s = s.add(DENSE_CHUNK_SRC);
        }
        unroll!(2, h, {
            let (b0, b1) = if PACK {
                (chunk[2 * h], chunk[2 * h + 1])
            } else {
                (_mm512_loadu_ps(b.add(32 * h)), _mm512_loadu_ps(b.add(32 * h + 16)))
            };
            unroll!(M, i, {
                let a = _mm512_broadcast_f32x4(_mm_loadu_ps(row(&ag, i).add(4 * h)));
                acc_lo[i] = _mm512_fmadd_ps(a, b0, acc_lo[i]);
                acc_hi[i] = _mm512_fmadd_ps(a, b1, acc_hi[i]);
            });
        });
        let bv = if PACK { chunk[4] } else { _mm512_loadu_ps(b.add(64)) };
        unroll!(M, i, {
            let a = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_loadu_pd(row(&ag, i) as *const f64)));
            acc_g2[i] = _mm512_fmadd_ps(a, bv, acc_g2[i]);
        });
        unroll!(M.div_ceil(4), g, {
            ag[g] = ag[g].wrapping_add(8);
        });
        b = b.add(SPLIT_CHUNK);
        k -= 8;
    }
    if k > 0 {
        // The last k % 8 steps, B~ zero past k. Nothing past k of a row is
        // read: its first four values are broadcast from memory when k ≥ 4
        // (as in the loop), the others loaded masked and broadcast by a
        // shuffle. One pass over the rows per part, reloading A (L1 hits)
        // rather than keeping eight loaded rows live next to the 24
        // accumulators: one pass with the rows held spilled them, and the
        // k > 4 test ran per row.
        let (b0, b1) = (_mm512_loadu_ps(b), _mm512_loadu_ps(b.add(16)));
        if k >= 4 {
            unroll!(M, i, {
                let a = _mm512_broadcast_f32x4(_mm_loadu_ps(row(&ag, i)));
                acc_lo[i] = _mm512_fmadd_ps(a, b0, acc_lo[i]);
                acc_hi[i] = _mm512_fmadd_ps(a, b1, acc_hi[i]);
            });
            if k > 4 {
                let mask = ((1u32 << (k - 4)) - 1) as u16;
                let (b3, b4) = (_mm512_loadu_ps(b.add(32)), _mm512_loadu_ps(b.add(48)));
                unroll!(M, i, {
                    let a4 = _mm512_maskz_loadu_ps(mask, row(&ag, i).add(4));
                    let a = _mm512_shuffle_f32x4::<0b00_00_00_00>(a4, a4);
                    acc_lo[i] = _mm512_fmadd_ps(a, b3, acc_lo[i]);
                    acc_hi[i] = _mm512_fmadd_ps(a, b4, acc_hi[i]);
                });
            }
        } else {
            let mask = ((1u32 << k) - 1) as u16;
            unroll!(M, i, {
                let a4 = _mm512_maskz_loadu_ps(mask, row(&ag, i));
                let a = _mm512_shuffle_f32x4::<0b00_00_00_00>(a4, a4);
                acc_lo[i] = _mm512_fmadd_ps(a, b0, acc_lo[i]);
                acc_hi[i] = _mm512_fmadd_ps(a, b1, acc_hi[i]);
            });
        }
        let mask = ((1u32 << k) - 1) as u16;
        let b2 = _mm512_loadu_ps(b.add(64));
        unroll!(M, i, {
            let a8 = _mm512_maskz_loadu_ps(mask, row(&ag, i));
            let a = _mm512_shuffle_f32x4::<0b01_00_01_00>(a8, a8);
            acc_g2[i] = _mm512_fmadd_ps(a, b2, acc_g2[i]);
        });
    }
    // G2 across the tile's rows, a tree of two-table permutes: rows in
    // pairs (lane 8c + 4ρ + j: row ρ of the pair, column 8 + c, k ≡ j or
    // j + 4 mod 8), pairs of pairs (lane 8c + 2ρ + j, j of 2), then all
    // eight rows: z lane 2r + c is row r's column 8 + c. Fourteen shuffles
    // for eight rows, where one row alone took three. Missing rows of a
    // short tile are zero.
    macro_rules! ix {
        ($x:expr) => {
            _mm512_loadu_si512($x.as_ptr().cast())
        };
    }
    macro_rules! fold {
        ($index:expr, $a:expr, $b:expr) => {{
            let (lo, hi) = (ix!($index[0]), ix!($index[1]));
            let (a, b) = ($a, $b);
            _mm512_add_ps(_mm512_permutex2var_ps(a, lo, b), _mm512_permutex2var_ps(a, hi, b))
        }};
    }
    let zero = _mm512_setzero_ps();
    // (32 long: `unroll!` indexes every arm, even those M rules out.)
    let mut g2 = [zero; 32];
    g2[..M].copy_from_slice(&acc_g2);
    let mut pairs = [zero; 32];
    unroll!(M.div_ceil(2), u, {
        pairs[u] = fold!(G2_PAIR_INDEX, g2[2 * u], g2[2 * u + 1]);
    });
    let mut quads = [zero; 16];
    unroll!(M.div_ceil(4), u, {
        quads[u] = fold!(G2_QUAD_INDEX, pairs[2 * u], pairs[2 * u + 1]);
    });
    let z = fold!(G2_OCT_INDEX, quads[0], quads[1]);
    // Per row: G1's sums of four (lanes 2c after summing pairs twice), and
    // z's two values of the row, gathered into lanes 0..10.
    let even = ix!(G1_SUM_INDEX[0]);
    let odd = ix!(G1_SUM_INDEX[1]);
    let mut out = [[_mm512_setzero_ps(); 1]; M];
    unroll!(M, i, {
        let u = _mm512_add_ps(
            _mm512_permutex2var_ps(acc_lo[i], even, acc_hi[i]),
            _mm512_permutex2var_ps(acc_lo[i], odd, acc_hi[i]),
        );
        let s1 = _mm512_add_ps(u, _mm512_permute_ps::<0b10_11_00_01>(u));
        out[i][0] = _mm512_permutex2var_ps(s1, ix!(ROW_GATHER_INDEX[i % MR]), z);
    });
    let sigmoid = t.act == Activation::Sigmoid;
    store_tile::<V512, M, 1>(t, &out, !t.mask.is_null() && !sigmoid);
    if sigmoid {
        sigmoid_tile::<V512>(t, M);
    }
}

/// LOOP 1 over a split block (one column panel, n in [`SPLIT_COLS`]): tiles of
/// [`MR`] rows, the last one shorter.
///
/// When the driver leaves B~ to the block (a dense 10-wide B on one thread:
/// `blk.b_dense` is then that B, rows `kc` from the block's first k, and
/// `blk.b` the empty B~), the first tile packs B~'s whole chunks in its k
/// loop, while its FMAs run, and the last partial chunk is packed before
/// it; the other tiles read B~ as usual. A separate packing pass took ~10%
/// of a 32×10×100 call (docs/performance.md, *Kernel design*). B~ holds the
/// same values either way.
///
/// # Safety
/// AVX-512F available; `blk` as documented on [`Block`], with `blk.b` split
/// B~ from [`pack`] (or, with `blk.b_dense` non-null, writable for
/// `split_len(kc)` floats and `blk.b_dense` a dense B as above), A~ read in
/// place by rows and C with unit column stride.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn block(blk: &Block) {
    let p = panel_at::<V512, { Avx512::NR }, { Avx512::MERGE_MAX }>(blk, 0);
    let mut ir = 0;
    let src = blk.b_dense;
    if !src.is_null() {
        // A block shorter than one tile packs every chunk up front.
        let in_tile = blk.mc >= MR;
        pack_dense(src, blk.kc, blk.b.cast_mut(), in_tile);
        if in_tile {
            let t = tile_at::<{ Avx512::MR }>(blk, &p, 0);
            // SAFETY: rows 0..MR of the block; B~ and B as documented above.
            tile::<MR, true>(&t, src);
            ir = MR;
        }
    }
    let none = std::ptr::null();
    while ir < blk.mc {
        let t = tile_at::<{ Avx512::MR }>(blk, &p, ir);
        // SAFETY: rows ir.. of the block (at most MR of them) and its one
        // column panel: inside the memory `block`'s contract covers.
        match (blk.mc - ir).min(MR) {
            1 => tile::<1, false>(&t, none),
            2 => tile::<2, false>(&t, none),
            3 => tile::<3, false>(&t, none),
            4 => tile::<4, false>(&t, none),
            5 => tile::<5, false>(&t, none),
            6 => tile::<6, false>(&t, none),
            7 => tile::<7, false>(&t, none),
            _ => tile::<8, false>(&t, none),
        }
        ir += MR;
    }
}
