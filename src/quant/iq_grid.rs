//! The IQ quantizers' lattices: grid points, the map from a quantized point to its grid index,
//! and for points off the grid the list of nearest grid points. Built lazily, once per
//! process, exactly as ggml's `iq2xs_init_impl` / `iq3xs_init_impl` build them (same neighbour
//! sets, same order: by squared distance, then by grid index).
// Index loops mirror the reference line for line, which keeps the port checkable.
#![allow(clippy::needless_range_loop)]

use std::sync::OnceLock;

use rayon::prelude::*;

use super::iq_tables::{
    KGRID_IQ1S, KGRID_IQ2S, KGRID_IQ2XS, KGRID_IQ2XXS, KGRID_IQ3S, KGRID_IQ3XXS,
};

/// The neighbour lists again, laid out for an 8-wide SIMD scan: each list in steps of eight
/// neighbours, coordinate-major within a step (`coords[at + 8·(N·step + i) + lane]` is
/// coordinate `i` of neighbour `8·step + lane`), zero past the list's end. A scan then loads
/// coordinates straight from memory instead of gathering and unpacking grid points.
#[derive(Debug)]
pub struct NeighbourRows {
    /// Per packed point: `[offset into coords, neighbour count]` (`[0, 0]` on the grid).
    pub at: Vec<[u32; 2]>,
    /// Coordinates `2l + 1`.
    pub coords: Vec<u8>,
}

/// A lattice of `N`-element points with coordinates `2l + 1`.
#[derive(Debug)]
pub struct Lattice<const N: usize> {
    /// Grid points: coordinate `i` is `2l + 1` for the `l` stored in the packed table.
    pub grid: Vec<[i8; N]>,
    /// For a packed point `u`: its grid index if it is on the grid, else `-(offset + 1)` where
    /// `neighbours[offset]` is the number of neighbours that follow.
    pub map: Vec<i32>,
    /// Neighbour lists (count, then grid indices), concatenated.
    pub neighbours: Vec<u16>,
    /// [`NeighbourRows`], built on first use (only the SIMD searches need them).
    rows: OnceLock<NeighbourRows>,
}

impl<const N: usize> Lattice<N> {
    /// The neighbour list of an off-grid point whose map entry is `m < 0`.
    #[inline(always)]
    pub fn neighbours_of(&self, m: i32) -> &[u16] {
        let off = (-m - 1) as usize;
        let n = usize::from(self.neighbours[off]);
        &self.neighbours[off + 1..off + 1 + n]
    }

    /// The neighbour lists as [`NeighbourRows`].
    pub fn rows(&self) -> &NeighbourRows {
        self.rows.get_or_init(|| {
            let mut at = vec![[0u32; 2]; self.map.len()];
            let mut coords = Vec::new();
            for (u, &m) in self.map.iter().enumerate() {
                if m >= 0 {
                    continue;
                }
                let list = self.neighbours_of(m);
                at[u] = [coords.len() as u32, list.len() as u32];
                for step in list.chunks(8) {
                    for i in 0..N {
                        for lane in 0..8 {
                            coords.push(
                                step.get(lane)
                                    .map_or(0, |&g| self.grid[usize::from(g)][i] as u8),
                            );
                        }
                    }
                }
            }
            NeighbourRows { at, coords }
        })
    }

    /// Builds the lattice from packed points (`bits` bits per coordinate), with neighbour lists
    /// covering the `nwant` smallest distinct distances, for a map of `map_size` entries.
    fn build(packed: &[u16], bits: u32, nwant: usize, map_size: usize) -> Lattice<N> {
        let mask = (1u32 << bits) - 1;
        let grid: Vec<[i8; N]> = packed
            .iter()
            .map(|&p| {
                let mut pos = [0i8; N];
                for (i, c) in pos.iter_mut().enumerate() {
                    let l = (u32::from(p) >> (bits * i as u32)) & mask;
                    *c = (2 * l + 1) as i8;
                }
                pos
            })
            .collect();
        let mut map = vec![-1i32; map_size];
        for (i, g) in grid.iter().enumerate() {
            let mut index = 0usize;
            for (k, &c) in g.iter().enumerate() {
                index |= (((c - 1) / 2) as usize) << (bits as usize * k);
            }
            map[index] = i as i32;
        }
        // For each off-grid point: all grid points at the `nwant` smallest distances, ordered by
        // (distance, index) as ggml's qsort with `iq2_compare_func` orders them.
        let lists: Vec<Vec<u16>> = (0..map_size)
            .into_par_iter()
            .map(|i| {
                if map[i] >= 0 {
                    return Vec::new();
                }
                let mut pos = [0i32; N];
                for (k, p) in pos.iter_mut().enumerate() {
                    *p = 2 * ((i as u32 >> (bits * k as u32)) & mask) as i32 + 1;
                }
                let d2: Vec<i32> = grid
                    .iter()
                    .map(|g| {
                        g.iter()
                            .zip(&pos)
                            .map(|(&a, &b)| (i32::from(a) - b) * (i32::from(a) - b))
                            .sum()
                    })
                    .collect();
                let mut distinct: Vec<i32> = Vec::with_capacity(nwant + 1);
                for &d in &d2 {
                    if distinct.contains(&d) {
                        continue;
                    }
                    let at = distinct.partition_point(|&x| x < d);
                    if at < nwant {
                        distinct.insert(at, d);
                        distinct.truncate(nwant);
                    }
                }
                let mut out = Vec::new();
                for &d in &distinct {
                    out.extend(
                        d2.iter()
                            .enumerate()
                            .filter(|&(_, &x)| x == d)
                            .map(|(j, _)| j as u16),
                    );
                }
                out
            })
            .collect();
        let mut neighbours = Vec::new();
        for (i, list) in lists.iter().enumerate() {
            if map[i] >= 0 {
                continue;
            }
            map[i] = -(neighbours.len() as i32 + 1);
            neighbours.push(list.len() as u16);
            neighbours.extend_from_slice(list);
        }
        Lattice {
            grid,
            map,
            neighbours,
            rows: OnceLock::new(),
        }
    }
}

/// Map size of the 2-bit lattices (`kmap_size` in `iq2xs_init_impl`).
const MAP2: usize = 43692;
/// Map size of the 3-bit lattices.
const MAP3: usize = 4096;

/// IQ2_XXS: 256 points, 2 neighbour distances.
pub fn iq2xxs() -> &'static Lattice<8> {
    static L: OnceLock<Lattice<8>> = OnceLock::new();
    L.get_or_init(|| Lattice::build(&KGRID_IQ2XXS, 2, 2, MAP2))
}

/// IQ2_XS: 512 points, 2 neighbour distances.
pub fn iq2xs() -> &'static Lattice<8> {
    static L: OnceLock<Lattice<8>> = OnceLock::new();
    L.get_or_init(|| Lattice::build(&KGRID_IQ2XS, 2, 2, MAP2))
}

/// IQ2_S: 1024 points, 1 neighbour distance.
pub fn iq2s() -> &'static Lattice<8> {
    static L: OnceLock<Lattice<8>> = OnceLock::new();
    L.get_or_init(|| Lattice::build(&KGRID_IQ2S, 2, 1, MAP2))
}

/// IQ1_S and IQ1_M: 2048 points, 3 neighbour distances.
pub fn iq1s() -> &'static Lattice<8> {
    static L: OnceLock<Lattice<8>> = OnceLock::new();
    L.get_or_init(|| Lattice::build(&KGRID_IQ1S, 2, 3, MAP2))
}

/// IQ3_XXS: 256 points of 4 coordinates, 2 neighbour distances.
pub fn iq3xxs() -> &'static Lattice<4> {
    static L: OnceLock<Lattice<4>> = OnceLock::new();
    L.get_or_init(|| Lattice::build(&KGRID_IQ3XXS, 3, 2, MAP3))
}

/// IQ3_S: 512 points of 4 coordinates, 3 neighbour distances.
pub fn iq3s() -> &'static Lattice<4> {
    static L: OnceLock<Lattice<4>> = OnceLock::new();
    L.get_or_init(|| Lattice::build(&KGRID_IQ3S, 3, 3, MAP3))
}

#[cfg(test)]
mod tests {
    use super::super::iq_tables::*;
    use super::*;
    use sha2::{Digest, Sha256};

    fn sha<T: Copy>(v: &[T], bytes: impl Fn(T) -> Vec<u8>) -> String {
        let mut h = Sha256::new();
        for &x in v {
            h.update(bytes(x));
        }
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    }

    #[test]
    fn tables_match_the_reference_digests() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/quant_imatrix/iq_tables.json"
        );
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let want = |k: &str| j["sha256"][k].as_str().unwrap().to_string();
        let u8s = |x: u8| vec![x];
        let i8s = |x: i8| vec![x as u8];
        let u16s = |x: u16| x.to_le_bytes().to_vec();
        let u32s = |x: u32| x.to_le_bytes().to_vec();
        let u64s = |x: u64| x.to_le_bytes().to_vec();
        assert_eq!(sha(&KMASK_IQ2XS, u8s), want("KMASK_IQ2XS"));
        assert_eq!(sha(&KSIGNS_IQ2XS, u8s), want("KSIGNS_IQ2XS"));
        assert_eq!(sha(&KVALUES_IQ4NL, i8s), want("KVALUES_IQ4NL"));
        assert_eq!(sha(&IQ2XXS_GRID, u64s), want("IQ2XXS_GRID"));
        assert_eq!(sha(&IQ2XS_GRID, u64s), want("IQ2XS_GRID"));
        assert_eq!(sha(&IQ2S_GRID, u64s), want("IQ2S_GRID"));
        assert_eq!(sha(&IQ3XXS_GRID, u32s), want("IQ3XXS_GRID"));
        assert_eq!(sha(&IQ3S_GRID, u32s), want("IQ3S_GRID"));
        assert_eq!(sha(&IQ1S_GRID, u64s), want("IQ1S_GRID"));
        assert_eq!(sha(&KGRID_IQ2XXS, u16s), want("KGRID_IQ2XXS"));
        assert_eq!(sha(&KGRID_IQ2XS, u16s), want("KGRID_IQ2XS"));
        assert_eq!(sha(&KGRID_IQ2S, u16s), want("KGRID_IQ2S"));
        assert_eq!(sha(&KGRID_IQ1S, u16s), want("KGRID_IQ1S"));
        assert_eq!(sha(&KGRID_IQ3XXS, u16s), want("KGRID_IQ3XXS"));
        assert_eq!(sha(&KGRID_IQ3S, u16s), want("KGRID_IQ3S"));
    }

    /// The quantizers' packed points and the dequantizers' byte grids come from different
    /// tables; they must describe the same lattice (one level→byte map per grid).
    #[test]
    fn quantizer_and_dequantizer_grids_agree() {
        fn check(packed: &[u16], bytes: &[u64], bits: u32, n: usize) {
            assert_eq!(packed.len(), bytes.len());
            let mut level_to_byte = [None::<u8>; 8];
            for (&p, &g) in packed.iter().zip(bytes) {
                for i in 0..n {
                    let l = ((u32::from(p) >> (bits * i as u32)) & ((1 << bits) - 1)) as usize;
                    let b = (g >> (8 * i)) as u8;
                    match level_to_byte[l] {
                        None => level_to_byte[l] = Some(b),
                        Some(x) => assert_eq!(x, b, "level {l} maps to two bytes"),
                    }
                }
            }
            let used: Vec<i32> = level_to_byte
                .iter()
                .flatten()
                .map(|&b| i32::from(b as i8))
                .collect();
            assert!(used.windows(2).all(|w| w[0] < w[1]), "{used:?}");
        }
        let w32 = |v: &[u32]| v.iter().map(|&x| u64::from(x)).collect::<Vec<_>>();
        check(&KGRID_IQ2XXS, &IQ2XXS_GRID, 2, 8);
        check(&KGRID_IQ2XS, &IQ2XS_GRID, 2, 8);
        check(&KGRID_IQ2S, &IQ2S_GRID, 2, 8);
        check(&KGRID_IQ1S, &IQ1S_GRID, 2, 8);
        check(&KGRID_IQ3XXS, &w32(&IQ3XXS_GRID), 3, 4);
        check(&KGRID_IQ3S, &w32(&IQ3S_GRID), 3, 4);
        // ksigns: the low 7 bits, plus an eighth bit that makes the number of set bits even.
        for (i, &s) in KSIGNS_IQ2XS.iter().enumerate() {
            assert_eq!(usize::from(s & 127), i);
            assert_eq!(s.count_ones() % 2, 0);
        }
        for (i, &m) in KMASK_IQ2XS.iter().enumerate() {
            assert_eq!(m, 1 << i);
        }
    }

    #[test]
    fn lattices_map_every_grid_point_and_give_nearest_neighbours() {
        let l = iq2xxs();
        assert_eq!(l.grid.len(), 256);
        for (i, g) in l.grid.iter().enumerate() {
            let mut u = 0usize;
            for (k, &c) in g.iter().enumerate() {
                u |= (((c - 1) / 2) as usize) << (2 * k);
            }
            assert_eq!(l.map[u], i as i32);
        }
        // An off-grid point's neighbours are sorted by distance, then index, and contain the
        // closest grid point.
        let off = l.map.iter().position(|&m| m < 0).unwrap();
        let ns = l.neighbours_of(l.map[off]);
        assert!(!ns.is_empty());
        let pos: Vec<i32> = (0..8)
            .map(|k| 2 * ((off >> (2 * k)) & 3) as i32 + 1)
            .collect();
        let d = |j: u16| -> i32 {
            l.grid[j as usize]
                .iter()
                .zip(&pos)
                .map(|(&a, &b)| (i32::from(a) - b).pow(2))
                .sum()
        };
        let best = (0..256u16).map(d).min().unwrap();
        assert_eq!(d(ns[0]), best);
        assert!(ns.windows(2).all(|w| (d(w[0]), w[0]) < (d(w[1]), w[1])));
        for lat in [iq3xxs(), iq3s()] {
            assert!(lat.map.iter().filter(|&&m| m >= 0).count() == lat.grid.len());
        }
        assert_eq!(iq1s().grid.len(), 2048);
        assert_eq!(iq2s().grid.len(), 1024);
        assert_eq!(iq2xs().grid.len(), 512);
    }
}
