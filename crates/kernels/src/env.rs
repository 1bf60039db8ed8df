//! Reading this crate's environment variables, and the check binaries run at start-up.
//!
//! The library itself never fails on a bad value: [`crate::backend`] and [`crate::isa`] fall
//! back to their defaults, since a library call has no good place to report it. A mistyped
//! value silently ignored would measure the wrong thing, so binaries call [`check_env`] first
//! and refuse to start.

use crate::backend::{Backend, Backward};
use crate::isa::Isa;

/// A variable this crate reads holds a value it does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value:?} is not a known value (expected one of: {accepted})")]
pub struct EnvError {
    /// The variable, e.g. `PRUNEBENCH_KERNELS`.
    pub var: &'static str,
    /// Its value as set (lossily decoded if not UTF-8).
    pub value: String,
    /// The accepted values, comma-separated.
    pub accepted: &'static str,
}

/// What the environment asks of this crate, each field its default where the variable is unset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvChoice {
    /// From `PRUNEBENCH_KERNELS`.
    pub backend: Backend,
    /// The ceiling from `PRUNEBENCH_ISA` ([`Isa::Avx512`], no ceiling, when unset).
    pub isa_limit: Isa,
    /// Who runs the backward pass of a training step (`PRUNEBENCH_BACKWARD`).
    pub backward: Backward,
}

/// Checks `PRUNEBENCH_KERNELS` and `PRUNEBENCH_ISA`: an error naming the variable, its value and
/// the accepted values if either is set to something unknown (or not UTF-8). Binaries call it at
/// start-up and exit with its message.
pub fn check_env() -> Result<EnvChoice, EnvError> {
    Ok(EnvChoice {
        backend: Backend::from_env()?.unwrap_or(Backend::Ours),
        isa_limit: Isa::from_env()?.unwrap_or(Isa::Avx512),
        backward: Backward::from_env()?.unwrap_or(Backward::Ours),
    })
}

/// `var` parsed by `parse`: `Ok(None)` when unset, an [`EnvError`] when set to a value `parse`
/// refuses.
pub(crate) fn read<T>(
    var: &'static str,
    accepted: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, EnvError> {
    let Some(raw) = std::env::var_os(var) else {
        return Ok(None);
    };
    parse_value(
        var,
        accepted,
        &raw.to_string_lossy(),
        raw.to_str().is_some(),
        parse,
    )
    .map(Some)
}

/// [`read`] on a given value, so tests need not change the process environment (other tests
/// read it concurrently). `utf8` false refuses the value whatever it decoded to.
pub(crate) fn parse_value<T>(
    var: &'static str,
    accepted: &'static str,
    value: &str,
    utf8: bool,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, EnvError> {
    utf8.then(|| parse(value))
        .flatten()
        .ok_or_else(|| EnvError {
            var,
            value: value.to_owned(),
            accepted,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{BACKEND_NAMES, ENV_VAR};
    use crate::isa::{ISA_NAMES, ISA_VAR};

    #[test]
    fn a_mistyped_backend_is_an_error_naming_variable_value_and_choices() {
        let e = parse_value(ENV_VAR, BACKEND_NAMES, "ourz", true, Backend::parse).unwrap_err();
        assert_eq!(
            e.to_string(),
            "PRUNEBENCH_KERNELS=\"ourz\" is not a known value (expected one of: candle, ours)"
        );
        assert_eq!(
            parse_value(ENV_VAR, BACKEND_NAMES, " Ours", true, Backend::parse),
            Ok(Backend::Ours)
        );
        assert_eq!(
            parse_value(ENV_VAR, BACKEND_NAMES, "", true, Backend::parse),
            Err(EnvError {
                var: ENV_VAR,
                value: String::new(),
                accepted: BACKEND_NAMES
            })
        );
    }

    #[test]
    fn a_mistyped_backward_is_an_error_and_known_ones_parse() {
        use crate::backend::{BACKWARD_NAMES, BACKWARD_VAR};
        let e =
            parse_value(BACKWARD_VAR, BACKWARD_NAMES, "oursx", true, Backward::parse).unwrap_err();
        assert_eq!(
            e.to_string(),
            "PRUNEBENCH_BACKWARD=\"oursx\" is not a known value (expected one of: candle, ours)"
        );
        for (value, want) in [("ours", Backward::Ours), (" Candle", Backward::Candle)] {
            assert_eq!(
                parse_value(BACKWARD_VAR, BACKWARD_NAMES, value, true, Backward::parse),
                Ok(want)
            );
        }
    }

    #[test]
    fn a_mistyped_isa_is_an_error_and_known_ones_parse() {
        let e = parse_value(ISA_VAR, ISA_NAMES, "avx3", true, Isa::parse).unwrap_err();
        assert!(
            e.to_string().starts_with("PRUNEBENCH_ISA=\"avx3\" is not"),
            "{e}"
        );
        for (value, want) in [
            ("portable", Isa::Portable),
            ("AVX2", Isa::Avx2),
            ("avx512", Isa::Avx512),
            ("native", Isa::Avx512),
        ] {
            assert_eq!(
                parse_value(ISA_VAR, ISA_NAMES, value, true, Isa::parse),
                Ok(want)
            );
        }
    }

    #[test]
    fn a_value_that_is_not_utf8_is_refused_even_if_it_decodes_to_a_known_one() {
        assert!(parse_value(ENV_VAR, BACKEND_NAMES, "ours", false, Backend::parse).is_err());
    }

    #[test]
    fn every_name_listed_as_accepted_parses() {
        for name in BACKEND_NAMES.split(", ") {
            assert!(
                Backend::parse(name).is_some(),
                "{ENV_VAR}: {name} listed but refused"
            );
        }
        for name in ISA_NAMES.split(", ") {
            assert!(
                Isa::parse(name).is_some(),
                "{ISA_VAR}: {name} listed but refused"
            );
        }
    }
}
