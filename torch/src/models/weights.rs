//! Loading checkpoint tensors into a `VarStore`, by name, with shapes checked.
//!
//! `model.safetensors` is read tensor by tensor through one reused buffer; `pytorch_model.bin`
//! goes through libtorch's pickle reader. Keys in the file that the model does not use
//! are ignored (older files carry buffers such as `position_ids`); a model parameter
//! missing from the file, or with another shape, is an error naming the tensor and both
//! shapes.

use std::path::{Path, PathBuf};

use tch::{nn::VarStore, Kind, Tensor};

use crate::TorchResult;
use capstream::error::{Error, Result};

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

fn kind_of(d: &str) -> Option<Kind> {
    Some(match d {
        "F32" => Kind::Float,
        "F16" => Kind::Half,
        "BF16" => Kind::BFloat16,
        "F64" => Kind::Double,
        _ => return None,
    })
}

struct Entry {
    kind: Kind,
    shape: Vec<i64>,
    offsets: (usize, usize),
}

struct Header {
    tensors: std::collections::HashMap<String, Entry>,
    data_start: u64,
}

/// Parses the safetensors header: an 8-byte little-endian length, then JSON mapping
/// names to dtype, shape and byte offsets within the data section.
fn read_header(f: &mut std::fs::File, file: &Path) -> Result<Header> {
    use std::io::Read;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| Error::io(file, e))?;
    let len = u64::from_le_bytes(len);
    let size = f.metadata().map_err(|e| Error::io(file, e))?.len();
    if len > 100 << 20 || len + 8 > size {
        return Err(model_err(
            file,
            "not a safetensors file (bad header length)".into(),
        ));
    }
    let mut text = vec![0u8; len as usize];
    f.read_exact(&mut text).map_err(|e| Error::io(file, e))?;
    let json: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| model_err(file, format!("not a safetensors file: {e}")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| model_err(file, "safetensors header is not an object".into()))?;
    let mut tensors = std::collections::HashMap::new();
    for (name, v) in obj {
        if name == "__metadata__" {
            continue;
        }
        let bad = || model_err(file, format!("tensor {name}: malformed header entry"));
        let dtype = v["dtype"].as_str().ok_or_else(bad)?;
        let kind = kind_of(dtype).ok_or_else(|| {
            model_err(file, format!("tensor {name} has unsupported dtype {dtype}"))
        })?;
        let shape = v["shape"]
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|d| d.as_i64().ok_or_else(bad))
            .collect::<Result<Vec<_>>>()?;
        let off = v["data_offsets"].as_array().ok_or_else(bad)?;
        let (s, e) = match (
            off.first().and_then(|x| x.as_u64()),
            off.get(1).and_then(|x| x.as_u64()),
        ) {
            (Some(s), Some(e)) => (s as usize, e as usize),
            _ => return Err(bad()),
        };
        if 8 + len + e as u64 > size {
            return Err(model_err(
                file,
                format!("tensor {name} runs past the end of the file"),
            ));
        }
        tensors.insert(
            name.clone(),
            Entry {
                kind,
                shape,
                offsets: (s, e),
            },
        );
    }
    Ok(Header {
        tensors,
        data_start: 8 + len,
    })
}

/// Copies every variable of `vs` from `file`, keeping each variable's dtype and device.
pub fn load(vs: &VarStore, file: &Path) -> Result<()> {
    let _guard = tch::no_grad_guard();
    let vars = vs.variables();
    let is_safetensors = file.extension().and_then(|e| e.to_str()) == Some("safetensors");
    if is_safetensors {
        let mut f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
        let header = read_header(&mut f, file)?;
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        // One tensor at a time through a reused buffer, not a memory map: mapped pages
        // count as resident, and peak memory would be the weights twice over.
        let mut buf: Vec<u8> = Vec::new();
        for name in names {
            let mut var = vars[name].shallow_clone();
            let entry = header.tensors.get(name.as_str()).ok_or_else(|| {
                model_err(
                    file,
                    format!("tensor {name} (shape {:?}) is missing", var.size()),
                )
            })?;
            if entry.shape != var.size() {
                return Err(model_err(
                    file,
                    format!(
                        "tensor {name} has shape {:?} in the file but the config needs {:?}",
                        entry.shape,
                        var.size()
                    ),
                ));
            }
            let (start, end) = entry.offsets;
            let expected =
                entry.shape.iter().product::<i64>() as usize * entry.kind.elt_size_in_bytes();
            if end < start || end - start != expected {
                return Err(model_err(
                    file,
                    format!("tensor {name} has a corrupt byte range"),
                ));
            }
            buf.resize(end - start, 0);
            use std::io::{Read, Seek, SeekFrom};
            f.seek(SeekFrom::Start(header.data_start + start as u64))
                .and_then(|_| f.read_exact(&mut buf))
                .map_err(|e| Error::io(file, e))?;
            let src = Tensor::f_from_data_size(&buf, &entry.shape, entry.kind).torch()?;
            var.f_copy_(&src.to_kind(var.kind())).torch()?;
        }
    } else {
        let tensors = Tensor::loadz_multi_with_device(file, tch::Device::Cpu).torch()?;
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
            var.f_copy_(&src.to_kind(var.kind())).torch()?;
        }
    }
    Ok(())
}

/// Writes named tensors as safetensors (f32/f16/bf16 kept, moved to CPU), through a
/// temporary file renamed into place so that a reader never sees half a file.
pub fn save(tensors: &[(String, Tensor)], file: &Path) -> Result<()> {
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                t.detach().to_device(tch::Device::Cpu).contiguous(),
            )
        })
        .collect();
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("weights.safetensors");
    let tmp = file.with_file_name(format!(".{name}.tmp"));
    Tensor::write_safetensors(&cpu, &tmp).torch()?;
    std::fs::rename(&tmp, file).map_err(|e| Error::io(file, e))
}

/// Every variable of `vs` by name, sorted: what [`save`] takes.
pub fn named_variables(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}
