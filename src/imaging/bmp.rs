//! BMP where the image crate and Pillow read the same file differently.
//!
//! - RLE bitmaps: what a delta, an end of line or an early end of bitmap skips is
//!   palette index 0 in Pillow, black in the image crate. The crate still decodes the
//!   file, from a copy whose palette gives every index a colour that names it; the
//!   skipped pixels come out black, which no such colour is, and both map back through
//!   the file's palette.
//! - 16-bit pixels: Pillow reads only the colour masks, so an alpha mask (ARGB1555)
//!   does not make the image transparent, and it widens a channel to 8 bits as
//!   `v * 255 / max`, truncating, where the image crate rounds.
//!
//! Header fields only; it must stay pure like its parent.

use image::RgbImage;

const FILE_HEADER: usize = 14;
const BI_RLE8: u32 = 1;
const BI_RLE4: u32 = 2;
/// The green and blue of every stand-in palette colour; red is the index.
const TAG_G: u8 = 0x80;
const TAG_B: u8 = 0x01;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Bits per pixel of a BMP with a Windows (40-byte or later) info header.
pub(super) fn bits_per_pixel(bytes: &[u8]) -> Option<u16> {
    (bytes.get(..2)? == b"BM" && u32_at(bytes, FILE_HEADER)? >= 40)
        .then(|| u16_at(bytes, FILE_HEADER + 14))
        .flatten()
}

/// The largest value of each colour channel of a 16-bit BMP in a layout Pillow reads
/// (5-5-5 or 5-6-5), or `None`.
fn rgb16_maxima(bytes: &[u8]) -> Option<[u32; 3]> {
    const BI_RGB: u32 = 0;
    const BI_BITFIELDS: u32 = 3;
    if bits_per_pixel(bytes)? != 16 {
        return None;
    }
    match u32_at(bytes, FILE_HEADER + 16)? {
        BI_RGB => Some([31, 31, 31]),
        // The masks follow a 40-byte header, and sit at the same place in V4 and V5.
        BI_BITFIELDS => {
            let at = FILE_HEADER + 40;
            match [
                u32_at(bytes, at)?,
                u32_at(bytes, at + 4)?,
                u32_at(bytes, at + 8)?,
            ] {
                [0x7C00, 0x3E0, 0x1F] => Some([31, 31, 31]),
                [0xF800, 0x7E0, 0x1F] => Some([31, 63, 31]),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A 16-bit BMP's colours, as the image crate expanded them, expanded as Pillow does;
/// any other BMP as it is.
pub(super) fn rgb16_as_pil(bytes: &[u8], img: RgbImage) -> RgbImage {
    let Some(maxima) = rgb16_maxima(bytes) else {
        return img;
    };
    let mut img = img;
    for px in img.pixels_mut() {
        for (c, max) in px.0.iter_mut().zip(maxima) {
            // The stored value: every expansion of it lies within half a step of v.
            let v = (u32::from(*c) * max + 127) / 255;
            *c = (v * 255 / max) as u8;
        }
    }
    img
}

/// An RLE bitmap's stand-in copy and its real palette (RGB), or `None` when the file
/// is not RLE or its palette cannot be found.
pub(super) fn rle_stand_in(bytes: &[u8]) -> Option<(Vec<u8>, Vec<[u8; 3]>)> {
    if bytes.get(..2)? != b"BM" {
        return None;
    }
    let header = usize::try_from(u32_at(bytes, FILE_HEADER)?).ok()?;
    if header < 40 || !matches!(u32_at(bytes, FILE_HEADER + 16)?, BI_RLE8 | BI_RLE4) {
        return None;
    }
    let bpp = u16_at(bytes, FILE_HEADER + 14)?;
    let used = u32_at(bytes, FILE_HEADER + 32)? as usize;
    let data = usize::try_from(u32_at(bytes, 10)?).ok()?;
    let start = FILE_HEADER + header;
    let room = data
        .saturating_sub(start)
        .min(bytes.len().saturating_sub(start))
        / 4;
    let full = 1usize << bpp.min(8);
    let n = if used == 0 { full } else { used.min(256) }.min(room);
    if n == 0 {
        return None;
    }
    let mut copy = bytes.to_vec();
    let mut palette = Vec::with_capacity(n);
    for i in 0..n {
        let at = start + 4 * i;
        palette.push([bytes[at + 2], bytes[at + 1], bytes[at]]);
        copy[at..at + 3].copy_from_slice(&[TAG_B, TAG_G, i as u8]);
    }
    Some((copy, palette))
}

/// The stand-in decode mapped through the real palette; skipped pixels take index 0.
pub(super) fn rle_restore(stand_in: RgbImage, palette: &[[u8; 3]]) -> RgbImage {
    let mut img = stand_in;
    for px in img.pixels_mut() {
        let [r, g, b] = px.0;
        let index = if (g, b) == (TAG_G, TAG_B) {
            usize::from(r)
        } else {
            0
        };
        px.0 = palette.get(index).copied().unwrap_or([0, 0, 0]);
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4x2 RLE8 bitmap: row 0 (bottom) is a run of two index-1 pixels, then the end
    /// of the line; row 1 is a delta of two pixels then one index-2 pixel, then the end.
    fn rle8() -> Vec<u8> {
        let pixels: &[u8] = &[2, 1, 0, 0, 0, 2, 2, 0, 1, 2, 0, 0, 0, 1];
        let palette: &[[u8; 4]] = &[[10, 20, 30, 0], [0, 0, 255, 0], [0, 255, 0, 0]];
        let offset = 14 + 40 + 4 * palette.len();
        let mut b = Vec::new();
        b.extend_from_slice(b"BM");
        b.extend_from_slice(&((offset + pixels.len()) as u32).to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&(offset as u32).to_le_bytes());
        b.extend_from_slice(&40u32.to_le_bytes());
        b.extend_from_slice(&4i32.to_le_bytes());
        b.extend_from_slice(&2i32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&8u16.to_le_bytes());
        b.extend_from_slice(&BI_RLE8.to_le_bytes());
        b.extend_from_slice(&(pixels.len() as u32).to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&(palette.len() as u32).to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        palette.iter().for_each(|e| b.extend_from_slice(e));
        b.extend_from_slice(pixels);
        b
    }

    #[test]
    fn skipped_rle_pixels_take_palette_index_0() {
        let bytes = rle8();
        let (copy, palette) = rle_stand_in(&bytes).unwrap();
        assert_eq!(palette, vec![[30, 20, 10], [255, 0, 0], [0, 255, 0]]);
        let img = image::load_from_memory_with_format(&copy, image::ImageFormat::Bmp)
            .unwrap()
            .into_rgb8();
        let img = rle_restore(img, &palette);
        let bg = [30, 20, 10];
        let (red, green) = ([255, 0, 0], [0, 255, 0]);
        // Top row first: the delta skipped two pixels, the end of line the last one.
        let want = [bg, bg, green, bg, red, red, bg, bg];
        let got: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn five_bit_channels_widen_as_pillow_does() {
        // A 1x1 BI_RGB 16-bit bitmap; its pixel does not matter, only the header.
        let mut b = rle8();
        b[FILE_HEADER + 14] = 16;
        b[FILE_HEADER + 16] = 0;
        // Every 5-bit value, as bit replication (v << 3 | v >> 2) widens it.
        let row: Vec<u8> = (0..32u8).flat_map(|v| [v << 3 | v >> 2; 3]).collect();
        let img = rgb16_as_pil(&b, RgbImage::from_raw(32, 1, row).unwrap());
        let got: Vec<u8> = img.pixels().map(|p| p.0[0]).collect();
        let want: Vec<u8> = (0..32u32).map(|v| (v * 255 / 31) as u8).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn only_rle_bitmaps_get_a_stand_in() {
        let mut bytes = rle8();
        bytes[FILE_HEADER + 16] = 0;
        assert!(rle_stand_in(&bytes).is_none());
        assert_eq!(bits_per_pixel(&bytes), Some(8));
        assert!(rle_stand_in(b"GIF89a").is_none());
    }
}
