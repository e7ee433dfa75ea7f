//! Register-blocked microkernels (BLIS loops 2 and 1 plus the microkernel),
//! one zero-sized type per instruction set behind one trait.
//!
//! The microkernel body `tile` is written once, generic over the vector type
//! and over the tile shape (`M` rows × `NV` vectors), and is `#[inline(always)]`;
//! each ISA's `#[target_feature]` entry point (`Kernel::block`) is a thin
//! wrapper that inlines LOOP 2, LOOP 1 and the tile bodies, so the whole
//! macro-block compiles to that ISA's instructions.
//!
//! Edge tiles: rows are exact (`M` is chosen per tile, so no padded rows are
//! ever computed); columns are rounded up to whole vectors, the padded lanes
//! come from zero-padded packing (or a masked load when B is read in place)
//! and are masked off when C is written. When C does not have unit column
//! stride the tile goes through a scratch buffer instead. Thin panels (one
//! vector wide, e.g. N = 10) run taller tiles (`MR_THIN` rows) so enough
//! independent FMA chains are in flight.

use super::simd::Simd;
use super::{Activation, MatRef};

/// One macro-block: `C[..mc, ..nc] = epilogue(α·A~·B~ (+ β·C))` over `kc`.
///
/// A~ is described by strides: element (i, p) of the row panel starting at
/// row `ir` (a multiple of MR) is `a[(ir / MR) * a_panel + (i % MR) * rsa + p * csa]`.
/// That covers both packed panels (`rsa = 1, csa = MR, a_panel = MR·kc`) and
/// reading A in place (`rsa = lda, csa = 1, a_panel = MR·lda`, or a
/// transposed A with `rsa = 1, csa = lda`). B~ likewise: column panel `jr / NR`
/// starts at `b + (jr / NR) * b_panel`, row p at `+ p * rsb`. A packed B~
/// holds whole vectors (zero padding); B read in place (`b_masked`) has its
/// partial last vector loaded with a mask, so nothing past column nc is read.
#[derive(Clone, Copy)]
pub(crate) struct Block {
    pub mc: usize,
    pub nc: usize,
    pub kc: usize,
    pub a: *const f32,
    pub rsa: isize,
    pub csa: isize,
    pub a_panel: isize,
    /// A~ is a packed buffer (row panels of exactly MR rows).
    pub a_packed: bool,
    /// Packing fused into the first tiles ([`Kernel::FUSED_PACK_A`]): a
    /// row-major A itself at the block's first row and k, row stride
    /// `rsa_src`. A~ (`a`, packed layout) then holds only the partial last
    /// row panel, if any; the first tile of each whole row panel reads its
    /// MR rows here and writes them into A~ as it goes, and the panel's
    /// other tiles read A~. Only in blocks that run LOOP 1 outside LOOP 2
    /// (see [`block_loops`]). Null: A~ is complete.
    pub a_src: *const f32,
    pub rsa_src: isize,
    pub b: *const f32,
    pub rsb: isize,
    pub b_panel: isize,
    /// B~ is B itself: load a partial last vector masked.
    pub b_masked: bool,
    /// The block's last column panel ends in an interleaved tail (see
    /// [`tile`]): its last `LANES / IL` or fewer columns, packed as vectors
    /// with lane `c·IL + q` for column c (zero past the valid columns). When
    /// A~ is read by rows (csa = 1), `ceil(kc / IL)` vectors with lane
    /// `c·IL + q` = B~[IL·chunk + q, c] (zero past kc); for column panels
    /// (rsa = 1), `kc` vectors with lane `c·IL + q` = B~[p, c] (each value
    /// IL times). Null: no interleaved tail.
    pub b_il: *const f32,
    /// B~ is split-lane packed (`split::pack`) for the split thin kernel:
    /// one column panel of `driver::SPLIT_COLS` width, A~ by rows.
    pub b_split: bool,
    /// Split blocks only: B itself (rows of 10 floats back to back, from
    /// the block's first k) when the block's first tile packs B~ as it runs
    /// (see `split::block`), else null.
    pub b_dense: *const f32,
    pub c: *mut f32,
    pub rsc: isize,
    pub csc: isize,
    pub alpha: f32,
    /// 0: C is write-only for this block (never read, may hold NaN).
    pub beta: f32,
    /// `bias[j]` for columns of this block, or null.
    pub bias: *const f32,
    pub act: Activation,
    /// `mask[i * rsm + j]` multiplies C after the activation, or null.
    pub mask: *const f32,
    pub rsm: isize,
}

/// One register tile's operands (a row panel of A~ × a column panel of B~).
#[derive(Clone, Copy)]
pub(crate) struct Tile {
    pub k: usize,
    pub a: *const f32,
    pub rsa: isize,
    pub csa: isize,
    pub b: *const f32,
    pub rsb: isize,
    /// The interleaved tail's packed vectors (the `IL` variant), else null.
    pub b_il: *const f32,
    /// `PACK` tiles only: the packed A~ panel to write (`M` values per k)
    /// from the rows they read; null otherwise.
    pub pack: *mut f32,
    pub c: *mut f32,
    pub rsc: isize,
    pub csc: isize,
    /// Valid columns, `(NV-1)·LANES < n ≤ NV·LANES`.
    pub n: usize,
    pub alpha: f32,
    pub beta: f32,
    pub bias: *const f32,
    pub act: Activation,
    pub mask: *const f32,
    pub rsm: isize,
}

impl Tile {
    /// Whether the epilogue is a plain store: C = A~·B~, unit column
    /// stride, no α, β, bias, activation or mask.
    #[inline(always)]
    fn plain_store(&self) -> bool {
        self.csc == 1
            && self.alpha == 1.0
            && self.beta == 0.0
            && self.bias.is_null()
            && self.act == Activation::Linear
            && self.mask.is_null()
    }
}

/// `for $i in 0..$n` with `$n ≤ 16` a constant, unrolled in the source so
/// every index is a literal before LLVM's SROA runs: the accumulators then
/// live in registers instead of a stack array.
macro_rules! unroll {
    ($n:expr, $i:ident, $body:block) => {
        unroll!(@ $n, $i, $body, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    };
    (@ $n:expr, $i:ident, $body:block, $($k:literal),*) => {
        $( if $k < $n { let $i: usize = $k; $body } )*
    };
}
pub(crate) use unroll;

/// Hides a pointer's provenance from the optimizer (an empty asm block), so
/// independent pointers stay independent induction variables.
// The asm is only an optimisation barrier on the pointer's value: it touches
// no memory, so `nomem` is accurate even though a pointer passes through.
#[allow(clippy::pointers_in_nomem_asm_block)]
#[inline(always)]
pub(crate) fn opaque(p: *const f32) -> *const f32 {
    // (Miri cannot run inline assembly; black_box is its equivalent there.)
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        let mut p = p;
        // SAFETY: an empty asm block that only passes the value through.
        unsafe { std::arch::asm!("/* {0} */", inout(reg) p, options(pure, nomem, nostack, preserves_flags)) };
        p
    }
    #[cfg(any(not(target_arch = "x86_64"), miri))]
    {
        std::hint::black_box(p)
    }
}

/// Hint that the cache line holding `p` will be used soon (no fault if the
/// address is invalid; a no-op off x86-64).
#[inline(always)]
pub(crate) fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The microkernel: `M × NV·LANES` accumulators in registers, one rank-1
/// update per k, then the fused epilogue (α, β, bias, activation, mask) in
/// registers, written straight to C (masked last vector) or via scratch.
///
/// `IL`: the last vector is an *interleaved tail*. A panel whose last
/// vector has at most `LANES / S::IL` valid columns (n = 100 on AVX-512:
/// 36 = 2 vectors + 4 columns) would spend a whole FMA per row and k on
/// those few lanes. Instead each lane group of `IL` serves one column and
/// the `IL` values broadcast to every group come from A~'s unit stride, so
/// every lane of every FMA is useful (`vbroadcastf32x4` on AVX-512, a
/// load-port µop like a scalar broadcast):
/// - A~ by rows (`A_ROWS`): `IL` consecutive k of one row; one FMA per row
///   every `IL` k steps, lane `c·IL + q` a partial sum over k ≡ q, reduced
///   over q after the k loop (three shuffles per row).
/// - A~ by column panels: `IL` consecutive rows at one k; one FMA per `IL`
///   rows and k, lane `c·IL + q` = row q's column c, picked out per row
///   after the k loop (one shuffle per row).
///
/// `PACK` (A~ by rows only): each broadcast value is also stored to
/// `t.pack[p·M + i]`, so the tile leaves its `M × k` rows of A packed for
/// the rest of its row panel (see [`Block::a_src`]).
///
/// # Safety
/// `S`'s instructions must be available; A~ must be readable for `M` rows ×
/// `k` (and with `PACK`, `t.pack` writable for `M · k` floats that overlap
/// nothing else the tile reads or writes), B~ for `k` rows × `NV·LANES`
/// columns (only `(NV-1)·LANES + tail` when `TAIL`), C writable (and
/// readable when β ≠ 0) for `M × n`, bias readable for `n` values and the mask for
/// `M × n` (row stride `rsm`) when non-null; with `IL`, `b_il` readable for
/// the tail vectors of `k` (see [`Block::b_il`]) and A~ by rows only where
/// B~'s plain vectors are read, A~ in column panels for `M` rows.
#[inline(always)]
unsafe fn tile<
    S: Simd,
    const M: usize,
    const NV: usize,
    const TAIL: bool,
    const A_ROWS: bool,
    const IL: bool,
    const PACK: bool,
>(
    t: &Tile,
    tail: usize,
) {
    const { assert!(M <= 16 && NV <= 16 && !(IL && TAIL) && (!PACK || (A_ROWS && M <= 8))) };
    let mut pk = t.pack;
    // Plain (non-interleaved) vectors of B~ per k step.
    let nv_plain = if IL { NV - 1 } else { NV };
    // A one-vector (thin) tile asks for its C lines now, so they arrive
    // while the k loop runs (faster on the dW shape 100×10×32). Wider tiles
    // do without: there the prefetches cost more than they save
    // (docs/performance.md, *Kernel design*).
    if t.csc == 1 && NV == 1 {
        unroll!(M, i, {
            let row = t.c.wrapping_offset(i as isize * t.rsc);
            prefetch(row);
            prefetch(row.wrapping_add(t.n - 1));
        });
    }
    let mut acc = [[S::zero(); NV]; M];
    // A~ always has a unit stride one way (the driver reads A in place only
    // then, and packs it into column panels otherwise), and `A_ROWS` says
    // which, so every k step's offset is a compile-time displacement.
    // A_ROWS (row-major A read in place, csa = 1): rows are addressed from
    // one base pointer per `group` rows, made opaque to LLVM so it cannot
    // rewrite row i's address as row (i-1)'s plus rsa, a serial add chain
    // of M cycles per k step. Tiles of up to 8 rows use groups of 4 (LLVM
    // then keeps a pointer per row plus one shared k offset). Taller
    // (thin-panel) tiles use pairs, the odd row at `base + rsa` (one
    // addressing mode), re-opaqued after each unrolled step: a pointer per
    // row took 17 registers for 16 rows, and the spills cost 32×10×100 ~9%.
    // Column panels (packed, or a transposed A; rsa = 1): one pointer, row i
    // at `+ i`.
    debug_assert!(if A_ROWS { t.csa == 1 } else { t.rsa == 1 });
    let group: usize = if M > 8 { 2 } else { 4 };
    let (rsa, csa, rsb) = (t.rsa, t.csa, t.rsb);
    let mut ag = [t.a; 16]; // A_ROWS: only the first ceil(M / group) are used
    if A_ROWS {
        unroll!(M.div_ceil(group), g, {
            ag[g] = opaque(t.a.wrapping_offset((group * g) as isize * rsa));
        });
    }
    let mut b = t.b;
    // One rank-1 update with B~ row `s` and A~ column `s` past the pointers.
    macro_rules! rank1 {
        ($s:expr) => {{
            let s: isize = $s;
            let bs = b.wrapping_offset(s * rsb);
            let mut bv = [S::zero(); NV];
            unroll!(nv_plain, v, {
                bv[v] = if TAIL && v + 1 == NV {
                    S::load_part(bs.wrapping_add(v * S::LANES), tail)
                } else {
                    S::load(bs.wrapping_add(v * S::LANES))
                };
            });
            unroll!(M, i, {
                let ap = if A_ROWS {
                    ag[i / group].wrapping_offset((i % group) as isize * rsa + s)
                } else {
                    ag[0].wrapping_offset(i as isize + s * csa)
                };
                let ai = S::bcast(ap);
                if PACK {
                    S::store_lane0(pk.wrapping_offset(s * M as isize + i as isize), ai);
                }
                unroll!(nv_plain, v, {
                    acc[i][v] = S::fmadd(ai, bv[v], acc[i][v]);
                });
            });
            if IL && !A_ROWS {
                rank_il_cols!(s);
            }
        }};
    }
    // Column-panel A~'s interleaved tail: accumulator g holds rows
    // g·IL .. g·IL + IL (a partial last group reads only its rows).
    let mut acc_il = [S::zero(); 16];
    let mut bg = t.b_il;
    macro_rules! rank_il_cols {
        ($s:expr) => {{
            let s: isize = $s;
            let gv = S::load(bg.wrapping_offset(s * S::LANES as isize));
            unroll!(M.div_ceil(S::IL), g, {
                let ap = ag[0].wrapping_offset((g * S::IL) as isize + s * csa);
                let rows = M - g * S::IL;
                let ai = if rows >= S::IL { S::bcast_il(ap) } else { S::bcast_il_part(ap, rows) };
                acc_il[g] = S::fmadd(ai, gv, acc_il[g]);
            });
        }};
    }
    // A~-by-rows' interleaved tail: the update for k steps `s .. s + cnt`
    // past the pointers (`cnt ≤ IL`; fewer only at the end of k), from tail
    // vector `bg`.
    macro_rules! rank_il {
        ($s:expr, $cnt:expr, $bg:expr) => {{
            let (s, cnt): (isize, usize) = ($s, $cnt);
            let gv = S::load($bg);
            unroll!(M, i, {
                let ap = ag[i / group].wrapping_offset((i % group) as isize * rsa + s);
                let ai = if cnt == S::IL { S::bcast_il(ap) } else { S::bcast_il_part(ap, cnt) };
                acc[i][NV - 1] = S::fmadd(ai, gv, acc[i][NV - 1]);
            });
        }};
    }
    // Moves the pointers `$u` k steps on.
    macro_rules! advance {
        ($u:expr) => {{
            let u: isize = $u;
            if A_ROWS {
                unroll!(M.div_ceil(group), g, {
                    let next = ag[g].wrapping_offset(u);
                    ag[g] = if group == 2 { opaque(next) } else { next };
                });
            } else {
                ag[0] = ag[0].wrapping_offset(u * csa);
                if IL {
                    bg = bg.wrapping_offset(u * S::LANES as isize);
                }
            }
            b = b.wrapping_offset(u * rsb);
            if PACK {
                pk = pk.wrapping_offset(u * M as isize);
            }
        }};
    }
    // Four k steps per iteration: the pointer updates and the loop test are
    // scalar µops that share ports with the FMAs (on the thin tile ten per
    // step, against sixteen FMAs).
    let mut k = t.k;
    while k >= 4 {
        rank1!(0);
        rank1!(1);
        rank1!(2);
        rank1!(3);
        if IL && A_ROWS {
            // 4 / IL tail vectors (AVX-512: one; AVX2: two pairs).
            unroll!(4 / S::IL, c, {
                rank_il!((c * S::IL) as isize, S::IL, bg.add(c * S::LANES));
            });
            bg = bg.add(4 / S::IL * S::LANES);
        }
        advance!(4);
        k -= 4;
    }
    if IL && A_ROWS {
        // The last k % 4 steps' tail chunks (the final one partial).
        let mut s = 0;
        while s < k {
            rank_il!(s as isize, (k - s).min(S::IL), bg);
            bg = bg.add(S::LANES);
            s += S::IL;
        }
    }
    while k > 0 {
        rank1!(0);
        advance!(1);
        k -= 1;
    }
    if IL && A_ROWS {
        unroll!(M, i, {
            acc[i][NV - 1] = S::reduce_il(acc[i][NV - 1]);
        });
    }
    if IL && !A_ROWS {
        if t.plain_store() {
            // Each row's tail columns picked just before its stores (the
            // weight gradient Xᵀ·dY): picking every row first, for the
            // general epilogue, holds M more vectors than the registers
            // left, and their spills cost a few per cent on the dW shapes
            // 784×52×32 and 784×100×32 (docs/performance.md, *Kernel design*).
            let last = t.n - (NV - 1) * S::LANES;
            unroll!(M, i, {
                let crow = t.c.offset(i as isize * t.rsc);
                unroll!(NV - 1, v, {
                    S::store(crow.add(v * S::LANES), acc[i][v]);
                });
                S::store_upto(crow.add((NV - 1) * S::LANES), last, S::pick_il(acc_il[i / S::IL], i % S::IL));
            });
            return;
        }
        unroll!(M, i, {
            acc[i][NV - 1] = S::pick_il(acc_il[i / S::IL], i % S::IL);
        });
    }

    let sigmoid = t.act == Activation::Sigmoid;
    if t.csc == 1 {
        // Direct path: epilogue in registers, last vector masked if partial.
        store_tile::<S, M, NV>(t, &acc, !t.mask.is_null() && !sigmoid);
        if sigmoid {
            sigmoid_tile::<S>(t, M);
        }
    } else {
        // Scratch path (C with a non-unit column stride, e.g. a transposed view).
        let alpha = S::splat(t.alpha);
        let read_c = t.beta != 0.0;
        let has_bias = !t.bias.is_null();
        let mut scratch = [[S::zero(); NV]; M];
        unroll!(M, i, {
            unroll!(NV, v, {
                scratch[i][v] = S::mul(acc[i][v], alpha);
            });
        });
        let s = scratch.as_ptr() as *const f32;
        for i in 0..M {
            for j in 0..t.n {
                let mut x = *s.add(i * NV * S::LANES + j);
                let p = t.c.offset(i as isize * t.rsc + j as isize * t.csc);
                if read_c {
                    x += t.beta * *p;
                }
                if has_bias {
                    x += *t.bias.add(j);
                }
                x = t.act.apply(x);
                if !t.mask.is_null() {
                    x *= *t.mask.offset(i as isize * t.rsm + j as isize);
                }
                *p = x;
            }
        }
    }
}

/// The direct path's epilogue: `C = act(α·acc + β·C + bias) · mask` for
/// the tile's `M × n` values, straight from the accumulators (sigmoid and
/// its mask come after, in [`sigmoid_tile`]).
///
/// Each step is one pass over all `M × NV` values behind a single test per
/// tile, and only the last vector of a row can be partial: testing β, the
/// bias, the activation and the column count per accumulator (as a fused
/// per-value chain does) put ~8 branches and stack reloads on each of the
/// 16–24 accumulators, the fixed per-tile cost that held short-k products
/// (k = 32) near 70% of peak. α = 1 (every call the model makes) skips its
/// pass; `apply_mask` says whether the dropout mask's pass runs.
///
/// # Safety
/// As `tile`'s direct path.
#[inline(always)]
pub(crate) unsafe fn store_tile<S: Simd, const M: usize, const NV: usize>(
    t: &Tile,
    acc: &[[S::V; NV]; M],
    apply_mask: bool,
) {
    let (c, rsc) = (t.c, t.rsc);
    // Valid columns of the last vector, 1..=LANES.
    let last = t.n - (NV - 1) * S::LANES;
    // Vector v of the row at p: whole before the last, which reads and
    // writes only its valid columns.
    #[inline(always)]
    unsafe fn load_v<S: Simd, const NV: usize>(p: *const f32, v: usize, last: usize) -> S::V {
        if v + 1 < NV {
            S::load(p.add(v * S::LANES))
        } else {
            S::load_upto(p.add(v * S::LANES), last)
        }
    }
    #[inline(always)]
    unsafe fn store_v<S: Simd, const NV: usize>(p: *mut f32, v: usize, last: usize, x: S::V) {
        if v + 1 < NV {
            S::store(p.add(v * S::LANES), x)
        } else {
            S::store_upto(p.add(v * S::LANES), last, x)
        }
    }
    let mut x = *acc;
    if t.alpha != 1.0 {
        let alpha = S::splat(t.alpha);
        unroll!(M, i, {
            unroll!(NV, v, {
                x[i][v] = S::mul(x[i][v], alpha);
            });
        });
    }
    if t.beta != 0.0 {
        let beta = S::splat(t.beta);
        unroll!(M, i, {
            let crow = c.offset(i as isize * rsc);
            unroll!(NV, v, {
                x[i][v] = S::fmadd(beta, load_v::<S, NV>(crow, v, last), x[i][v]);
            });
        });
    }
    if !t.bias.is_null() {
        // One bias row serves every row of the tile.
        let mut bias = [S::zero(); NV];
        unroll!(NV, v, {
            bias[v] = load_v::<S, NV>(t.bias, v, last);
        });
        unroll!(M, i, {
            unroll!(NV, v, {
                x[i][v] = S::add(x[i][v], bias[v]);
            });
        });
    }
    if t.act == Activation::Relu {
        unroll!(M, i, {
            unroll!(NV, v, {
                x[i][v] = S::relu(x[i][v]);
            });
        });
    }
    if apply_mask {
        unroll!(M, i, {
            let mrow = t.mask.offset(i as isize * t.rsm);
            unroll!(NV, v, {
                x[i][v] = S::mul(x[i][v], load_v::<S, NV>(mrow, v, last));
            });
        });
    }
    unroll!(M, i, {
        let crow = c.offset(i as isize * rsc);
        unroll!(NV, v, {
            store_v::<S, NV>(crow, v, last, x[i][v]);
        });
    });
}

/// The sigmoid epilogue over a tile just stored (still in L1), then the
/// mask: vectorised, but a loop rather than unrolled per accumulator, so its
/// polynomial is emitted once per tile shape instead of M·NV times, and the
/// other activations' epilogues carry no trace of it.
///
/// # Safety
/// As `tile`'s direct path: C rows `0..m` × `t.n` columns (unit column
/// stride) and, when non-null, the mask likewise.
#[inline(always)]
pub(crate) unsafe fn sigmoid_tile<S: Simd>(t: &Tile, m: usize) {
    for i in 0..m {
        let crow = t.c.offset(i as isize * t.rsc);
        let mrow = t.mask.wrapping_offset(i as isize * t.rsm);
        let mut j = 0;
        while j < t.n {
            let cols = t.n - j;
            let mut x = S::sigmoid(S::load_upto(crow.add(j), cols));
            if !t.mask.is_null() {
                x = S::mul(x, S::load_upto(mrow.add(j), cols));
            }
            S::store_upto(crow.add(j), cols, x);
            j += S::LANES;
        }
    }
}

/// Picks the `M`-row instantiation (masked-tail or not; A~ by rows or by
/// column panels) for `NV` vectors.
macro_rules! tile_rows {
    ($S:ty, $t:expr, $m:expr, $tail:expr, $NV:literal, [$($M:literal),*]) => {
        match ($m, $tail, $t.csa == 1) {
            $(
                ($M, 0, true) => tile::<$S, $M, $NV, false, true, false, false>($t, 0),
                ($M, 0, false) => tile::<$S, $M, $NV, false, false, false, false>($t, 0),
                ($M, tail, true) => tile::<$S, $M, $NV, true, true, false, false>($t, tail),
                ($M, tail, false) => tile::<$S, $M, $NV, true, false, false, false>($t, tail),
            )*
            _ => unreachable!(),
        }
    };
    // The interleaved-tail instantiations (no masked B~ load).
    (il $S:ty, $t:expr, $m:expr, $NV:literal, [$($M:literal),*]) => {
        match ($m, $t.csa == 1) {
            $(
                ($M, true) => tile::<$S, $M, $NV, false, true, true, false>($t, 0),
                ($M, false) => tile::<$S, $M, $NV, false, false, true, false>($t, 0),
            )*
            _ => unreachable!(),
        }
    };
}

/// Columns of the column panel that starts `rem` columns before the end of a
/// block: NR, or everything left. A remainder of at most `merge_max` columns
/// after a whole panel joins it (one NR + LANES wide panel in packing), so
/// n = 100 runs as 32 + 32 + 36 rather than 32 + 32 + 32 + 4 (`Avx512`,
/// `merge_max` = LANES) or 48 + 52 (`Avx512Shallow`, `merge_max` = 4, the
/// columns an interleaved tail takes): a 4-column panel would spend a whole
/// tile of FMAs and loads on 4 useful lanes. Packing (`pack_b`) follows the
/// same rule, and packs a merged panel NR + LANES wide.
#[inline(always)]
pub(crate) fn panel_cols(rem: usize, nr: usize, merge_max: usize) -> usize {
    if rem > nr && rem <= nr + merge_max {
        rem
    } else {
        rem.min(nr)
    }
}

/// Columns of a block's last column panel (as LOOP 2's [`panel_cols`]
/// steps reach it), for `nc ≥ 1`.
pub(crate) fn last_panel_cols(nc: usize, nr: usize, merge_max: usize) -> usize {
    let rem = nc % nr;
    if nc <= nr {
        nc
    } else if rem == 0 {
        nr
    } else if rem <= merge_max {
        nr + rem
    } else {
        rem
    }
}

/// One column panel of a macro-block: LOOP 2's step.
#[derive(Clone, Copy)]
pub(crate) struct Panel {
    jr: usize,
    /// Valid columns (NR, a merged NR + LANES, or fewer at the edge).
    n: usize,
    nv: usize,
    /// Valid lanes of a masked last vector when B is read in place, else 0.
    tail: usize,
    b: *const f32,
    rsb: isize,
    /// The block's interleaved tail when this is its last panel, else null.
    b_il: *const f32,
    bias: *const f32,
    mask: *const f32,
}

/// The column panel starting at column `jr` of the block.
///
/// # Safety
/// `jr < blk.nc`, and `blk` as documented on [`Block`].
#[inline(always)]
pub(crate) unsafe fn panel_at<S: Simd, const NR: usize, const MERGE_MAX: usize>(blk: &Block, jr: usize) -> Panel {
    let n = panel_cols(blk.nc - jr, NR, MERGE_MAX);
    // The driver packs an interleaved tail only when this last panel's tail
    // suits it, and then B~ is never loaded in that vector.
    let b_il = if jr + n == blk.nc { blk.b_il } else { std::ptr::null() };
    Panel {
        jr,
        n,
        nv: n.div_ceil(S::LANES),
        tail: if blk.b_masked && b_il.is_null() && !n.is_multiple_of(S::LANES) { n % S::LANES } else { 0 },
        b: blk.b.wrapping_offset((jr / NR) as isize * blk.b_panel),
        // A packed merged panel is stored NR + LANES wide; B read in place
        // keeps its own row stride.
        rsb: if n > NR && !blk.b_masked { (NR + S::LANES) as isize } else { blk.rsb },
        b_il,
        bias: if blk.bias.is_null() { blk.bias } else { blk.bias.add(jr) },
        mask: if blk.mask.is_null() { blk.mask } else { blk.mask.add(jr) },
    }
}

/// The register tile at rows `ir..` of panel `p`.
///
/// # Safety
/// `ir < blk.mc`, `p` from [`panel_at`] on the same block.
#[inline(always)]
pub(crate) unsafe fn tile_at<const MR: usize>(blk: &Block, p: &Panel, ir: usize) -> Tile {
    Tile {
        k: blk.kc,
        // (A read in place may step by MR_THIN rows, not always a multiple
        // of MR; packed A always steps by MR.)
        a: blk.a.wrapping_offset((ir / MR) as isize * blk.a_panel + (ir % MR) as isize * blk.rsa),
        rsa: blk.rsa,
        csa: blk.csa,
        b: p.b,
        rsb: p.rsb,
        b_il: p.b_il,
        pack: std::ptr::null_mut(),
        c: blk.c.offset(ir as isize * blk.rsc + p.jr as isize * blk.csc),
        rsc: blk.rsc,
        csc: blk.csc,
        n: p.n,
        alpha: blk.alpha,
        beta: blk.beta,
        bias: p.bias,
        act: blk.act,
        mask: if p.mask.is_null() { p.mask } else { p.mask.offset(ir as isize * blk.rsm) },
        rsm: blk.rsm,
    }
}

/// LOOP 2 (NR columns) and LOOP 1 (MR rows) over one macro-block.
///
/// With [`Block::a_src`], the first tile of each whole row panel runs
/// `run_pack(tile)` instead: A by rows, writing the panel's A~ (that panel
/// is always a whole NR wide, with neither a masked nor an interleaved
/// tail, as rows-outer blocks have at least `ROWS_OUTER_PANELS` panels).
///
/// Wide, deep blocks (at least `ROWS_OUTER_PANELS` column panels, `kc` ≥
/// `ROWS_OUTER_MIN_KC`) run LOOP 1 outside LOOP 2: the MR × kc A~ sliver
/// (8 KiB) then stays in L1 while the column panels of B~ stream from L2,
/// instead of a kc × NR B~ micro-panel (32 KiB on AVX-512, most of a 48 KiB
/// L1) staying while the A~ slivers stream past it. That measured 3–7%
/// faster on 512²–1024² (`examples/gemm_shape`, alternating) and equal
/// on 256², 128² and the n = 100 shapes, which keep the BLIS order. Where
/// B~ exceeds half the L2, LOOP 1 runs over one column group at a time
/// (see [`rows_outer_group`]).
///
/// `run(m, nv, tail, tile)` runs one tile. In the BLIS order,
/// `run_panel(panel, step)` is offered each column panel first and returns
/// whether it ran the panel's whole LOOP 1 itself (see [`panel_fns`]).
///
/// # Safety
/// As `tile` for every tile of the block.
#[inline(always)]
unsafe fn block_loops<S: Simd, const MR: usize, const NR: usize, const MR_THIN: usize, const MERGE_MAX: usize>(
    blk: &Block,
    run: impl Fn(usize, usize, usize, &Tile),
    run_panel: impl Fn(&Panel, usize) -> bool,
    run_pack: impl Fn(&Tile),
) {
    // The driver leaves A~ unpacked (`a_src`) only for blocks it knows run
    // LOOP 1 outside LOOP 2, by the same `runs_rows_outer`.
    debug_assert!(blk.a_src.is_null() || runs_rows_outer(blk.nc, blk.kc, NR));
    if runs_rows_outer(blk.nc, blk.kc, NR) {
        // Column groups (see [`rows_outer_group`]): LOOP 1 runs over the
        // group's panels only, then over the next group's.
        let group = rows_outer_group(blk.nc, blk.kc, NR, blk.b_masked);
        let mut jg = 0;
        while jg < blk.nc {
            let group_end = (jg + group).min(blk.nc);
            // Where the next group starts: past the last panel that starts
            // inside this one (a merged last panel runs whole).
            let mut next = blk.nc;
            let mut ir = 0;
            // LOOP 1: step MR through the mc rows of A~ / C.
            while ir < blk.mc {
                let m = (blk.mc - ir).min(MR);
                let mut jr = jg;
                if jg == 0 && !blk.a_src.is_null() && m == MR {
                    let p = panel_at::<S, NR, MERGE_MAX>(blk, 0);
                    debug_assert!(p.n == NR && p.tail == 0 && p.b_il.is_null() && blk.a_packed);
                    let mut t = tile_at::<MR>(blk, &p, ir);
                    t.pack = t.a as *mut f32;
                    t.a = blk.a_src.wrapping_offset(ir as isize * blk.rsa_src);
                    t.rsa = blk.rsa_src;
                    t.csa = 1;
                    run_pack(&t);
                    jr = p.n;
                }
                // LOOP 2: step NR through the group's columns of B~ / C.
                while jr < group_end {
                    let p = panel_at::<S, NR, MERGE_MAX>(blk, jr);
                    run(m, p.nv, p.tail, &tile_at::<MR>(blk, &p, ir));
                    jr += p.n;
                }
                next = jr;
                ir += MR;
            }
            jg = next;
        }
        return;
    }
    let mut jr = 0;
    // LOOP 2: step NR through the nc columns of B~ / C.
    while jr < blk.nc {
        let p = panel_at::<S, NR, MERGE_MAX>(blk, jr);
        // A one-vector-wide panel (thin N) has few accumulators per row, so
        // when A is read in place take MR_THIN rows at once to keep enough
        // independent FMA chains in flight.
        let step = if p.nv == 1 && !blk.a_packed { MR_THIN } else { MR };
        if run_panel(&p, step) {
            jr += p.n;
            continue;
        }
        let mut ir = 0;
        // LOOP 1: step MR through the mc rows of A~ / C.
        while ir < blk.mc {
            let m = (blk.mc - ir).min(step);
            run(m, p.nv, p.tail, &tile_at::<MR>(blk, &p, ir));
            ir += step;
        }
        jr += p.n;
    }
}

/// Column panels a block needs before LOOP 1 runs outside LOOP 2 (see
/// [`block_loops`]).
pub(crate) const ROWS_OUTER_PANELS: usize = 8;
/// Depth a block needs before LOOP 1 runs outside LOOP 2: below it the B~
/// micro-panel is small enough to share L1.
const ROWS_OUTER_MIN_KC: usize = 128;

/// The most bytes of B~ a rows-outer block streams past each A~ sliver:
/// half the core's L2 (as the CPU reports it, `super::l2_bytes`), so the
/// panels stay there while the sliver's rows pass, beside A~ and C's lines.
/// Measured at 512 KiB on Zen 4's 1 MiB L2; Zen 3's 512 KiB L2 takes
/// 256 KiB (docs/performance.md, *Kernel design*).
#[inline]
pub(crate) fn rows_outer_group_bytes() -> usize {
    super::l2_bytes() / 2
}

/// Column panels in a group of a rows-outer block that reads B in place
/// (see [`rows_outer_group`]). On Zen 4's AVX-512, groups of four panels
/// measured faster than no groups on 640² and 768² and equal on 1280²;
/// on 512² with B in place, groups of 2–4 beat groups of 8
/// (docs/performance.md, *Kernel design*).
const ROWS_OUTER_IN_PLACE_PANELS: usize = 4;

/// Columns of one column group of a rows-outer block `nc` wide and `kc`
/// deep (see [`block_loops`]), when the whole block's B~ does not fit in
/// [`rows_outer_group_bytes`]: [`ROWS_OUTER_IN_PLACE_PANELS`] panels `nr`
/// wide where B is read in place (`b_in_place`), else as many as fit in
/// it if that is at least [`ROWS_OUTER_PANELS`]; otherwise (and for a
/// block that fits) the whole block. LOOP 1 then runs over one group at a
/// time, and each A~ sliver is read again (from L2) per group.
///
/// A packed B~ 512 deep and 512 wide is 1 MiB, the whole L2, so each
/// sliver's pass over it would find little of it left from the last one
/// and fetch it from L3, which the host's other tenants share. On 512²
/// with B packed, groups were equal in quiet spells and lost less in busy
/// ones; the other shapes measured equal (docs/performance.md, *Kernel
/// design*).
#[inline(always)]
pub(crate) fn rows_outer_group(nc: usize, kc: usize, nr: usize, b_in_place: bool) -> usize {
    let f32s = std::mem::size_of::<f32>();
    let group_bytes = rows_outer_group_bytes();
    if nc * kc * f32s <= group_bytes {
        return nc;
    }
    if b_in_place {
        return ROWS_OUTER_IN_PLACE_PANELS * nr;
    }
    let panels = group_bytes / (kc * nr * f32s).max(1);
    if panels >= ROWS_OUTER_PANELS {
        panels * nr
    } else {
        nc
    }
}

/// Whether a block `nc` wide and `kc` deep, in `nr`-wide column panels,
/// runs LOOP 1 outside LOOP 2 (see [`block_loops`]).
#[inline(always)]
pub(crate) fn runs_rows_outer(nc: usize, kc: usize, nr: usize) -> bool {
    nc >= ROWS_OUTER_PANELS * nr && kc >= ROWS_OUTER_MIN_KC
}

/// One instruction set's microkernel family.
pub(crate) trait Kernel {
    /// MR: rows of a register tile; LOOP 1 steps by MR. A tile's A~ sliver
    /// (MR × KC) streams from L1/L2 (or, in wide, deep blocks, stays in L1
    /// while LOOP 2 runs inside LOOP 1: see [`block_loops`]).
    const MR: usize;
    /// NR: columns of a register tile (whole vectors); LOOP 2 steps by NR.
    /// The B~ micro-panel (KC × NR) stays in L1 while LOOP 1 runs (or
    /// streams from L2 in wide, deep blocks).
    const NR: usize;
    /// f32 lanes of one vector.
    const LANES: usize;
    /// The most columns a remainder may have to join the previous whole
    /// panel (see [`panel_cols`]; 0: never): LANES where registers allow
    /// NR + LANES wide tiles, 4 where the joined columns must take an
    /// interleaved tail.
    const MERGE_MAX: usize;
    /// Vectors per tile (the panel's `nv`) that have interleaved-tail
    /// instantiations; empty where the kernel has none.
    const IL_NV: std::ops::RangeInclusive<usize>;
    /// The interleave factor of those tiles (`Simd::IL`).
    const IL: usize;
    /// Whether the kernel has split-lane thin tiles (`split.rs`) for C
    /// `driver::SPLIT_COLS` wide with A~ by rows.
    const SPLIT: bool = false;
    /// Whether a row-major B is read in place however many row panels
    /// reuse it, unless its rows alias in L1 (see `driver::gemm`), on a
    /// CPU whose AVX-512 runs at half width ([`super::half_width_avx512`]).
    /// There the AVX-512 tiles read 128 bytes of B per 16 FMAs, ~8 bytes a
    /// cycle, and a B a row stride apart streams from L2 as fast as a
    /// packed one. The AVX2 tiles read 64 bytes per 12 FMAs, 1.3× the
    /// bytes a cycle, and in place they lost to packing, by over a quarter
    /// on 512² (docs/performance.md, *Kernel design*). Full-width AVX-512 units
    /// would read twice Zen 4's bytes a cycle, so they keep packing
    /// (unmeasured there).
    const B_IN_PLACE: bool = false;
    /// Whether a wide block (LOOP 1 outside LOOP 2, see [`block_loops`])
    /// with a packed operand takes k in `driver::DEEP_KC` blocks instead of
    /// KC on a CPU whose AVX-512 runs at half width (as
    /// [`Kernel::B_IN_PLACE`]). There every B~ panel streams from L2 or L3
    /// whatever the block's depth, and each further k block reloads all of C
    /// (β = 1) before its stores: in the 1024 square, whose C is 4 MiB, the
    /// epilogue's loads of C held ~4% of the microkernel's samples (`perf
    /// annotate`). One 1024-deep block measured 5–9% faster on Zen 4's
    /// AVX-512 squares; with AVX2 it was mixed (docs/performance.md, *Kernel
    /// design*), and on Intel the KC × NC B~ was sized to stay in its
    /// 2 MiB L2 (see `driver::NC`), so those keep KC (unmeasured there).
    const DEEP_KC: bool = false;
    /// Whether a block that runs LOOP 1 outside LOOP 2 and packs a
    /// row-major A (rows 4 KiB apart) packs each whole row panel in the
    /// panel's first tile, which reads A by rows and stores every value it
    /// broadcasts (see [`Block::a_src`]), instead of in a pass of its own
    /// before the block. The pass was memory-bound and ran apart from any
    /// FMA (~1.7% of the 1024 square's time, `perf`); in the tile the loads
    /// of A overlap the FMAs, at the cost of 8 scalar stores per 16 FMAs. It
    /// measured faster on the large products on both paths; prefetching the
    /// rows' lines ahead in the tile was slower (docs/performance.md, *Kernel
    /// design*).
    const FUSED_PACK_A: bool = false;
    /// Packs `B[p0..p0 + kc][j0..j0 + w]` as split B~ (see `split::pack`);
    /// only called when [`Kernel::SPLIT`].
    ///
    /// # Safety
    /// As `split::pack`.
    unsafe fn pack_split(b: &MatRef, p0: usize, j0: usize, kc: usize, w: usize, dst: *mut f32) {
        let _ = (b, p0, j0, kc, w, dst);
        unreachable!("pack_split on a kernel without split tiles");
    }
    /// Packs B's `kc × nc` block at (p0, j0) into B~ with this kernel's
    /// panels and vectors (see `driver::pack_b`).
    ///
    /// # Safety
    /// As `driver::pack_b`.
    unsafe fn pack_b(b: &MatRef, p0: usize, j0: usize, kc: usize, nc: usize, dst: *mut f32);
    /// Runs LOOP 2, LOOP 1 and the microkernels over one macro-block.
    ///
    /// # Safety
    /// The CPU must support the ISA, and `blk` must describe valid memory as
    /// documented on [`Block`].
    unsafe fn block(blk: &Block);
}

/// AVX-512F microkernel: 8 × 32 tile, 16 zmm accumulators (24 in a panel
/// joined with a last vector of up to 16 columns).
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx512;
/// AVX-512F microkernel for shallow products (`driver::runs_shallow`):
/// 8 × 48 tiles, 24 zmm accumulators, so a tile's fixed costs (its
/// prologue, the stores of C, the call) spread over 1.5× the FMAs, and
/// n = 100 takes two panels instead of three: one 48-wide panel measured
/// ~10% faster than two 32-wide ones (docs/performance.md, *Kernel
/// design*).
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx512Shallow;
/// AVX2 + FMA microkernel: 6 × 16 tile, 12 ymm accumulators.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx2;
/// Portable microkernel on `wide::f32x8`: 6 × 8 tile (12 accumulator
/// halves fit the 16 SSE registers of baseline x86-64).
pub(crate) struct Portable;

/// Defines one `#[inline(never)]` function per panel width and tail form
/// of an ISA: `name(t, m, tail)` runs the `m`-row tile. Kept apart, LLVM
/// optimises a few dozen tile bodies per function instead of every one in
/// a single function (the test build spent minutes on it), and codegen units
/// can build them in parallel; the call per tile is noise beside its k loop.
macro_rules! tile_fns {
    ($feat:literal, $S:ty, $( $name:ident: $($il:ident)? $NV:literal [$($M:literal),*] ),* $(,)?) => {
        $(
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = $feat)]
            #[inline(never)]
            unsafe fn $name(t: &Tile, m: usize, tail: usize) {
                let _ = tail;
                // SAFETY: as `tile`; the caller passes a tile inside its block.
                unsafe { tile_fns!(@ $($il)? $S, t, m, tail, $NV, [$($M),*]) }
            }
        )*
    };
    (@ $S:ty, $t:expr, $m:expr, $tail:expr, $NV:literal, [$($M:literal),*]) => {
        tile_rows!($S, $t, $m, $tail, $NV, [$($M),*])
    };
    (@ il $S:ty, $t:expr, $m:expr, $tail:expr, $NV:literal, [$($M:literal),*]) => {
        tile_rows!(il $S, $t, $m, $NV, [$($M),*])
    };
    // A row panel's first tile that packs A~ as it runs (A by rows, whole
    // panels only; see `Kernel::FUSED_PACK_A`).
    (@ pack $S:ty, $t:expr, $m:expr, $tail:expr, $NV:literal, [$($M:literal),*]) => {
        match $m {
            $( $M => tile::<$S, $M, $NV, false, true, false, true>($t, 0), )*
            _ => unreachable!(),
        }
    };
}

/// As [`tile_fns`], but each function runs a whole column panel, LOOP 1
/// included: `name(blk, p, step)` runs the tiles of panel `p`, `step`
/// rows each (the last shorter). For shallow products, where a tile's fixed
/// costs weigh most: one call per panel instead of per tile measured
/// faster on the dW shapes, where the same change for every kernel made the
/// squares ~3% slower (the looping function kept more values on the stack
/// in its k loops; docs/performance.md, *Kernel design*).
macro_rules! panel_fns {
    ($feat:literal, $S:ty, $MR:literal, $( $name:ident: $($il:ident)? $NV:literal [$($M:literal),*] ),* $(,)?) => {
        $(
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = $feat)]
            #[inline(never)]
            unsafe fn $name(blk: &Block, p: &Panel, step: usize) {
                let mut ir = 0;
                // LOOP 1: step through the mc rows of A~ / C.
                while ir < blk.mc {
                    let m = (blk.mc - ir).min(step);
                    // SAFETY: as `tile`; the caller passes a panel of its
                    // block, and rows ir.. lie inside it.
                    unsafe {
                        let t = tile_at::<$MR>(blk, p, ir);
                        tile_fns!(@ $($il)? $S, &t, m, p.tail, $NV, [$($M),*])
                    }
                    ir += step;
                }
            }
        )*
    };
}

#[cfg(target_arch = "x86_64")]
use super::simd::{V256, V512};

tile_fns!("avx512f,avx2,fma", V512,
    avx512_nv1: 1 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
    avx512_nv2: 2 [1, 2, 3, 4, 5, 6, 7, 8],
    avx512_nv2_il: il 2 [1, 2, 3, 4, 5, 6, 7, 8],
    // A merged panel: 8 × 3 = 24 accumulators of 32 zmm.
    avx512_nv3: 3 [1, 2, 3, 4, 5, 6, 7, 8],
    avx512_nv3_il: il 3 [1, 2, 3, 4, 5, 6, 7, 8],
    // `Avx512Shallow`'s joined panel: 8 × 3 + 2 interleaved = 26 accumulators.
    avx512_nv4_il: il 4 [1, 2, 3, 4, 5, 6, 7, 8],
    // A row panel's first tile in a block that packs A~ as it runs
    // (`Kernel::FUSED_PACK_A`): whole 8 × 32 tiles, A by rows.
    avx512_nv2_pack: pack 2 [8],
);

panel_fns!("avx512f,avx2,fma", V512, 8,
    // `Avx512Shallow`'s whole panel (48 columns) and joined panel (48 +
    // up to 4 interleaved).
    avx512_nv3_panel: 3 [1, 2, 3, 4, 5, 6, 7, 8],
    avx512_nv4_il_panel: il 4 [1, 2, 3, 4, 5, 6, 7, 8],
);

tile_fns!("avx2,fma", V256,
    avx2_nv1: 1 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    avx2_nv1_il: il 1 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    avx2_nv2: 2 [1, 2, 3, 4, 5, 6],
    avx2_nv2_il: il 2 [1, 2, 3, 4, 5, 6],
    // As `avx512_nv2_pack`: whole 6 × 16 tiles.
    avx2_nv2_pack: pack 2 [6],
);

/// The AVX-512 block for `NR`-wide panels: `Avx512` (32, a last vector
/// of up to 16 columns joined) or `Avx512Shallow` (48, up to 4 joined as an
/// interleaved tail).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn block_avx512<const NR: usize, const MERGE_MAX: usize>(blk: &Block) {
    if blk.b_split {
        // (Split blocks are 9 or 10 columns wide, never wide enough to
        // have their A packed by their first tiles.)
        debug_assert!(blk.a_src.is_null());
        // SAFETY: same contract as `block`; the driver packed split B~.
        unsafe { super::split::block(blk) };
        return;
    }
    block_loops::<V512, 8, NR, 16, MERGE_MAX>(
        blk,
        |m, nv, tail, t| {
            // SAFETY: same contract as `block`; the tile lies inside the block.
            unsafe {
                // Interleaved tails exist for nv = 2..=4 (`IL_NV`); the driver
                // packs none for a one-vector panel. Four vectors are only
                // `Avx512Shallow`'s joined panel (48 + up to 4), which always
                // has its tail (the kernel runs only for k ≥ IL_MIN_KC, in one
                // k block).
                match (nv, t.b_il.is_null()) {
                    (1, _) => avx512_nv1(t, m, tail),
                    (2, true) => avx512_nv2(t, m, tail),
                    (2, false) => avx512_nv2_il(t, m, tail),
                    (3, true) => avx512_nv3(t, m, tail),
                    (3, false) => avx512_nv3_il(t, m, tail),
                    (_, false) => avx512_nv4_il(t, m, tail),
                    (_, true) => unreachable!("a joined panel without its interleaved tail"),
                }
            }
        },
        |p, step| {
            // `Avx512Shallow` runs its 48-wide and joined panels whole.
            if NR != Avx512Shallow::NR {
                return false;
            }
            // SAFETY: same contract as `block`; the panel lies inside the block.
            unsafe {
                match (p.nv, p.b_il.is_null()) {
                    (3, true) => avx512_nv3_panel(blk, p, step),
                    (4, false) => avx512_nv4_il_panel(blk, p, step),
                    _ => return false,
                }
            }
            true
        },
        |t| {
            // SAFETY: same contract as `block`; a whole MR × NR tile by
            // rows, its A~ panel in the block's packed buffer.
            unsafe { avx512_nv2_pack(t, 8, 0) }
        },
    )
}

/// `driver::pack_b` with AVX-512 vectors, for `NR`-wide panels.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn pack_b_avx512<const NR: usize, const MERGE_MAX: usize>(
    b: &MatRef,
    p0: usize,
    j0: usize,
    kc: usize,
    nc: usize,
    dst: *mut f32,
) {
    super::driver::pack_b::<V512>(b, p0, j0, kc, nc, NR, MERGE_MAX, dst)
}

/// `driver::pack_b` with AVX2 vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_b_avx2(b: &MatRef, p0: usize, j0: usize, kc: usize, nc: usize, dst: *mut f32) {
    super::driver::pack_b::<V256>(b, p0, j0, kc, nc, Avx2::NR, Avx2::MERGE_MAX, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2(blk: &Block) {
    block_loops::<V256, 6, 16, 12, 0>(
        blk,
        |m, nv, tail, t| {
            // SAFETY: same contract as `block`; the tile lies inside the block.
            unsafe {
                match (nv, t.b_il.is_null()) {
                    (1, true) => avx2_nv1(t, m, tail),
                    (1, false) => avx2_nv1_il(t, m, tail),
                    (_, true) => avx2_nv2(t, m, tail),
                    (_, false) => avx2_nv2_il(t, m, tail),
                }
            }
        },
        |_, _| false,
        |t| {
            // SAFETY: same contract as `block`; a whole MR × NR tile by
            // rows, its A~ panel in the block's packed buffer.
            unsafe { avx2_nv2_pack(t, 6, 0) }
        },
    )
}

fn block_portable(blk: &Block) {
    use super::simd::VWide;
    // SAFETY: `Kernel::block`'s caller guarantees the block's memory contract;
    // the portable vector type needs no CPU feature.
    unsafe {
        block_loops::<VWide, 6, 8, 6, 0>(
            blk,
            |m, nv, tail, t| {
                debug_assert_eq!(nv, 1);
                tile_rows!(VWide, t, m, tail, 1, [1, 2, 3, 4, 5, 6])
            },
            |_, _| false,
            |_| unreachable!(),
        )
    }
}

/// The methods of an AVX-512 `Kernel` impl: the same for `Avx512` and
/// `Avx512Shallow`, which differ only in their constants (NR, MERGE_MAX,
/// IL_NV), read here through `Self`.
macro_rules! avx512_kernel_fns {
    () => {
        #[inline]
        unsafe fn block(blk: &Block) {
            block_avx512::<{ Self::NR }, { Self::MERGE_MAX }>(blk)
        }
        #[inline]
        unsafe fn pack_split(b: &MatRef, p0: usize, j0: usize, kc: usize, w: usize, dst: *mut f32) {
            super::split::pack(b, p0, j0, kc, w, dst)
        }
        #[inline]
        unsafe fn pack_b(b: &MatRef, p0: usize, j0: usize, kc: usize, nc: usize, dst: *mut f32) {
            pack_b_avx512::<{ Self::NR }, { Self::MERGE_MAX }>(b, p0, j0, kc, nc, dst)
        }
    };
}

#[cfg(target_arch = "x86_64")]
impl Kernel for Avx512 {
    const MR: usize = 8;
    const NR: usize = 32;
    const LANES: usize = 16;
    const MERGE_MAX: usize = 16;
    const IL_NV: std::ops::RangeInclusive<usize> = 2..=3;
    const IL: usize = 4;
    const SPLIT: bool = true;
    const B_IN_PLACE: bool = true;
    const DEEP_KC: bool = true;
    const FUSED_PACK_A: bool = true;
    avx512_kernel_fns!();
}

#[cfg(target_arch = "x86_64")]
impl Kernel for Avx512Shallow {
    const MR: usize = 8;
    const NR: usize = 48;
    const LANES: usize = 16;
    const MERGE_MAX: usize = 4;
    const IL_NV: std::ops::RangeInclusive<usize> = 2..=4;
    const IL: usize = 4;
    const SPLIT: bool = true;
    const B_IN_PLACE: bool = true;
    const DEEP_KC: bool = true;
    avx512_kernel_fns!();
}

#[cfg(target_arch = "x86_64")]
impl Kernel for Avx2 {
    const MR: usize = 6;
    const NR: usize = 16;
    const LANES: usize = 8;
    const MERGE_MAX: usize = 0;
    const IL_NV: std::ops::RangeInclusive<usize> = 1..=2;
    const IL: usize = 2;
    const FUSED_PACK_A: bool = true;
    #[inline]
    unsafe fn block(blk: &Block) {
        block_avx2(blk)
    }
    #[inline]
    unsafe fn pack_b(b: &MatRef, p0: usize, j0: usize, kc: usize, nc: usize, dst: *mut f32) {
        pack_b_avx2(b, p0, j0, kc, nc, dst)
    }
}

impl Kernel for Portable {
    const MR: usize = 6;
    const NR: usize = 8;
    const LANES: usize = 8;
    const MERGE_MAX: usize = 0;
    #[allow(clippy::reversed_empty_ranges)]
    const IL_NV: std::ops::RangeInclusive<usize> = 1..=0;
    const IL: usize = 1;
    #[inline]
    unsafe fn block(blk: &Block) {
        block_portable(blk)
    }
    #[inline]
    unsafe fn pack_b(b: &MatRef, p0: usize, j0: usize, kc: usize, nc: usize, dst: *mut f32) {
        super::driver::pack_b::<super::simd::VWide>(b, p0, j0, kc, nc, Self::NR, Self::MERGE_MAX, dst)
    }
}
