//! Every optimized path against `reference::sgemm`.

use super::*;

/// Deterministic values in [-1, 1).
fn fill(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// How an operand is laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    /// Contiguous row-major.
    RowMajor,
    /// `.t()` of a contiguous row-major buffer of the transposed shape.
    Trans,
    /// Row-major inside a wider buffer (row stride = cols + 3).
    Padded,
    /// Neither stride is 1 (rs = 2·cols + 1, cs = 2).
    General,
    /// Row-major with a row stride of a multiple of 1024 floats (4 KiB), so
    /// a wide product packs A, and a tall one B (the driver's aliasing
    /// rules; otherwise the AVX-512 path on Zen 4 reads a row-major B in
    /// place).
    Aliased,
}

const LAYOUTS: [Layout; 4] = [Layout::RowMajor, Layout::Trans, Layout::Padded, Layout::General];
/// B's layouts in the sweeps: also `Aliased`, which a product with more
/// than 32 rows packs on every path.
const B_LAYOUTS: [Layout; 5] = [Layout::RowMajor, Layout::Trans, Layout::Padded, Layout::General, Layout::Aliased];

/// (buffer length, rs, cs) for a rows × cols view.
fn geometry(l: Layout, rows: usize, cols: usize) -> (usize, usize, usize) {
    match l {
        Layout::RowMajor => (rows * cols, cols, 1),
        Layout::Trans => (rows * cols, 1, rows),
        Layout::Padded => (rows * (cols + 3), cols + 3, 1),
        Layout::General => (rows * (2 * cols + 1), 2 * cols + 1, 2),
        Layout::Aliased => (rows * cols.next_multiple_of(1024), cols.next_multiple_of(1024), 1),
    }
}

fn view(data: &[f32], l: Layout, rows: usize, cols: usize) -> MatRef<'_> {
    let (_, rs, cs) = geometry(l, rows, cols);
    match l {
        Layout::Trans => MatRef::row_major(data, cols, rows).t(),
        _ => MatRef::strided(data, rows, cols, rs, cs),
    }
}

#[derive(Clone, Copy, Debug)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    la: Layout,
    lb: Layout,
    lc: Layout,
    alpha: f32,
    beta: f32,
    bias: bool,
    act: Activation,
    /// A dropout-style mask (0 or 2) in the epilogue, row stride n + 1.
    mask: bool,
}

impl Case {
    fn new(m: usize, n: usize, k: usize) -> Case {
        Case {
            m,
            n,
            k,
            la: Layout::RowMajor,
            lb: Layout::RowMajor,
            lc: Layout::RowMajor,
            alpha: 1.0,
            beta: 0.0,
            bias: false,
            act: Activation::Linear,
            mask: false,
        }
    }
}

/// How many epilogue variants [`variant`] cycles through.
const VARIANTS: usize = 12;

/// The epilogue / α / β variants the brief lists, cycled by index.
fn variant(c: Case, v: usize) -> Case {
    let (alpha, beta, bias, act, mask) = match v % VARIANTS {
        0 => (1.0, 0.0, false, Activation::Linear, false),
        1 => (1.0, 0.0, true, Activation::Linear, false),
        2 => (1.0, 0.0, true, Activation::Relu, false),
        3 => (1.0, 0.0, true, Activation::Sigmoid, false),
        4 => (1.0, 0.0, false, Activation::Relu, false),
        5 => (1.0, 1.0, false, Activation::Linear, false),
        6 => (2.0, 0.5, true, Activation::Relu, false),
        7 => (2.0, 0.0, false, Activation::Linear, false),
        8 => (1.0, 0.0, true, Activation::Relu, true),
        9 => (1.0, 0.0, true, Activation::Sigmoid, true),
        10 => (2.0, 0.5, false, Activation::Linear, true),
        _ => (-0.5, 1.0, true, Activation::Sigmoid, false),
    };
    Case { alpha, beta, bias, act, mask, ..c }
}

/// Runs one case on `isa` and on the reference; returns the optimized C.
fn check(isa: Isa, c: Case) -> Vec<f32> {
    let Case { m, n, k, .. } = c;
    let seed = (m * 1_000_003 + n * 1009 + k) as u64;
    let (la_len, ..) = geometry(c.la, m, k);
    let (lb_len, ..) = geometry(c.lb, k, n);
    let (lc_len, crs, ccs) = geometry(c.lc, m, n);
    let a = fill(la_len, seed);
    let b = fill(lb_len, seed + 1);
    let bias = fill(n, seed + 2);
    let c0 = if c.beta == 0.0 { vec![f32::NAN; lc_len] } else { fill(lc_len, seed + 3) };
    // Dropout-like: about a third dropped, the rest scaled by 2.
    let mask: Vec<f32> = fill(m * (n + 1), seed + 4).iter().map(|&u| if u < -0.33 { 0.0 } else { 2.0 }).collect();
    let epi = Epilogue {
        bias: c.bias.then_some(&bias[..]),
        act: c.act,
        mask: c.mask.then(|| MatRef::strided(&mask, m, n, n + 1, 1)),
    };

    let mut got = c0.clone();
    sgemm_with(isa, c.alpha, view(&a, c.la, m, k), view(&b, c.lb, k, n), c.beta, cview(&mut got, c.lc, m, n), epi);
    let mut want = c0.clone();
    reference::sgemm(c.alpha, view(&a, c.la, m, k), view(&b, c.lb, k, n), c.beta, cview(&mut want, c.lc, m, n), epi);

    let av = view(&a, c.la, m, k);
    let bv = view(&b, c.lb, k, n);
    for i in 0..m {
        for (j, bias_j) in bias.iter().enumerate() {
            let idx = i * crs + j * ccs;
            let mut scale = 1.0f32;
            for p in 0..k {
                scale += (c.alpha * av.at(i, p) * bv.at(p, j)).abs();
            }
            if c.beta != 0.0 {
                scale += (c.beta * c0[idx]).abs();
            }
            if c.bias {
                scale += bias_j.abs();
            }
            let tol = 1e-6 * (k as f32 + 4.0) * scale * if c.mask { 2.0 } else { 1.0 };
            let (g, w) = (got[idx], want[idx]);
            assert!(
                g.is_finite() && (g - w).abs() <= tol,
                "{} {:?}: C[{i},{j}] = {g}, reference {w} (tol {tol})",
                isa.name(),
                c
            );
        }
    }
    // Elements outside the C view (padding) are untouched.
    let mut inside = vec![false; lc_len];
    for i in 0..m {
        for j in 0..n {
            inside[i * crs + j * ccs] = true;
        }
    }
    for (idx, (&g, &w)) in got.iter().zip(&c0).enumerate() {
        if !inside[idx] {
            assert!(g.to_bits() == w.to_bits(), "{} {:?}: wrote outside C at {idx}", isa.name(), c);
        }
    }
    got
}

fn cview(data: &mut [f32], l: Layout, rows: usize, cols: usize) -> MatMut<'_> {
    let (_, rs, cs) = geometry(l, rows, cols);
    MatMut::strided(data, rows, cols, rs, cs)
}

fn isas() -> Vec<Isa> {
    let v = available_isas();
    let names: Vec<&str> = v.iter().map(|i| i.name()).collect();
    eprintln!(
        "gemm tests ran ISA paths: {} (AVX-512 reads a reused row-major B in place and takes DEEP_KC blocks: {})",
        names.join(", "),
        if half_width_avx512() { "yes, Zen 4" } else { "no" }
    );
    v
}

#[test]
fn all_small_sizes_every_isa() {
    for isa in isas() {
        let mut v = 0;
        for m in 0..20 {
            for n in 0..20 {
                for k in 0..20 {
                    let mut c = variant(Case::new(m, n, k), v);
                    // Cycle layouts too, so every edge combo meets several.
                    c.la = LAYOUTS[v % 4];
                    c.lb = LAYOUTS[(v / 4) % 4];
                    c.lc = LAYOUTS[(v / 16) % 4];
                    if c.lc == Layout::Trans {
                        c.lc = Layout::RowMajor;
                    }
                    check(isa, c);
                    v += 1;
                }
            }
        }
    }
}

#[test]
fn every_layout_and_epilogue() {
    let lcs = [Layout::RowMajor, Layout::Padded, Layout::General];
    for isa in isas() {
        for (s, &(m, n, k)) in [(17, 37, 9), (9, 70, 33), (40, 10, 100)].iter().enumerate() {
            for la in LAYOUTS {
                for lb in LAYOUTS {
                    for (ci, &lc) in lcs.iter().enumerate() {
                        for v in 0..VARIANTS {
                            if (v + ci + s) % 3 != 0 && v != 0 && v != 3 {
                                continue;
                            }
                            let c = Case { la, lb, lc, ..variant(Case::new(m, n, k), v) };
                            check(isa, c);
                        }
                    }
                }
            }
        }
        // A transposed C view (scratch tile path).
        for v in 0..VARIANTS {
            check(isa, Case { lc: Layout::Trans, ..variant(Case::new(13, 21, 7), v) });
        }
    }
}

#[test]
fn odd_sizes_and_block_boundaries() {
    let odd = [1, 33, 67, 129, 257];
    for isa in isas() {
        let mut v = 0;
        for &m in &odd {
            for &n in &odd {
                for &k in &[1, 67, 257] {
                    if m * n * k > 257 * 67 * 67 {
                        continue;
                    }
                    check(isa, variant(Case::new(m, n, k), v));
                    v += 1;
                }
            }
        }
        // Crossing MC (rows), KC (depth, several blocks, with β and epilogue
        // only on the last), NC (columns) and mixed.
        check(isa, variant(Case::new(MC + 5, 40, 20), 2));
        check(isa, variant(Case::new(20, 40, 2 * KC + 3), 6));
        check(isa, variant(Case::new(20, 40, KC), 11));
        // The mask applies once, after the last KC block.
        check(isa, variant(Case::new(20, 40, 2 * KC + 3), 8));
        check(isa, variant(Case::new(MC + 5, 40, KC + 1), 9));
        // Both operands read in place: k blocks of DIRECT_KC.
        check(isa, variant(Case::new(20, 40, super::driver::DIRECT_KC + 3), 6));
        check(isa, variant(Case::new(9, 100, 2 * super::driver::DIRECT_KC + 1), 4));
        check(isa, variant(Case::new(3, NC + 21, 5), 2));
        // m > 32 across NC, the last block a merged panel with an
        // interleaved tail (36 = 32 + 4 columns, k ≥ 16): B packed (aliased
        // rows; also row-major on AVX2 and portable) or read in place.
        for lb in [Layout::RowMajor, Layout::Aliased] {
            check(isa, Case { lb, ..variant(Case::new(40, NC + 36, 20), 6) });
            check(isa, Case { lb, ..variant(Case::new(MC + 5, 2 * NC + 7, KC + 3), 4) });
        }
        check(isa, Case { la: Layout::Trans, lb: Layout::General, ..variant(Case::new(MC + 9, 70, KC + 1), 3) });
        check(isa, Case { la: Layout::General, lb: Layout::Trans, ..variant(Case::new(70, 200, KC + 1), 5) });
        // A packed although it has a unit stride: wide C with a row-major A
        // whose rows alias (row stride 4 KiB), or a transposed A.
        // (k = 1023: a 4 × 4-blocked row pack with a partial last block.)
        check(isa, Case { la: Layout::Aliased, ..variant(Case::new(MC + 5, 140, 1023), 2) });
        check(isa, Case { la: Layout::Aliased, ..variant(Case::new(21, 150, 3 * KC + 2), 8) });
        check(isa, Case { la: Layout::Trans, ..variant(Case::new(37, 150, 70), 6) });
        // Wide, deep blocks run LOOP 1 outside LOOP 2 (8+ column panels,
        // kc ≥ 128): edge rows, a merged or partial last panel, two k blocks
        // (the epilogue on the last; one DEEP_KC block where an operand is
        // packed on Zen 4's AVX-512), rows crossing MC, both A forms.
        check(isa, variant(Case::new(37, 300, KC + 7), 6));
        check(isa, variant(Case::new(37, 300, KC + 7), 8));
        check(isa, Case { lb: Layout::Aliased, ..variant(Case::new(37, 300, KC + 7), 7) });
        check(isa, Case { la: Layout::Aliased, lb: Layout::Aliased, ..variant(Case::new(MC + 5, 300, KC + 7), 1) });
        check(isa, Case { la: Layout::Trans, ..variant(Case::new(MC + 5, 270, 130), 10) });
        check(isa, Case { la: Layout::Aliased, ..variant(Case::new(19, 520, 129), 5) });
        // Wide blocks with a packed operand take k in DEEP_KC blocks and rows
        // in DEEP_MC parts on Zen 4's AVX-512 (`Kernel::DEEP_KC`): two k
        // blocks (β and the epilogue on the last), rows crossing DEEP_MC, B
        // packed (aliased rows or transposed) or A packed (aliased rows).
        use super::driver::{DEEP_KC, DEEP_MC};
        check(isa, Case { lb: Layout::Aliased, ..variant(Case::new(DEEP_MC + 5, 260, DEEP_KC + 7), 6) });
        check(isa, Case { lb: Layout::Trans, ..variant(Case::new(DEEP_MC + 5, 300, DEEP_KC + 7), 8) });
        check(isa, Case { la: Layout::Aliased, ..variant(Case::new(2 * DEEP_MC + 3, 270, DEEP_KC + 1), 11) });
        // A row-major B with rows 2 KiB apart (512 columns) is packed on
        // every path once m > 32 (`B_ALIAS_BYTES`), except on Zen 4's
        // AVX-512 up to 512 rows (`ALIASED_B_MAX_M`): one k block and two.
        check(isa, variant(Case::new(DEEP_MC + 5, 512, KC + 9), 2));
        check(isa, variant(Case::new(40, 512, DEEP_KC + 3), 10));
        check(isa, variant(Case::new(520, 512, KC + 9), 1));
    }
}

#[test]
fn a_packed_by_first_tiles() {
    // A row-major A whose rows alias (so the driver packs it) in blocks that
    // run LOOP 1 outside LOOP 2 (8+ column panels, kc ≥ 128): on AVX-512
    // and AVX2 the first tile of each whole row panel packs its rows as it
    // runs (`Kernel::FUSED_PACK_A`), and the panel's other tiles read what
    // it wrote, so every column of C past the first panel checks A~. Every
    // k % 4, one and several row panels with or without a partial last one
    // (m = 6, 8: one whole panel on AVX2 and AVX-512), rows crossing MC and
    // DEEP_MC, two k blocks, a last panel merged (300) or not (256), every
    // epilogue, NaN-prefilled C. The portable path runs the same cases.
    use super::driver::{DEEP_KC, DEEP_MC};
    for isa in isas() {
        let mut v = 0;
        for &m in &[6, 8, 13, DEEP_MC + 5, MC + 3] {
            for &k in &[128, 129, 130, 131] {
                for &n in &[256, 300] {
                    check(isa, Case { la: Layout::Aliased, ..variant(Case::new(m, n, k), v) });
                    v += 1;
                }
            }
        }
        check(isa, Case { la: Layout::Aliased, ..variant(Case::new(DEEP_MC + 5, 260, DEEP_KC + 3), 6) });
        check(isa, Case { la: Layout::Aliased, ..variant(Case::new(MC + 3, 270, 2 * KC + 2), 8) });
        check(isa, Case { la: Layout::Aliased, lb: Layout::Aliased, ..variant(Case::new(21, 520, 2 * KC + 1), 11) });
    }
}

#[test]
fn column_groups() {
    // Rows-outer blocks whose B~ exceeds half the L2 run LOOP 1 over column
    // groups (`kernel::rows_outer_group`): LOOP 1 over the first group's
    // panels, then the next group's, each A~ sliver read again per group.
    // Groups of 4 panels where B is read in place. A partial last group, a
    // merged last panel (548 = 17·32 + 4 on AVX-512), k % 4 = 3, one or
    // two k blocks, partial and several row panels, A read in place or
    // packed (by the first group's first tiles when its rows alias, or
    // transposed), B packed or (on Zen 4's AVX-512) in place.
    use super::kernel::{rows_outer_group, rows_outer_group_bytes, ROWS_OUTER_PANELS};
    use Layout::*;
    // Groups hold half this CPU's L2: shapes one group's B~ (at depth KC)
    // plus 36 columns wide (548 with a 1 MiB L2), one or two k blocks deep,
    // then fixed ones measured on Zen 4.
    let group = rows_outer_group_bytes();
    let wide = group / (KC * 4) + 36;
    let shapes = [(wide, KC), (wide, 2 * KC - 1), (548, 512), (544, 511), (600, 300)];
    // Every kernel's NR (portable 8, AVX2 16, AVX-512 32) splits the
    // L2-sized shapes into groups, wherever ROWS_OUTER_PANELS of its panels
    // fit in one (AVX-512's do on any L2 of 512 KiB or more).
    for nr in [8, 16, 32] {
        for &(n, _) in &shapes[..2] {
            for b_in_place in [false, true] {
                if b_in_place || group >= ROWS_OUTER_PANELS * KC * nr * 4 {
                    let g = rows_outer_group(n, KC, nr, b_in_place);
                    assert!(g < n, "{n}x{KC} with NR {nr} takes no groups (L2 group {group} bytes)");
                }
            }
        }
    }
    for isa in isas() {
        let mut v = 0;
        for &m in &[8, 13, super::driver::DEEP_MC + 5] {
            for &(n, k) in &shapes {
                for (la, lb) in [(RowMajor, RowMajor), (Aliased, Aliased), (Trans, Aliased), (RowMajor, Aliased)] {
                    check(isa, Case { la, lb, ..variant(Case::new(m, n, k), v) });
                    v += 1;
                }
            }
        }
        // B rows 2 KiB apart: read in place up to 512 rows on Zen 4's
        // AVX-512 (groups of 4 panels), packed past them (groups of 8).
        for m in [53, 512, 520] {
            check(isa, variant(Case::new(m, 512, 511), v));
            v += 1;
        }
    }
}

#[test]
fn interleaved_tails() {
    // A last panel whose last vector has at most LANES / IL columns (n = 4,
    // 20, 36, 68, 100 on AVX-512; also 10 and 12 on AVX2) runs the
    // interleaved-tail tiles once k reaches IL_MIN_KC (16). A~ by rows: k in
    // chunks of IL with every k % 4 and a partial last chunk; column panels
    // (a transposed A, or packed: the aliased rows): IL-row groups with a
    // partial last one (m = 1, 3, 13). B read in place or packed (m = 33:
    // aliased rows on every path, row-major too off Zen 4's AVX-512), in
    // every layout; every epilogue, NaN-prefilled C.
    let las = [Layout::RowMajor, Layout::Trans, Layout::Padded, Layout::Aliased];
    for isa in isas() {
        let mut v = 0;
        assert_eq!(super::driver::IL_MIN_KC, 16);
        for &n in &[4, 20, 36, 68, 100, 10, 12] {
            for &k in &[15, 16, 17, 18, 19, 20, 35, 101] {
                for &m in &[1, 3, 8, 13, 33] {
                    for la in las {
                        let lb = B_LAYOUTS[v % 5];
                        let lc = [Layout::RowMajor, Layout::Padded, Layout::General][(v / 4) % 3];
                        check(isa, Case { la, lb, lc, ..variant(Case::new(m, n, k), v) });
                        v += 1;
                    }
                }
            }
        }
        // Several k blocks (the tail packed per block, the epilogue on the
        // last), and rows crossing MC, in both A forms.
        for la in [Layout::RowMajor, Layout::Trans] {
            check(isa, Case { la, ..variant(Case::new(40, 100, 2 * KC + 3), 6) });
            check(isa, Case { la, ..variant(Case::new(MC + 5, 36, KC + 10), 8) });
            check(isa, Case { la, ..variant(Case::new(9, 100, 2 * super::driver::DIRECT_KC + 1), 4) });
        }
    }
}

#[test]
fn shallow_tiles() {
    // 16 ≤ k < 64 with C wider than 32 columns (up to KC with a transposed
    // A and C ≤ 128 wide) runs `Avx512Shallow` on AVX-512: 48-wide panels,
    // a remainder of up to 4 columns joined to the last whole panel as an
    // interleaved tail (52 = 48 + 4, 100 = 48 + 52), wider remainders as
    // their own panel (53 = 48 + 5, 148 = 3 · 48 + 4 joined, 1024 = 21 · 48
    // + 16 in an NC part). Every k edge of the range, B read in place or
    // packed (m > 32 with aliased rows, or off Zen 4's AVX-512), A by rows
    // or in column panels, every epilogue, NaN-prefilled C; the other paths
    // run the same cases.
    use super::driver::runs_shallow;
    assert!(runs_shallow(100, 32, false) && runs_shallow(33, 16, false) && runs_shallow(100, 63, false));
    assert!(!runs_shallow(100, 15, false) && !runs_shallow(100, 64, false) && !runs_shallow(32, 32, true));
    // A transposed A (the weight gradients' Xᵀ) up to KC deep, C ≤ 128 wide.
    assert!(runs_shallow(100, KC, true) && !runs_shallow(100, KC + 1, true) && !runs_shallow(129, 64, true));
    let las = [Layout::RowMajor, Layout::Trans, Layout::Padded, Layout::Aliased];
    for isa in isas() {
        let mut v = 0;
        for &n in &[33, 47, 48, 49, 52, 53, 96, 100, 101, 148] {
            for &k in &[16, 17, 32, 63, 64, 129] {
                for &m in &[1, 8, 9, 32, 33, 70] {
                    let la = las[v % 4];
                    let lb = B_LAYOUTS[(v / 4) % 5];
                    let lc = [Layout::RowMajor, Layout::Padded, Layout::General][(v / 16) % 3];
                    check(isa, Case { la, lb, lc, ..variant(Case::new(m, n, k), v) });
                    v += 1;
                }
            }
        }
        // Across NC: a 1024-wide part (21 panels and a 16-column one), then
        // a joined 52.
        check(isa, variant(Case::new(40, NC + 52, 32), 6));
        check(isa, Case { la: Layout::Trans, ..variant(Case::new(20, NC + 52, 20), 8) });
    }
}

#[test]
fn mlp_shapes() {
    // (m, n, k) as the Dense layers call them, for batches 32, 128, 256
    // (256 on the fastest path only, to keep the oracle's time down).
    for (ii, isa) in isas().into_iter().enumerate() {
        for &batch in &[32, 128, 256] {
            if batch == 256 && ii > 0 {
                continue;
            }
            let fwd1 = Case { bias: true, act: Activation::Relu, ..Case::new(batch, 100, 784) };
            let fwd1_dropout = Case { mask: true, ..fwd1 };
            let fwd2 = Case { bias: true, ..Case::new(batch, 10, 100) };
            let dw1 = Case { la: Layout::Trans, ..Case::new(784, 100, batch) };
            let dw2 = Case { la: Layout::Trans, ..Case::new(100, 10, batch) };
            let dx2 = Case { lb: Layout::Trans, ..Case::new(batch, 100, 10) };
            let dx1 = Case { lb: Layout::Trans, ..Case::new(batch, 784, 100) };
            for c in [fwd1, fwd1_dropout, fwd2, dw1, dw2, dx2, dx1] {
                check(isa, c);
            }
        }
        check(isa, Case { bias: true, act: Activation::Sigmoid, ..Case::new(32, 100, 784) });
    }
}

#[test]
fn threads_give_bit_identical_results() {
    let pool = |t| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
    let (p1, p2) = (pool(1), pool(2));
    // Above PAR_MIN_FLOPS: a row split (m large) and a column split (m small),
    // the latter also with a merged last panel (708 = 22·32 + 4).
    let shapes = [
        (64, 100, 784, Layout::RowMajor, Layout::RowMajor),
        // Six KC blocks: two groups of the row split (see `gemm`'s LOOP 4).
        (64, 100, 5 * KC + 20, Layout::RowMajor, Layout::RowMajor),
        // Wide, deep, A packed (transposed), B packed (aliased rows) or read
        // in place: DEEP_KC blocks on Zen 4's AVX-512, a group each when B
        // is packed.
        (64, 300, super::driver::DEEP_KC + 20, Layout::Trans, Layout::Aliased),
        (64, 300, super::driver::DEEP_KC + 20, Layout::Trans, Layout::RowMajor),
        (8, 700, 784, Layout::RowMajor, Layout::RowMajor),
        (8, 708, 784, Layout::RowMajor, Layout::RowMajor),
        // A packed by the blocks' first tiles (aliased rows, wide blocks):
        // a row split and a column split.
        (64, 300, super::driver::DEEP_KC + 20, Layout::Aliased, Layout::RowMajor),
        (8, 700, 784, Layout::Aliased, Layout::RowMajor),
        // Column groups in each task's blocks (B~ past half the L2).
        (64, 548, 512, Layout::RowMajor, Layout::Aliased),
        (128, 512, 511, Layout::RowMajor, Layout::RowMajor),
        (784, 100, 64, Layout::Trans, Layout::RowMajor),
        // The split thin kernel's row split (n = 10, A by rows).
        (512, 10, 832, Layout::RowMajor, Layout::RowMajor),
        // Shallow products on AVX-512 (8 × 48 tiles): a row split, and a
        // column split over 16 NC parts and a joined last panel (48 + 4).
        (2048, 100, 32, Layout::Trans, Layout::RowMajor),
        (8, 16 * NC + 52, 32, Layout::RowMajor, Layout::RowMajor),
    ];
    for isa in isas() {
        for &(m, n, k, la, lb) in &shapes {
            assert!(2 * m * n * k >= PAR_MIN_FLOPS);
            let c = Case { la, lb, bias: true, act: Activation::Relu, mask: m < 784, ..Case::new(m, n, k) };
            let one = p1.install(|| check(isa, c));
            let two = p2.install(|| check(isa, c));
            assert!(
                one.iter().zip(&two).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{}: 1 and 2 threads differ on {m}x{n}x{k}",
                isa.name()
            );
        }
    }
}

#[test]
fn isa_selection() {
    let v = available_isas();
    assert!(v.contains(&Isa::Portable));
    assert!(!v.contains(&Isa::Reference));
    assert!(selected_isa().is_available());
    for isa in [Isa::Avx512, Isa::Avx2, Isa::Portable, Isa::Reference] {
        assert_eq!(Isa::from_name(isa.name()), Some(isa));
    }
    assert_eq!(Isa::from_name("nope"), None);
    // The reference path through sgemm_with agrees with the oracle.
    check(Isa::Reference, variant(Case::new(5, 6, 7), 6));
}

#[test]
fn lane_ceiling_matches_the_kernels() {
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(Isa::Avx512.lanes(), 16);
        assert_eq!(Isa::Avx2.lanes(), 8);
    }
    assert_eq!(Isa::Portable.lanes(), 8);
    // The tutorial's widths: 100 columns take 6 × 16 lanes and an
    // interleaved tail of 4 columns × 4 k; 10 take one vector on AVX-512
    // with a transposed A (Hᵀ·dY), all their lanes with A by rows (the split
    // kernel, k ≥ 16), one vector and a tail of 2 (of 4) columns × 2 k on
    // AVX2.
    assert_eq!(Isa::Avx512.lane_ceiling(100, 100, true), 1.0);
    assert_eq!(Isa::Avx512.lane_ceiling(100, 100, false), 1.0);
    assert!((Isa::Avx512.lane_ceiling(10, 100, false) - 10.0 / 16.0).abs() < 1e-12);
    assert_eq!(Isa::Avx512.lane_ceiling(10, 100, true), 1.0);
    assert!((Isa::Avx512.lane_ceiling(9, 100, true) - 0.9).abs() < 1e-12);
    assert!((Isa::Avx512.lane_ceiling(10, 15, true) - 10.0 / 16.0).abs() < 1e-12);
    assert_eq!(Isa::Avx512.lane_ceiling(NC + 10, 100, true), 1.0);
    assert_eq!(Isa::Avx2.lane_ceiling(100, 100, true), 1.0);
    assert!((Isa::Avx2.lane_ceiling(10, 100, true) - 10.0 / 12.0).abs() < 1e-12);
    // A tail wider than LANES / IL is a plain vector: 56 = 48 + 8.
    assert!((Isa::Avx512.lane_ceiling(56, 100, true) - 56.0 / 64.0).abs() < 1e-12);
    assert_eq!(Isa::Portable.lane_ceiling(100, 100, true), 100.0 / 104.0);
    // Too shallow for interleaved tails (k < IL_MIN_KC): plain vectors.
    assert!((Isa::Avx512.lane_ceiling(100, 10, true) - 100.0 / 112.0).abs() < 1e-12);
    assert_eq!(Isa::Avx512.lane_ceiling(256, 100, true), 1.0);
    assert_eq!(Isa::Reference.lane_ceiling(7, 100, true), 1.0);
    assert_eq!(Isa::Portable.lane_ceiling(0, 100, true), 1.0);
}

#[test]
fn split_thin_tiles() {
    // C 9 or 10 wide with A read by rows (row-major or padded) and unit
    // column stride runs the split thin kernel on AVX-512 once k ≥
    // SPLIT_MIN_K (16). Around it: k in chunks of eight with every k % 8 (a
    // last odd pair), tiles of 8 rows with every partial height, several
    // KC blocks (the last one value deep: 2·KC + 1), B packed by shuffles
    // (unit column stride) or value by value (the others); every epilogue,
    // NaN-prefilled C. A transposed A or a C without unit column stride
    // takes the plain kernels, checked alongside.
    #[cfg(target_arch = "x86_64")]
    {
        use super::driver::{runs_split, SPLIT_MIN_K};
        use super::kernel::{Avx2, Avx512};
        assert_eq!(SPLIT_MIN_K, 16);
        assert!(runs_split::<Avx512>(10, 16, true, true) && runs_split::<Avx512>(9, 100, true, true));
        assert!(!runs_split::<Avx512>(10, 15, true, true));
        assert!(!runs_split::<Avx512>(11, 100, true, true) && !runs_split::<Avx512>(8, 100, true, true));
        assert!(!runs_split::<Avx512>(10, 100, false, true) && !runs_split::<Avx512>(10, 100, true, false));
        assert!(!runs_split::<Avx2>(10, 100, true, true));
    }
    let mut v = 0;
    for isa in isas() {
        for &n in &[9, 10] {
            for &k in &[15, 16, 17, 19, 23, 24, 25, 31, 100, 2 * KC + 1] {
                for &m in &[1, 5, 8, 9, 15, 16, 32, 33] {
                    let la = [Layout::RowMajor, Layout::Padded, Layout::Trans][v % 3];
                    let lb = LAYOUTS[(v / 3) % 4];
                    let lc = [Layout::RowMajor, Layout::Padded, Layout::General][(v / 12) % 3];
                    check(isa, Case { la, lb, lc, ..variant(Case::new(m, n, k), v) });
                    v += 1;
                }
            }
        }
        // A contiguous 10-wide B (rows back to back) packs whole chunks
        // from plain loads (`split::pack`'s dense path): every k above,
        // with the last partial chunk and past-KC blocks. Up to KC deep and
        // MC tall, one block on one thread (`driver::split_small`), B~ on
        // the stack; one past either edge, the general driver.
        for &k in &[16, 17, 23, 24, 25, 31, 100, KC, KC + 1, 2 * KC + 1] {
            for &m in &[7, 33, MC, MC + 1] {
                let la = [Layout::RowMajor, Layout::Padded][v % 2];
                check(isa, Case { la, lb: Layout::RowMajor, ..variant(Case::new(m, 10, k), v) });
                v += 1;
            }
        }
        // Past NC: the last part is 10 (9) wide.
        check(isa, variant(Case::new(33, NC + 10, 40), 2));
        check(isa, Case { lb: Layout::Trans, ..variant(Case::new(9, NC + 9, 20), 8) });
    }
}

#[test]
fn fma_peak_is_positive() {
    let g = fma_peak_gflops(std::time::Duration::from_millis(20));
    assert!(g.is_finite() && g > 0.5, "peak {g}");
}

#[test]
fn fma_peak_over_long_windows_is_positive() {
    let g = super::fma_peak_gflops_over(std::time::Duration::from_millis(1), std::time::Duration::from_millis(30));
    assert!(g.is_finite() && g > 0.5, "peak {g}");
}

#[test]
#[should_panic(expected = "sgemm")]
fn shape_mismatch_panics() {
    let a = vec![0.0; 6];
    let b = vec![0.0; 6];
    let mut c = vec![0.0; 4];
    sgemm(
        1.0,
        MatRef::row_major(&a, 2, 3),
        MatRef::row_major(&b, 2, 3),
        0.0,
        MatMut::row_major(&mut c, 2, 2),
        Epilogue::default(),
    );
}

#[test]
fn sigmoid_epilogue_matches_libm_on_every_isa() {
    // k = 0 and β = 1: C = sigmoid(C), the epilogue alone, over the whole
    // range of inputs (saturated ends, around 0, exact integers, NaN).
    let xs: Vec<f32> = (0..1200)
        .map(|i| -120.0 + i as f32 * 0.2)
        .chain((0..300).map(|i| (i as f32 - 150.0) * 1e-3))
        .chain([0.0, -0.0, 88.0, -88.0, 87.3, -87.3, 1e-30, f32::MAX, f32::MIN, f32::NAN])
        .collect();
    let (m, n) = (3, xs.len() / 3);
    for isa in isas() {
        let mut c = xs[..m * n].to_vec();
        let (a, b) = (vec![0.0f32; 0], vec![0.0f32; 0]);
        let epi = Epilogue { act: Activation::Sigmoid, ..Epilogue::default() };
        sgemm_with(
            isa,
            1.0,
            MatRef::row_major(&a, m, 0),
            MatRef::row_major(&b, 0, n),
            1.0,
            MatMut::row_major(&mut c, m, n),
            epi,
        );
        for (&x, &got) in xs.iter().zip(&c) {
            let want = Activation::Sigmoid.apply(x);
            if x.is_nan() {
                assert!(got.is_nan(), "{}: sigmoid(NaN) = {got}", isa.name());
                continue;
            }
            // Relative error a few ulp; below the smallest normal, absolute.
            let tol = 4.0 * f32::EPSILON * want + 1e-38;
            assert!((got - want).abs() <= tol, "{}: sigmoid({x}) = {got}, libm gives {want}", isa.name());
        }
    }
}
