//! Device and dtype selection from user-facing strings.

use tch::{Device, Kind};

use capstream::error::{Error, Result};
use capstream::stages::DeviceName;

/// Parses `auto`, `cpu`, `cuda` or `cuda:N` ([`DeviceName`]'s grammar). `auto` picks
/// CUDA 0 when libtorch sees a GPU; a CUDA device libtorch does not see is an error.
pub fn parse_device(s: &str) -> Result<Device> {
    match DeviceName::parse(s)? {
        DeviceName::Auto => Ok(Device::cuda_if_available()),
        DeviceName::Cpu => Ok(Device::Cpu),
        DeviceName::Cuda(n) => cuda(n),
    }
}

fn cuda(n: usize) -> Result<Device> {
    let count = tch::Cuda::device_count() as usize;
    if n >= count {
        return Err(Error::Config(format!(
            "device cuda:{n} requested but libtorch sees {count} CUDA device(s) (see `capstream doctor`)"
        )));
    }
    Ok(Device::Cuda(n))
}

/// Parses `f32`, `f16` or `bf16`. f16 is refused on CPU, where libtorch lacks kernels
/// for some layers (`slow_conv2d_cpu not implemented for 'Half'`); bf16 runs there
/// (oneDNN's bf16 GEMMs, about 2.5x the f32 throughput on CPUs with AVX512-BF16).
pub fn parse_dtype(s: &str, device: Device) -> Result<Kind> {
    let kind = match s {
        "f32" | "float32" => Kind::Float,
        "f16" | "float16" => Kind::Half,
        "bf16" | "bfloat16" => Kind::BFloat16,
        other => {
            return Err(Error::Config(format!(
                "dtype {other:?}: expected f32, f16 or bf16"
            )))
        }
    };
    if kind == Kind::Half && device == Device::Cpu {
        return Err(Error::Config(format!(
            "dtype {s} needs a CUDA device; use f32 or bf16 on CPU"
        )));
    }
    Ok(kind)
}
