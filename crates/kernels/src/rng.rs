//! Seeded test inputs: SplitMix64 (from `rand_xoshiro`), whose stream is
//! fixed by its definition, so inputs are the same on every machine.

/// A seeded generator of test values.
#[derive(Clone, Debug)]
pub struct SplitMix64(rand_xoshiro::SplitMix64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        use rand_xoshiro::rand_core::SeedableRng;
        SplitMix64(rand_xoshiro::SplitMix64::seed_from_u64(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        use rand_xoshiro::rand_core::Rng;
        self.0.next_u64()
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }

    /// `n` values uniform in `[lo, hi)`, rounded to `f32` (so the `f64`
    /// reference sees exactly the inputs the kernel sees).
    pub fn f32_values(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi) as f32 as f64).collect()
    }
}
