//! Shared by the benches in benches/: their input.

/// `len` incompressible, reproducible bytes (xorshift from `seed`, which
/// must not be 0), with no dependency.
pub fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
