//! The instruction sets the kernels are compiled for, which of them this
//! CPU runs, and tokens that prove it.
//!
//! Every SIMD path takes a token ([`Avx2`] or [`Avx512`]) that only a
//! successful detection makes, so that calling a function compiled with
//! `#[target_feature]` is sound wherever a token is in hand.
//!
//! The kernels a network runs use [`Isa::active`]: the widest instruction
//! set the CPU has, capped by the environment variable `CNN_ISA`
//! (`avx512`, `avx2` or `portable`, read once), so that each path can be
//! tested and measured on a machine that has a wider one:
//!
//! ```sh
//! CNN_ISA=avx2 cargo test --workspace     # every network on the AVX2 kernels
//! CNN_ISA=portable cargo test --workspace # and on the portable ones
//! ```

use std::sync::OnceLock;

/// An instruction set the kernels are compiled for, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust, vectorised by the compiler for the build target.
    Portable,
    /// AVX2 and FMA (x86-64).
    Avx2,
    /// AVX-512F, with AVX2 and FMA (x86-64).
    Avx512,
}

impl Isa {
    /// Every instruction set, narrowest first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

    /// The name `CNN_ISA` takes for it.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// The instruction set named `name` (as [`Isa::name`] writes it).
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|isa| isa.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this CPU runs it.
    pub fn supported(self) -> bool {
        match self {
            Isa::Portable => true,
            Isa::Avx2 => Avx2::detect().is_some(),
            Isa::Avx512 => Avx512::detect().is_some(),
        }
    }

    /// The widest instruction set this CPU runs.
    pub fn widest() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|isa| isa.supported())
            .unwrap_or(Isa::Portable)
    }

    /// What the kernels of a network use: [`Isa::widest`], capped by
    /// `CNN_ISA` when it names one of [`Isa::ALL`] (any other value is
    /// ignored). Decided once per process.
    pub fn active() -> Isa {
        static ACTIVE: OnceLock<Isa> = OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let cap = std::env::var("CNN_ISA")
                .ok()
                .and_then(|name| Isa::from_name(&name));
            let widest = Isa::widest();
            cap.map_or(widest, |cap| cap.min(widest))
        })
    }
}

/// A kernel was asked to run on an instruction set this CPU lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported(pub Isa);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "this CPU does not support the {} kernels", self.0.name())
    }
}

impl std::error::Error for Unsupported {}

/// Proof that the CPU has AVX2 and FMA: only [`Avx2::detect`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct Avx2(());

impl Avx2 {
    /// The token, if this CPU has AVX2 and FMA (the standard library caches
    /// the detection).
    #[inline]
    pub fn detect() -> Option<Avx2> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Some(Avx2(()));
        }
        None
    }
}

/// Proof that the CPU has AVX-512F, AVX2 and FMA: only [`Avx512::detect`]
/// makes one.
#[derive(Debug, Clone, Copy)]
pub struct Avx512(Avx2);

impl Avx512 {
    /// The token, if this CPU has AVX-512F, AVX2 and FMA.
    #[inline]
    pub fn detect() -> Option<Avx512> {
        #[cfg(target_arch = "x86_64")]
        if let Some(avx2) = Avx2::detect() {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Some(Avx512(avx2));
            }
        }
        None
    }

    /// The AVX2 token that AVX-512 implies.
    #[inline]
    pub fn avx2(self) -> Avx2 {
        self.0
    }
}

/// The tokens of [`Isa::active`]: AVX-512 only if it is active, AVX2 if
/// it or a wider set is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Active {
    pub avx2: Option<Avx2>,
    pub avx512: Option<Avx512>,
}

impl Active {
    /// The tokens of [`Isa::active`] (worked out once).
    #[inline]
    pub fn get() -> Active {
        static ACTIVE: OnceLock<Active> = OnceLock::new();
        *ACTIVE.get_or_init(|| Active::of(Isa::active()))
    }

    /// The tokens of `isa`, those this CPU has.
    #[inline]
    pub fn of(isa: Isa) -> Active {
        Active {
            avx2: Avx2::detect().filter(|_| isa >= Isa::Avx2),
            avx512: Avx512::detect().filter(|_| isa >= Isa::Avx512),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_by_width() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
        }
        assert_eq!(Isa::from_name(" AVX2 "), Some(Isa::Avx2));
        assert_eq!(Isa::from_name("sse"), None);
        assert!(Isa::Portable < Isa::Avx2 && Isa::Avx2 < Isa::Avx512);
    }

    #[test]
    fn the_active_set_is_supported_and_tokens_follow_it() {
        let active = Isa::active();
        assert!(active.supported());
        assert!(active <= Isa::widest());
        let tokens = Active::of(Isa::Portable);
        assert!(tokens.avx2.is_none() && tokens.avx512.is_none());
        let tokens = Active::of(Isa::widest());
        assert_eq!(tokens.avx2.is_some(), Isa::widest() >= Isa::Avx2);
        assert_eq!(tokens.avx512.is_some(), Isa::widest() == Isa::Avx512);
    }
}
