//! Loading checkpoint tensors into a `VarStore`, by name, with shapes checked.
//!
//! `model.safetensors` is memory-mapped and copied tensor by tensor; `pytorch_model.bin`
//! goes through libtorch's pickle reader. Keys in the file that the model does not use
//! are ignored (older files carry buffers such as `position_ids`); a model parameter
//! missing from the file, or with another shape, is an error naming the tensor and both
//! shapes.

use std::path::{Path, PathBuf};

use tch::{nn::VarStore, Kind, Tensor};

use crate::error::{Error, Result};

/// The weights file of a checkpoint folder: safetensors preferred.
pub fn find_weights(dir: &Path) -> Result<PathBuf> {
    for name in ["model.safetensors", "pytorch_model.bin"] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Model {
        path: dir.to_path_buf(),
        message: "no model.safetensors or pytorch_model.bin".into(),
    })
}

fn model_err(path: &Path, message: String) -> Error {
    Error::Model {
        path: path.to_path_buf(),
        message,
    }
}

fn kind_of(d: safetensors::Dtype) -> Option<Kind> {
    Some(match d {
        safetensors::Dtype::F32 => Kind::Float,
        safetensors::Dtype::F16 => Kind::Half,
        safetensors::Dtype::BF16 => Kind::BFloat16,
        safetensors::Dtype::F64 => Kind::Double,
        _ => return None,
    })
}

/// Copies every variable of `vs` from `file`, keeping each variable's dtype and device.
pub fn load(vs: &VarStore, file: &Path) -> Result<()> {
    let _guard = tch::no_grad_guard();
    let vars = vs.variables();
    let is_safetensors = file.extension().and_then(|e| e.to_str()) == Some("safetensors");
    if is_safetensors {
        let f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
        // JUSTIFICATION: the map is read-only and dropped before this function returns;
        // checkpoint files are not modified while a model loads.
        let mmap = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(file, e))?;
        let st = safetensors::SafeTensors::deserialize(&mmap)
            .map_err(|e| model_err(file, format!("not a safetensors file: {e}")))?;
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in names {
            let mut var = vars[name].shallow_clone();
            let view = st.tensor(name).map_err(|_| {
                model_err(
                    file,
                    format!("tensor {name} (shape {:?}) is missing", var.size()),
                )
            })?;
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            if shape != var.size() {
                return Err(model_err(
                    file,
                    format!(
                        "tensor {name} has shape {shape:?} in the file but the config needs {:?}",
                        var.size()
                    ),
                ));
            }
            let kind = kind_of(view.dtype()).ok_or_else(|| {
                model_err(
                    file,
                    format!("tensor {name} has unsupported dtype {:?}", view.dtype()),
                )
            })?;
            let src = Tensor::f_from_data_size(view.data(), &shape, kind)?;
            var.f_copy_(&src.to_kind(var.kind()))?;
        }
    } else {
        let tensors = Tensor::loadz_multi_with_device(file, tch::Device::Cpu)?;
        let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
        for (name, var) in &vars {
            let mut var = var.shallow_clone();
            let src = map.get(name).ok_or_else(|| {
                model_err(
                    file,
                    format!("tensor {name} (shape {:?}) is missing", var.size()),
                )
            })?;
            if src.size() != var.size() {
                return Err(model_err(
                    file,
                    format!(
                        "tensor {name} has shape {:?} in the file but the config needs {:?}",
                        src.size(),
                        var.size()
                    ),
                ));
            }
            var.f_copy_(&src.to_kind(var.kind()))?;
        }
    }
    Ok(())
}
