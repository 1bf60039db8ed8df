//! The device to compute on, named as `--device` takes it: `cpu`, `cuda` (the first GPU) or
//! `cuda:N`.
//!
//! Naming a device ([`DeviceSpec`], checked when the command line is parsed) is kept apart from
//! opening it ([`DeviceSpec::open`]): a typo is a usage error, while a CUDA device asked of a
//! build without CUDA, or of a machine without that GPU, is found when the command starts.
//!
//! ```
//! use train::device::{DeviceSpec, parse_device};
//!
//! assert!(parse_device("cpu")?.is_cpu());
//! assert_eq!("cuda".parse::<DeviceSpec>()?, DeviceSpec::Cuda(0));
//! assert_eq!("cuda:1".parse::<DeviceSpec>()?.to_string(), "cuda:1");
//! # Ok::<(), train::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use crate::{Error, Result};

/// A device by name, not opened yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU.
    #[default]
    Cpu,
    /// The CUDA GPU of this ordinal (0 for the first).
    Cuda(usize),
}

impl DeviceSpec {
    /// Opens the device: the CPU, or `Device::new_cuda(N)`. A build without candle's CUDA
    /// backend gives [`Error::NoCuda`]; a GPU that cannot be opened, [`Error::CudaDevice`].
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(ordinal) => match Device::new_cuda(ordinal) {
                Ok(device) => Ok(device),
                Err(candle_core::Error::NotCompiledWithCudaSupport) => Err(Error::NoCuda {
                    device: self.to_string(),
                }),
                Err(source) => Err(Error::CudaDevice {
                    device: self.to_string(),
                    source,
                }),
            },
        }
    }

    /// Whether this names the CPU.
    pub fn is_cpu(self) -> bool {
        self == Self::Cpu
    }
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let unknown = || Error::UnknownDevice(text.to_string());
        match text {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => {
                let ordinal = text.strip_prefix("cuda:").ok_or_else(unknown)?;
                // Digits only: `usize::from_str` would take "+1".
                if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(unknown());
                }
                Ok(Self::Cuda(ordinal.parse().map_err(|_| unknown())?))
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(ordinal) => write!(f, "cuda:{ordinal}"),
        }
    }
}

/// Parses and opens a device: `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
pub fn parse_device(text: &str) -> Result<Device> {
    text.parse::<DeviceSpec>()?.open()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for (text, spec, shown) in [
            ("cpu", DeviceSpec::Cpu, "cpu"),
            ("cuda", DeviceSpec::Cuda(0), "cuda:0"),
            ("cuda:0", DeviceSpec::Cuda(0), "cuda:0"),
            ("cuda:3", DeviceSpec::Cuda(3), "cuda:3"),
        ] {
            assert_eq!(text.parse::<DeviceSpec>().unwrap(), spec, "{text}");
            assert_eq!(spec.to_string(), shown);
            assert_eq!(shown.parse::<DeviceSpec>().unwrap(), spec);
        }
        assert_eq!(DeviceSpec::default(), DeviceSpec::Cpu);
    }

    #[test]
    fn cpu_opens_the_cpu() {
        assert!(parse_device("cpu").unwrap().is_cpu());
    }

    #[test]
    fn anything_else_names_the_accepted_forms() {
        for text in [
            "", "gpu", "CPU", "cuda:", "cuda:x", "cuda:-1", "cuda:+1", "cuda0", " cpu", "metal",
        ] {
            let err = parse_device(text).unwrap_err();
            assert!(
                matches!(err, Error::UnknownDevice(ref t) if t == text),
                "{text}: {err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("cpu, cuda or cuda:N"),
                "{text}: the message names the forms: {msg}"
            );
        }
    }

    /// This workspace is built and tested without the `cuda` feature: asking for a GPU must say
    /// so, and how to get a build that has it. (With the feature on, the same call opens the GPU
    /// or says why it cannot.)
    #[test]
    fn cuda_without_the_cuda_build_says_how_to_build_it() {
        if candle_core::utils::cuda_is_available() {
            return;
        }
        for text in ["cuda", "cuda:0", "cuda:1"] {
            let err = parse_device(text).unwrap_err();
            assert!(matches!(err, Error::NoCuda { .. }), "{text}: {err:?}");
            let msg = err.to_string();
            for needle in ["without CUDA", "scripts/build-cuda.sh", "--features cuda"] {
                assert!(msg.contains(needle), "{text}: '{needle}' in: {msg}");
            }
        }
        let msg = parse_device("cuda:1").unwrap_err().to_string();
        assert!(msg.contains("cuda:1"), "names the device asked for: {msg}");
    }
}
