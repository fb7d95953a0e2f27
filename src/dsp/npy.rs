//! `.npy` files (NumPy format 1.0/2.0) of little-endian floats: float32 written,
//! float32 or float64 read (C order).

/// Encodes a C-order float32 array of `shape`.
pub fn encode_f32(data: &[f32], shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // Magic (6) + version (2) + header length (2) + header, padded to 64 bytes, ending in \n.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Decodes a C-order little-endian float32 or float64 `.npy` into float32 values and
/// the shape. Anything else (Fortran order, other dtypes, truncated data) is an error
/// saying what was found.
pub fn decode_f32(bytes: &[u8]) -> Result<(Vec<f32>, Vec<usize>), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("truncated .npy header")?;
    let field = |key: &str| -> Result<&str, String> {
        let at = header
            .find(&format!("'{key}'"))
            .ok_or(format!(".npy header lacks {key}"))?;
        Ok(header[at + key.len() + 2..].trim_start_matches([':', ' ']))
    };
    let descr = field("descr")?;
    let width = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        return Err(format!(
            "unsupported dtype {}: expected <f4 or <f8",
            descr.split(',').next().unwrap_or(descr)
        ));
    };
    if field("fortran_order")?.starts_with("True") {
        return Err("Fortran-order arrays are not supported".into());
    }
    let shape_text = field("shape")?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("malformed shape")?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<usize>()
                .map_err(|_| format!("malformed shape ({inner})"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // A crafted shape must not wrap around to a small size.
    let need = shape
        .iter()
        .try_fold(width, |acc: usize, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape ({inner}) overflows the address space"))?;
    let n = need / width;
    let data = &bytes[start + header_len..];
    if data.len() < need {
        return Err(format!(
            "truncated .npy data: {} bytes for {n} values",
            data.len()
        ));
    }
    let values = data[..need]
        .chunks_exact(width)
        .map(|c| match width {
            4 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            _ => f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32,
        })
        .collect();
    Ok((values, shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
        assert_eq!(
            decode_f32(&encode_f32(&v, &[3, 4])).unwrap(),
            (v.clone(), vec![3, 4])
        );
        assert_eq!(decode_f32(&encode_f32(&v, &[12])).unwrap(), (v, vec![12]));
        assert!(decode_f32(b"nope").is_err());
    }

    #[test]
    fn crafted_headers_are_errors_not_panics() {
        let good = encode_f32(&[1.0, 2.0], &[2]);
        let with_shape = |shape: &str| {
            let at = good.windows(4).position(|w| w == b"(2,)").unwrap();
            let mut b = good[..at].to_vec();
            b.extend_from_slice(shape.as_bytes());
            b.extend_from_slice(&good[at + 4..]);
            let len = (b.len() - 10 - 8) as u16;
            b[8..10].copy_from_slice(&len.to_le_bytes());
            b
        };
        // 2^32 * 2^32 * 4 bytes wraps to 0 in unchecked usize arithmetic.
        let e = decode_f32(&with_shape("(4294967296, 4294967296)")).unwrap_err();
        assert!(e.contains("overflows"), "{e}");
        let e = decode_f32(&with_shape("(1000000,)")).unwrap_err();
        assert!(e.contains("truncated .npy data"), "{e}");
        let mut long = good.clone();
        long[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(decode_f32(&long).unwrap_err(), "truncated .npy header");
        let mut v2 = good.clone();
        v2[6] = 2;
        assert!(decode_f32(&v2[..11]).is_err());
    }
}
