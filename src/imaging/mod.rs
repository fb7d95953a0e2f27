//! Image decoding and BLIP preprocessing, as pure functions on bytes.
//!
//! This module owns the path from encoded bytes to the model-sized 8-bit RGB image,
//! and from that image to the normalized NCHW floats a vision encoder reads. It does
//! what transformers' `BlipImageProcessor` does (convert to RGB compositing alpha onto
//! white, resize straight to the model size with PIL's antialiased bicubic, rescale by
//! 1/255, normalize with the CLIP mean and std), after applying EXIF orientation as
//! `transformers.image_utils.load_image` does.
//!
//! It must stay pure: no tokio, Arrow, metrics or configuration parsing. Limits are
//! checked on the header, before any pixel is decoded, so a decompression bomb costs
//! nothing.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

/// The CLIP normalization mean (`OPENAI_CLIP_MEAN`), used by every BLIP checkpoint.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// The CLIP normalization std (`OPENAI_CLIP_STD`).
// Spelled as transformers spells them, so a reader can grep for them.
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Bounds checked before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted encoded size, in bytes.
    pub max_encoded_bytes: usize,
    /// Largest accepted `width * height` of the decoded image.
    pub max_pixels: u64,
    /// Largest accepted size of the resize filter weights. They grow with the long
    /// side, not the pixel count: a 1 x 89M image is within `max_pixels` but needs
    /// 1.4 GB of weights to reach 384 x 384.
    pub max_resize_table_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_encoded_bytes: 50 << 20,
            // PIL's `Image.MAX_IMAGE_PIXELS`.
            max_pixels: 89_478_485,
            // Sides up to about 4M pixels at model sizes; a photo needs well under 1 MiB.
            max_resize_table_bytes: 64 << 20,
        }
    }
}

/// Why an image could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageError {
    /// Zero bytes.
    Empty,
    /// Above a limit; the message says which.
    TooLarge(String),
    /// Not a format capstream decodes.
    UnsupportedFormat(String),
    /// The decoder rejected the data.
    Decode(String),
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageError::Empty => write!(f, "the file is empty"),
            ImageError::TooLarge(m) => write!(f, "too large: {m}"),
            ImageError::UnsupportedFormat(m) => write!(f, "unsupported format: {m}"),
            ImageError::Decode(m) => write!(f, "cannot decode: {m}"),
        }
    }
}

impl std::error::Error for ImageError {}

/// An image at model size: 8-bit RGB, row-major, 3 bytes a pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// Width of the decoded image before resizing (after EXIF orientation).
    pub source_width: u32,
    /// Height of the decoded image before resizing (after EXIF orientation).
    pub source_height: u32,
    /// Width of `rgb`.
    pub width: u32,
    /// Height of `rgb`.
    pub height: u32,
    /// `width * height * 3` bytes.
    pub rgb: Vec<u8>,
}

const FORMATS: [ImageFormat; 6] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::WebP,
    ImageFormat::Gif,
    ImageFormat::Bmp,
    ImageFormat::Tiff,
];

/// Decodes `bytes` into an oriented RGB image, alpha composited onto white.
pub fn decode_rgb(bytes: &[u8], limits: &Limits) -> Result<image::RgbImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    if bytes.len() > limits.max_encoded_bytes {
        return Err(ImageError::TooLarge(format!(
            "{} encoded bytes exceed the limit of {}",
            bytes.len(),
            limits.max_encoded_bytes
        )));
    }
    let format = image::guess_format(bytes)
        .map_err(|_| ImageError::UnsupportedFormat("the bytes match no image signature".into()))?;
    if !FORMATS.contains(&format) {
        return Err(ImageError::UnsupportedFormat(format!(
            "{format:?} is not one of JPEG, PNG, WebP, GIF, BMP, TIFF"
        )));
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(ImageError::Decode(
            "the JPEG is truncated: no end-of-image marker after its last scan".into(),
        ));
    }
    if format == ImageFormat::Tiff {
        let (mut img, orientation) = tiff_decode::decode(bytes, limits)?;
        img.apply_orientation(orientation);
        return Ok(to_rgb_on_white(as_pil_reads(bytes, format, img)));
    }
    let rle = (format == ImageFormat::Bmp)
        .then(|| bmp::rle_stand_in(bytes))
        .flatten();
    let source = rle.as_ref().map_or(bytes, |(copy, _)| copy.as_slice());
    let mut reader = ImageReader::with_format(Cursor::new(source), format);
    let mut lim = image::Limits::default();
    // A second guard behind the pixel check: no decoder may allocate much more than
    // the largest accepted image needs (16-bit RGBA is 8 bytes a pixel).
    lim.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(lim);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let (w, h) = decoder.dimensions();
    check_size(w, h, limits)?;
    let orientation = orientation(bytes, format, &mut decoder)?;
    let mut img = match (format == ImageFormat::Jpeg)
        .then(|| decode_jpeg_turbo(bytes))
        .flatten()
    {
        Some(img) => img,
        None => DynamicImage::from_decoder(decoder).map_err(decode_error)?,
    };
    img.apply_orientation(orientation);
    if let Some((_, palette)) = &rle {
        return Ok(bmp::rle_restore(img.into_rgb8(), palette));
    }
    Ok(to_rgb_on_white(as_pil_reads(bytes, format, img)))
}

/// The header's size against `max_pixels`, before any pixel is decoded.
fn check_size(w: u32, h: u32, limits: &Limits) -> Result<(), ImageError> {
    let pixels = u64::from(w) * u64::from(h);
    if pixels > limits.max_pixels {
        return Err(ImageError::TooLarge(format!(
            "{w}x{h} = {pixels} pixels exceed the limit of {}",
            limits.max_pixels
        )));
    }
    if w == 0 || h == 0 {
        return Err(ImageError::Decode(format!("image has size {w}x{h}")));
    }
    Ok(())
}

/// Where PIL's `exif_transpose` finds the orientation: the EXIF Orientation tag
/// (JPEG APP1, PNG `eXIf` wherever it sits, WebP `EXIF`, the TIFF IFD), and only when
/// EXIF has no such tag, `tiff:Orientation` in the XMP packet.
fn orientation(
    bytes: &[u8],
    format: ImageFormat,
    decoder: &mut impl ImageDecoder,
) -> Result<Orientation, ImageError> {
    let exif = match decoder.exif_metadata().map_err(decode_error)? {
        Some(chunk) => Some(chunk),
        // The PNG decoder reads chunks up to the first IDAT; PIL also reads the ones
        // after the image data when asked for EXIF.
        None if format == ImageFormat::Png => png_chunk(bytes, b"eXIf")
            .map(<[u8]>::to_vec)
            .or_else(|| png_raw_profile_exif(bytes)),
        None => None,
    };
    if let Some(o) = exif.as_deref().and_then(Orientation::from_exif_chunk) {
        return Ok(o);
    }
    let from_decoder = decoder.orientation().map_err(decode_error)?;
    if from_decoder != Orientation::NoTransforms {
        return Ok(from_decoder);
    }
    let xmp = decoder.xmp_metadata().map_err(decode_error)?;
    Ok(xmp
        .as_deref()
        .and_then(xmp_orientation)
        .unwrap_or(Orientation::NoTransforms))
}

/// PIL's `tiff:Orientation(="|>)([0-9])`, first match; 1–8 as in EXIF, anything else
/// leaves the image as stored.
pub(super) fn xmp_orientation(xmp: &[u8]) -> Option<Orientation> {
    const KEY: &[u8] = b"tiff:Orientation";
    let mut from = 0;
    while let Some(at) = xmp[from..].windows(KEY.len()).position(|w| w == KEY) {
        let rest = &xmp[from + at + KEY.len()..];
        let digit = match rest {
            [b'=', b'"', d, ..] | [b'>', d, ..] if d.is_ascii_digit() => Some(*d),
            _ => None,
        };
        if let Some(d) = digit {
            return Orientation::from_exif(d - b'0');
        }
        from += at + 1;
    }
    None
}

/// The data of the first chunk of `kind` in a PNG, found by walking chunk headers.
fn png_chunk<'a>(bytes: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    png_chunks(bytes).find(|(k, _)| k == kind).map(|(_, d)| d)
}

/// Every chunk of a PNG as (type, data), up to IEND or the first malformed header.
fn png_chunks(bytes: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut at = Some(8usize);
    std::iter::from_fn(move || {
        let pos = at?;
        let head = bytes.get(pos..pos + 8)?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let data = bytes.get(pos + 8..(pos + 8).checked_add(len)?)?;
        let kind = [head[4], head[5], head[6], head[7]];
        at = (&kind != b"IEND")
            .then(|| pos.checked_add(12 + len))
            .flatten();
        Some((kind, data))
    })
}

/// The decompressed text of a tEXt, zTXt or iTXt chunk named `keyword`.
fn png_text(bytes: &[u8], keyword: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    // Text chunks are small; a compressed one inflating past this is not metadata.
    const MAX_TEXT: u64 = 16 << 20;
    let inflate = |z: &[u8]| -> Option<Vec<u8>> {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(z)
            .take(MAX_TEXT)
            .read_to_end(&mut out)
            .ok()?;
        Some(out)
    };
    for (kind, data) in png_chunks(bytes) {
        let Some(nul) = data.iter().position(|&b| b == 0) else {
            continue;
        };
        if &data[..nul] != keyword {
            continue;
        }
        let rest = &data[nul + 1..];
        match &kind {
            b"tEXt" => return Some(rest.to_vec()),
            b"zTXt" => return inflate(rest.get(1..)?),
            b"iTXt" => {
                let (compressed, rest) = (*rest.first()? == 1, rest.get(2..)?);
                // Language tag, then translated keyword, each NUL-terminated.
                let lang = rest.iter().position(|&b| b == 0)?;
                let rest = &rest[lang + 1..];
                let tk = rest.iter().position(|&b| b == 0)?;
                let text = &rest[tk + 1..];
                return if compressed {
                    inflate(text)
                } else {
                    Some(text.to_vec())
                };
            }
            _ => {}
        }
    }
    None
}

/// ImageMagick's `Raw profile type exif` text: a header of three lines, then hex. PIL
/// reads EXIF from it when a PNG has no eXIf chunk.
fn png_raw_profile_exif(bytes: &[u8]) -> Option<Vec<u8>> {
    let text = png_text(bytes, b"Raw profile type exif")?;
    let text = std::str::from_utf8(&text).ok()?;
    let hex: String = text
        .split('\n')
        .skip(3)
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let raw = hex::decode(hex).ok()?;
    // The chunk may keep the APP1 prefix; the TIFF header follows it.
    Some(match raw.strip_prefix(b"Exif\0\0") {
        Some(tiff) => tiff.to_vec(),
        None => raw,
    })
}

/// JPEG through libjpeg-turbo with its defaults (accurate integer IDCT, fancy
/// upsampling): the decoder inside Pillow, so our pixels equal PIL's. `None` where it
/// declines (CMYK and other colour spaces it cannot turn into RGB); the pure-Rust
/// decoder takes those.
fn decode_jpeg_turbo(bytes: &[u8]) -> Option<DynamicImage> {
    let img = turbojpeg::decompress(bytes, turbojpeg::PixelFormat::RGB).ok()?;
    if img.pitch != img.width * 3 {
        return None;
    }
    image::RgbImage::from_raw(img.width as u32, img.height as u32, img.pixels)
        .map(DynamicImage::ImageRgb8)
}

/// The JPEG decoder fills a truncated scan with grey and reports success; PIL raises
/// "image file is truncated". We side with PIL: the last start-of-scan marker must be
/// followed by an end-of-image marker. (Entropy-coded data stuffs every 0xFF with 0x00,
/// so neither marker can occur by accident inside a scan, and an EXIF thumbnail's
/// markers all come before the main image's last scan.)
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_sos {
        Some(i) => bytes[i..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

fn decode_error(e: image::ImageError) -> ImageError {
    match e {
        image::ImageError::Limits(l) => ImageError::TooLarge(l.to_string()),
        image::ImageError::Unsupported(u) => ImageError::UnsupportedFormat(u.to_string()),
        other => ImageError::Decode(other.to_string()),
    }
}

/// The decoded image as PIL holds it, where the two decoders differ on what the file
/// means:
/// - 16-bit grey is PIL mode `I;16`, which `convert("RGB")` clips at 255 rather than
///   scales (so most such images come out white).
/// - PNG grey below 8 bits with a tRNS key: PIL scales the samples to 0..255 but not
///   the key, so only pixels whose scaled value equals the key are transparent.
/// - 16-bit grey PNG with a tRNS key: the key is compared with the clipped value.
/// - 16-bit BMP: PIL reads the colour masks only, never an alpha mask, and widens
///   channels with `v * 255 / max`.
fn as_pil_reads(bytes: &[u8], format: ImageFormat, img: DynamicImage) -> DynamicImage {
    match img {
        DynamicImage::ImageLuma16(g) => {
            let (w, h) = g.dimensions();
            let clipped = g.into_raw().into_iter().map(|v| v.min(255) as u8).collect();
            image::GrayImage::from_raw(w, h, clipped)
                .map(DynamicImage::ImageLuma8)
                .expect("one byte a pixel")
        }
        DynamicImage::ImageLumaA8(la) if format == ImageFormat::Png => {
            match png_grey_key(bytes).filter(|&(depth, _)| depth < 8) {
                Some((_, key)) => {
                    let mut la = la;
                    for px in la.pixels_mut() {
                        px[1] = if u16::from(px[0]) == key { 0 } else { 255 };
                    }
                    DynamicImage::ImageLumaA8(la)
                }
                None => DynamicImage::ImageLumaA8(la),
            }
        }
        DynamicImage::ImageLumaA16(la) if format == ImageFormat::Png => {
            // 16-bit grey with a tRNS key: I;16, clipped at 255 before the key is
            // compared, so a key above 255 never matches.
            match png_grey_key(bytes) {
                Some((_, key)) => {
                    let (w, h) = la.dimensions();
                    let out = la
                        .pixels()
                        .flat_map(|p| {
                            let l = p[0].min(255);
                            [l as u8, if l == key { 0 } else { 255 }]
                        })
                        .collect();
                    image::GrayAlphaImage::from_raw(w, h, out)
                        .map(DynamicImage::ImageLumaA8)
                        .expect("two bytes a pixel")
                }
                None => DynamicImage::ImageLumaA16(la),
            }
        }
        img if format == ImageFormat::Bmp && bmp::bits_per_pixel(bytes) == Some(16) => {
            DynamicImage::ImageRgb8(bmp::rgb16_as_pil(bytes, img.into_rgb8()))
        }
        other => other,
    }
}

/// A grey PNG's bit depth and tRNS key (in sample units), if it has one.
fn png_grey_key(bytes: &[u8]) -> Option<(u8, u16)> {
    let ihdr = png_chunk(bytes, b"IHDR").filter(|h| h.len() >= 10 && h[9] == 0)?;
    let key = png_chunk(bytes, b"tRNS").filter(|t| t.len() >= 2)?;
    Some((ihdr[8], u16::from_be_bytes([key[0], key[1]])))
}

/// HF's `convert_to_rgb`: transparency is composited onto white, not dropped.
fn to_rgb_on_white(img: DynamicImage) -> image::RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for px in rgba.pixels() {
        let a = u32::from(px[3]);
        for c in 0..3 {
            let v = u32::from(px[c]) * a + 255 * (255 - a);
            // Rounded division by 255.
            out.push(((v + 128 + ((v + 128) >> 8)) >> 8) as u8);
        }
    }
    image::RgbImage::from_raw(w, h, out).expect("buffer has w*h*3 bytes by construction")
}

mod bmp;
mod resample;
mod tiff_decode;

/// Resizes images exactly as PIL's `Image.resize(size, BICUBIC)` (Keys' cubic,
/// a = -0.5, support widened by the reduction factor, 22-bit fixed point). Caches
/// filter weights per size, so keep one per thread.
#[derive(Default)]
pub struct BicubicResizer {
    resizer: resample::PilBicubic,
}

impl std::fmt::Debug for BicubicResizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BicubicResizer")
    }
}

impl BicubicResizer {
    /// A new resizer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resizes straight to `width`×`height`: no crop, aspect ratio not kept.
    pub fn resize(&mut self, img: image::RgbImage, width: u32, height: u32) -> Vec<u8> {
        let (sw, sh) = img.dimensions();
        if (sw, sh) == (width, height) {
            return img.into_raw();
        }
        self.resizer.resize(
            img.as_raw(),
            sw as usize,
            sh as usize,
            width as usize,
            height as usize,
        )
    }
}

/// Decodes and resizes: the whole of BLIP preprocessing up to the 8-bit image.
pub fn prepare(
    bytes: &[u8],
    limits: &Limits,
    width: u32,
    height: u32,
    resizer: &mut BicubicResizer,
) -> Result<Prepared, ImageError> {
    let img = decode_rgb(bytes, limits)?;
    let (source_width, source_height) = img.dimensions();
    let table = resample::table_bytes(source_width as usize, width as usize)
        + resample::table_bytes(source_height as usize, height as usize);
    if table > limits.max_resize_table_bytes {
        return Err(ImageError::TooLarge(format!(
            "resizing {source_width}x{source_height} to {width}x{height} needs {table} bytes \
             of filter weights, above max_resize_table_bytes = {}",
            limits.max_resize_table_bytes
        )));
    }
    let rgb = resizer.resize(img, width, height);
    Ok(Prepared {
        source_width,
        source_height,
        width,
        height,
        rgb,
    })
}

/// Writes the normalized CHW float image of `rgb` (HWC bytes) into `out`:
/// `(v / 255 - mean[c]) / std[c]`. `out` must hold `rgb.len()` floats.
pub fn normalize_chw(rgb: &[u8], mean: [f32; 3], std: [f32; 3], out: &mut [f32]) {
    assert_eq!(rgb.len(), out.len(), "output must hold one float per byte");
    let plane = rgb.len() / 3;
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| mean[c] / std[c]);
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        r[i] = f32::from(px[0]) * scale[0] - shift[0];
        g[i] = f32::from(px[1]) * scale[1] - shift[1];
        b[i] = f32::from(px[2]) * scale[2] - shift[2];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(img: DynamicImage) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, ImageFormat::Png).unwrap();
        buf.into_inner()
    }

    #[test]
    fn alpha_composites_onto_white() {
        let mut img = image::RgbaImage::new(2, 1);
        img.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        img.put_pixel(1, 0, image::Rgba([0, 0, 0, 255]));
        let rgb = decode_rgb(&png(DynamicImage::ImageRgba8(img)), &Limits::default()).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [0, 0, 0]);
    }

    #[test]
    fn a_long_thin_image_is_refused_before_its_filter_weights_are_made() {
        // 1 x 2M: 6 MB of pixels, but 32 MB of weights to reach 384 px.
        let tall = png(DynamicImage::ImageRgb8(image::RgbImage::new(1, 2_000_000)));
        let lim = Limits {
            max_resize_table_bytes: 8 << 20,
            ..Limits::default()
        };
        let mut r = BicubicResizer::new();
        let e = prepare(&tall, &lim, 384, 384, &mut r).unwrap_err();
        assert!(
            matches!(&e, ImageError::TooLarge(m) if m.contains("1x2000000 to 384x384") && m.contains("max_resize_table_bytes")),
            "{e}"
        );
        let small = png(DynamicImage::ImageRgb8(image::RgbImage::new(1, 4000)));
        assert_eq!(
            prepare(&small, &lim, 384, 384, &mut r).unwrap().rgb.len(),
            384 * 384 * 3
        );
    }

    #[test]
    fn limits_are_checked_before_decoding() {
        let bytes = png(DynamicImage::ImageRgb8(image::RgbImage::new(40, 30)));
        let small = Limits {
            max_encoded_bytes: 1 << 20,
            max_pixels: 1000,
            ..Limits::default()
        };
        assert!(
            matches!(decode_rgb(&bytes, &small), Err(ImageError::TooLarge(m)) if m.contains("40x30"))
        );
        let tiny = Limits {
            max_encoded_bytes: 10,
            max_pixels: 1 << 20,
            ..Limits::default()
        };
        assert!(matches!(
            decode_rgb(&bytes, &tiny),
            Err(ImageError::TooLarge(_))
        ));
        assert_eq!(decode_rgb(&[], &small), Err(ImageError::Empty));
        assert!(matches!(
            decode_rgb(b"hello, world", &small),
            Err(ImageError::UnsupportedFormat(_))
        ));
    }

    #[test]
    fn truncated_jpeg_is_a_decode_error() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, 90])
        }));
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, ImageFormat::Jpeg).unwrap();
        let full = buf.into_inner();
        assert!(decode_rgb(&full, &Limits::default()).is_ok());
        let cut = &full[..full.len() * 2 / 3];
        assert!(
            matches!(decode_rgb(cut, &Limits::default()), Err(ImageError::Decode(m)) if m.contains("truncated"))
        );
    }

    #[test]
    fn normalize_matches_formula() {
        let rgb = [0u8, 128, 255, 10, 20, 30];
        let mut out = [0f32; 6];
        normalize_chw(&rgb, CLIP_MEAN, CLIP_STD, &mut out);
        let want = |v: u8, c: usize| (f32::from(v) / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c];
        assert!((out[0] - want(0, 0)).abs() < 1e-6);
        assert!((out[1] - want(10, 0)).abs() < 1e-6);
        assert!((out[2] - want(128, 1)).abs() < 1e-6);
        assert!((out[5] - want(30, 2)).abs() < 1e-6);
    }

    #[test]
    fn resize_keeps_flat_colour() {
        let img = image::RgbImage::from_pixel(97, 41, image::Rgb([12, 200, 77]));
        let out = BicubicResizer::new().resize(img, 16, 16);
        assert_eq!(out.len(), 16 * 16 * 3);
        assert!(out.chunks(3).all(|p| p == [12, 200, 77]));
    }
}
