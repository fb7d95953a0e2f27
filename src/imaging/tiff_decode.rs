//! TIFF as Pillow reads it, through the `tiff` crate directly.
//!
//! The image crate's TIFF codec refuses palettes, float and grey+alpha samples,
//! YCbCr and planar CMYK, and composites an "unspecified" extra sample as alpha. This
//! module owns turning a TIFF's first page into the image PIL holds before
//! `convert_to_rgb`: which samples mean what (Pillow's `OPEN_INFO` table), how they
//! become 8 bits (Pillow's unpackers), and where the orientation comes from (the IFD's
//! Orientation tag, then XMP). JPEG-in-TIFF with YCbCr goes strip by strip through
//! libjpeg-turbo, as libtiff does inside Pillow, so that upsampling and colour
//! conversion are the same; CCITT Group 3 goes through the `fax` crate. Where the
//! `tiff` crate misreads a layout (palettes, planar tiles, an unspecified extra
//! sample in tiles), it reads an edited copy of the file instead: the same samples,
//! described in a layout it reads right.
//!
//! It must stay pure like its parent: bytes in, pixels out. The pixel limit is checked
//! on the header, before any sample is decoded.

use std::io::Cursor;

use image::metadata::Orientation;
use image::DynamicImage;
use tiff::decoder::{Decoder, DecodingResult};
use tiff::tags::Tag;

use super::{ImageError, Limits};

const PHOTOMETRIC_WHITE_IS_ZERO: u16 = 0;
const PHOTOMETRIC_BLACK_IS_ZERO: u16 = 1;
const PHOTOMETRIC_RGB: u16 = 2;
const PHOTOMETRIC_PALETTE: u16 = 3;
const PHOTOMETRIC_CMYK: u16 = 5;
const PHOTOMETRIC_YCBCR: u16 = 6;
const COMPRESSION_FAX3: u16 = 3;
const COMPRESSION_JPEG: u16 = 7;
const TAG_PHOTOMETRIC: u16 = 262;
const TAG_EXTRA_SAMPLES: u16 = 338;
/// ExtraSamples values: what a sample beyond the colour ones holds.
const EXTRA_UNSPECIFIED: u16 = 0;
const EXTRA_ASSOCIATED_ALPHA: u16 = 1;
const EXTRA_UNASSOCIATED_ALPHA: u16 = 2;

/// The first page of a TIFF as PIL holds it, and the orientation PIL's
/// `exif_transpose` would apply.
pub(super) fn decode(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(DynamicImage, Orientation), ImageError> {
    let mut dec = open(bytes, limits)?;
    let (w, h) = dec.dimensions().map_err(tiff_error)?;
    super::check_size(w, h, limits)?;
    let orientation = orientation(&mut dec)?;
    let photometric: u16 = tag(&mut dec, Tag::PhotometricInterpretation)?.unwrap_or(u16::MAX);
    let compression: u16 = tag(&mut dec, Tag::Compression)?.unwrap_or(1);
    let img = match photometric {
        PHOTOMETRIC_YCBCR if compression == COMPRESSION_JPEG => ycbcr_jpeg(bytes, &mut dec, w, h)?,
        PHOTOMETRIC_PALETTE => palette(bytes, limits, &mut dec, w, h)?,
        PHOTOMETRIC_WHITE_IS_ZERO | PHOTOMETRIC_BLACK_IS_ZERO
            if compression == COMPRESSION_FAX3 =>
        {
            fax3(bytes, &mut dec, photometric, w, h)?
        }
        _ => {
            // The tiff crate drops an unspecified extra sample itself, and in tiles it
            // drops the wrong one. Said to be alpha in a copy, every sample arrives;
            // `samples_image` still drops it, as PIL does.
            let extra = tag_vec(&mut dec, Tag::ExtraSamples)?.first().copied();
            let copy = (extra == Some(u64::from(EXTRA_UNSPECIFIED)))
                .then(|| with_short_tag(bytes, TAG_EXTRA_SAMPLES, EXTRA_UNASSOCIATED_ALPHA))
                .flatten();
            match &copy {
                Some(copy) => {
                    let mut all = open(copy, limits)?;
                    samples_image(
                        &mut all,
                        copy,
                        limits,
                        photometric,
                        w,
                        h,
                        Some(EXTRA_UNSPECIFIED),
                    )?
                }
                None => {
                    let extra = extra.and_then(|e| u16::try_from(e).ok());
                    samples_image(&mut dec, bytes, limits, photometric, w, h, extra)?
                }
            }
        }
    };
    Ok((img, orientation))
}

fn open<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Decoder<Cursor<&'a [u8]>>, ImageError> {
    let mut lim = tiff::decoder::Limits::default();
    // The largest accepted image, all planes at 16 bits with alpha, and no more.
    let cap = usize::try_from(limits.max_pixels.saturating_mul(8)).unwrap_or(usize::MAX);
    lim.decoding_buffer_size = cap;
    lim.intermediate_buffer_size = cap;
    Decoder::new(Cursor::new(bytes))
        .map(|d| d.with_limits(lim))
        .map_err(tiff_error)
}

fn tiff_error(e: tiff::TiffError) -> ImageError {
    match e {
        tiff::TiffError::LimitsExceeded => ImageError::TooLarge(e.to_string()),
        tiff::TiffError::UnsupportedError(u) => ImageError::UnsupportedFormat(u.to_string()),
        other => ImageError::Decode(other.to_string()),
    }
}

fn tag<T: TryFrom<u64>>(
    dec: &mut Decoder<Cursor<&[u8]>>,
    tag: Tag,
) -> Result<Option<T>, ImageError> {
    dec.find_tag_unsigned(tag).map_err(tiff_error)
}

fn tag_vec(dec: &mut Decoder<Cursor<&[u8]>>, tag: Tag) -> Result<Vec<u64>, ImageError> {
    Ok(dec
        .find_tag_unsigned_vec::<u64>(tag)
        .map_err(tiff_error)?
        .unwrap_or_default())
}

/// The first BitsPerSample value (the `tiff` crate reads only uniform depths); 1 when
/// the tag is absent, as TIFF defines.
fn bits_per_sample(dec: &mut Decoder<Cursor<&[u8]>>) -> Result<u64, ImageError> {
    Ok(tag_vec(dec, Tag::BitsPerSample)?
        .first()
        .copied()
        .unwrap_or(1))
}

/// PIL's `exif_transpose` on a TIFF: IFD0's Orientation, else `tiff:Orientation` in the
/// XMP packet (tag 700).
fn orientation(dec: &mut Decoder<Cursor<&[u8]>>) -> Result<Orientation, ImageError> {
    let stored = tag::<u8>(dec, Tag::Orientation).ok().flatten();
    if let Some(o) = stored.and_then(Orientation::from_exif) {
        return Ok(o);
    }
    // An unreadable or oversized packet is ignored, as PIL ignores it.
    let xmp = match dec.find_tag(Tag::Unknown(700)) {
        Ok(Some(v)) => v.into_u8_vec().unwrap_or_default(),
        _ => Vec::new(),
    };
    Ok(super::xmp_orientation(&xmp).unwrap_or(Orientation::NoTransforms))
}

/// Every sample of the page, planes interleaved, one value per sample (bit-packed
/// depths unpacked to one byte each, unscaled).
enum Samples {
    U8(Vec<u8>),
    U16(Vec<u16>),
    F32(Vec<f32>),
}

/// The page's samples and how many there are per pixel: those the `tiff` crate
/// delivers (it drops an unspecified extra sample of chunky RGB, as PIL does).
fn read_samples(
    dec: &mut Decoder<Cursor<&[u8]>>,
    bytes: &[u8],
    limits: &Limits,
    w: u32,
    h: u32,
    bps: u8,
) -> Result<(Samples, usize), ImageError> {
    let planar = tag::<u16>(dec, Tag::PlanarConfiguration)?.unwrap_or(1) == 2;
    let spp: usize = tag(dec, Tag::SamplesPerPixel)?.unwrap_or(1);
    if planar && spp > 1 {
        return read_planes(dec, bytes, limits, w, h, bps, spp).map(|s| (s, spp));
    }
    let spp = usize::from(dec.colortype().map_err(tiff_error)?.num_samples());
    let mut buf = DecodingResult::U8(Vec::new());
    dec.read_image_to_buffer(&mut buf).map_err(tiff_error)?;
    let (wu, hu) = (w as usize, h as usize);
    let values = wu * hu * spp;
    let samples = match buf {
        DecodingResult::U8(v) if bps < 8 => Samples::U8(unpack_bits(&v, wu, hu, spp, bps)?),
        DecodingResult::U8(v) => Samples::U8(first(v, values)?),
        DecodingResult::U16(v) => Samples::U16(first(v, values)?),
        DecodingResult::F32(v) => Samples::F32(first(v, values)?),
        _ => {
            return Err(ImageError::UnsupportedFormat(format!(
                "TIFF samples of {bps} bits in this sample format"
            )))
        }
    };
    Ok((samples, spp))
}

fn first<T>(mut v: Vec<T>, n: usize) -> Result<Vec<T>, ImageError> {
    if v.len() < n {
        return Err(short());
    }
    v.truncate(n);
    Ok(v)
}

/// A planar page, one plane at a time: each read from a copy of the file that
/// describes that plane alone as a one-sample chunky image (the `tiff` crate reads
/// only the first plane of tiled planar files and indexes the tiles of later planes
/// past its tables), then woven into pixels.
fn read_planes(
    dec: &mut Decoder<Cursor<&[u8]>>,
    bytes: &[u8],
    limits: &Limits,
    w: u32,
    h: u32,
    bps: u8,
    spp: usize,
) -> Result<Samples, ImageError> {
    let per_plane = Chunks::of(dec, w, h)?.count;
    let mut planes = Vec::with_capacity(spp);
    for p in 0..spp {
        let copy = plane_copy(bytes, p, per_plane).ok_or_else(|| {
            ImageError::UnsupportedFormat(format!(
                "a planar TIFF whose plane {p} cannot be described on its own"
            ))
        })?;
        let mut one = open(&copy, limits)?;
        let (samples, 1) = read_samples(&mut one, &copy, limits, w, h, bps)? else {
            return Err(short());
        };
        planes.push(samples);
    }
    let pixels = w as usize * h as usize;
    let mismatch = || ImageError::Decode("the TIFF's planes differ in sample type".into());
    Ok(match planes.first() {
        Some(Samples::U8(_)) => Samples::U8(
            weave(planes, pixels, |s| match s {
                Samples::U8(v) => Some(v),
                _ => None,
            })
            .ok_or_else(mismatch)?,
        ),
        Some(Samples::U16(_)) => Samples::U16(
            weave(planes, pixels, |s| match s {
                Samples::U16(v) => Some(v),
                _ => None,
            })
            .ok_or_else(mismatch)?,
        ),
        _ => Samples::F32(
            weave(planes, pixels, |s| match s {
                Samples::F32(v) => Some(v),
                _ => None,
            })
            .ok_or_else(mismatch)?,
        ),
    })
}

/// Planes of `pixels` values each, as pixels of one value from every plane.
fn weave<T: Copy + Default>(
    planes: Vec<Samples>,
    pixels: usize,
    take: impl Fn(Samples) -> Option<Vec<T>>,
) -> Option<Vec<T>> {
    let n = planes.len();
    let mut out = vec![T::default(); pixels * n];
    for (s, plane) in planes.into_iter().enumerate() {
        let plane = take(plane)?;
        for (i, v) in plane.iter().take(pixels).enumerate() {
            out[i * n + s] = *v;
        }
    }
    Some(out)
}

/// Bit-packed samples (rows padded to a byte), one byte per sample, unscaled.
fn unpack_bits(v: &[u8], w: usize, h: usize, spp: usize, bps: u8) -> Result<Vec<u8>, ImageError> {
    let bits = usize::from(bps);
    let row_values = w * spp;
    let stride = (row_values * bits).div_ceil(8);
    let mask = ((1u16 << bps) - 1) as u8;
    let mut out = Vec::with_capacity(row_values * h);
    for y in 0..h {
        let row = v.get(y * stride..(y + 1) * stride).ok_or_else(short)?;
        out.extend((0..row_values).map(|i| {
            let bit = i * bits;
            (row[bit / 8] >> (8 - bits - bit % 8)) & mask
        }));
    }
    Ok(out)
}

fn short() -> ImageError {
    ImageError::Decode("the TIFF holds fewer samples than its size says".into())
}

/// Samples to 8 bits as Pillow's unpackers do: 16-bit keeps the high byte, float is
/// clipped to 0..255 and truncated (`f2l`), bit-packed grey is scaled to 0..255.
fn to_u8(samples: Samples, bps: u8, scale_low_bits: bool) -> Vec<u8> {
    match samples {
        Samples::U8(v) if scale_low_bits && bps < 8 => {
            let k = 255 / ((1u16 << bps) - 1) as u8;
            v.into_iter().map(|s| s * k).collect()
        }
        Samples::U8(v) => v,
        Samples::U16(v) => v.into_iter().map(|s| (s >> 8) as u8).collect(),
        Samples::F32(v) => v.into_iter().map(f2l).collect(),
    }
}

fn f2l(v: f32) -> u8 {
    if v <= 0.0 {
        0
    } else if v >= 255.0 {
        255
    } else {
        v as u8
    }
}

fn samples_image(
    dec: &mut Decoder<Cursor<&[u8]>>,
    bytes: &[u8],
    limits: &Limits,
    photometric: u16,
    w: u32,
    h: u32,
    extra: Option<u16>,
) -> Result<DynamicImage, ImageError> {
    let bps = bits_per_sample(dec)?;
    let stored: usize = tag(dec, Tag::SamplesPerPixel)?.unwrap_or(1);
    if !matches!(bps, 1..=8 | 16 | 32) {
        return Err(unsupported(photometric, stored, bps));
    }
    let bps = bps as u8;
    let (samples, spp) = read_samples(dec, bytes, limits, w, h, bps)?;
    let bad = || unsupported(photometric, spp, u64::from(bps));
    let px = w as usize * h as usize;
    match (photometric, spp) {
        (PHOTOMETRIC_WHITE_IS_ZERO | PHOTOMETRIC_BLACK_IS_ZERO, 1) => match samples {
            // Pillow's I;16, which its parent clips as PIL's convert("RGB") does.
            Samples::U16(v) => image::ImageBuffer::from_raw(w, h, v)
                .map(DynamicImage::ImageLuma16)
                .ok_or_else(short),
            other => image::GrayImage::from_raw(w, h, to_u8(other, bps, true))
                .map(DynamicImage::ImageLuma8)
                .ok_or_else(short),
        },
        (PHOTOMETRIC_WHITE_IS_ZERO | PHOTOMETRIC_BLACK_IS_ZERO, 2) => {
            let la = to_u8(samples, bps, true);
            match extra {
                Some(EXTRA_UNSPECIFIED) => {
                    let l = la.chunks_exact(2).map(|p| p[0]).collect();
                    image::GrayImage::from_raw(w, h, l).map(DynamicImage::ImageLuma8)
                }
                Some(EXTRA_ASSOCIATED_ALPHA) => {
                    let mut la = la;
                    la.chunks_exact_mut(2).for_each(unpremultiply);
                    image::GrayAlphaImage::from_raw(w, h, la).map(DynamicImage::ImageLumaA8)
                }
                _ => image::GrayAlphaImage::from_raw(w, h, la).map(DynamicImage::ImageLumaA8),
            }
            .ok_or_else(short)
        }
        (PHOTOMETRIC_RGB, 3) => image::RgbImage::from_raw(w, h, to_u8(samples, bps, false))
            .map(DynamicImage::ImageRgb8)
            .ok_or_else(short),
        (PHOTOMETRIC_RGB, n) if n >= 4 => {
            let v = to_u8(samples, bps, false);
            let pixels = v.chunks_exact(n).take(px);
            match extra {
                // RGBX: PIL reads the colour and ignores the rest.
                Some(EXTRA_UNSPECIFIED) => {
                    let rgb = pixels.flat_map(|p| [p[0], p[1], p[2]]).collect();
                    image::RgbImage::from_raw(w, h, rgb).map(DynamicImage::ImageRgb8)
                }
                Some(EXTRA_ASSOCIATED_ALPHA) => {
                    let mut rgba: Vec<u8> = pixels.flat_map(|p| [p[0], p[1], p[2], p[3]]).collect();
                    rgba.chunks_exact_mut(4).for_each(unpremultiply);
                    image::RgbaImage::from_raw(w, h, rgba).map(DynamicImage::ImageRgba8)
                }
                // Unassociated alpha, or ExtraSamples missing (PIL: RGBA either way).
                _ => {
                    let rgba = pixels.flat_map(|p| [p[0], p[1], p[2], p[3]]).collect();
                    image::RgbaImage::from_raw(w, h, rgba).map(DynamicImage::ImageRgba8)
                }
            }
            .ok_or_else(short)
        }
        (PHOTOMETRIC_CMYK, n) if n >= 4 => {
            let v = to_u8(samples, bps, false);
            let rgb = v.chunks_exact(n).take(px).flat_map(cmyk2rgb).collect();
            image::RgbImage::from_raw(w, h, rgb)
                .map(DynamicImage::ImageRgb8)
                .ok_or_else(short)
        }
        _ => Err(bad()),
    }
}

fn unsupported(photometric: u16, spp: usize, bps: u64) -> ImageError {
    ImageError::UnsupportedFormat(format!(
        "TIFF with Photometric={photometric}, {spp} samples of {bps} bits"
    ))
}

/// Pillow's `unpackRGBa` (and `LA` likewise): premultiplied colour divided by alpha,
/// truncating; zero alpha leaves zeros.
fn unpremultiply(px: &mut [u8]) {
    let (colour, alpha) = px.split_at_mut(px.len() - 1);
    let a = u32::from(alpha[0]);
    match a {
        0 => colour.iter_mut().for_each(|c| *c = 0),
        255 => {}
        _ => colour
            .iter_mut()
            .for_each(|c| *c = (u32::from(*c) * 255 / a).min(255) as u8),
    }
}

/// Pillow's `cmyk2rgb`: `nk - c * nk / 255` per channel, `nk = 255 - k`, rounded as
/// its `MULDIV255`.
fn cmyk2rgb(p: &[u8]) -> [u8; 3] {
    let nk = 255 - i32::from(p[3]);
    let f = |c: u8| {
        let t = i32::from(c) * nk + 128;
        (nk - (((t >> 8) + t) >> 8)).clamp(0, 255) as u8
    };
    [f(p[0]), f(p[1]), f(p[2])]
}

/// A palette TIFF: the indices read as grey (the `tiff` crate refuses palettes, so the
/// Photometric tag of a copy says BlackIsZero), mapped through the ColorMap with
/// Pillow's `value // 256`.
fn palette(
    bytes: &[u8],
    limits: &Limits,
    dec: &mut Decoder<Cursor<&[u8]>>,
    w: u32,
    h: u32,
) -> Result<DynamicImage, ImageError> {
    let bps = bits_per_sample(dec)?;
    let spp: usize = tag(dec, Tag::SamplesPerPixel)?.unwrap_or(1);
    if spp != 1 || !matches!(bps, 1 | 2 | 4 | 8) {
        return Err(unsupported(PHOTOMETRIC_PALETTE, spp, bps));
    }
    let map = tag_vec(dec, Tag::ColorMap)?;
    let n = 1usize << bps;
    if map.len() < 3 * n {
        return Err(ImageError::Decode(format!(
            "the TIFF's ColorMap has {} values; {} bits per index need {}",
            map.len(),
            bps,
            3 * n
        )));
    }
    let grey =
        with_short_tag(bytes, TAG_PHOTOMETRIC, PHOTOMETRIC_BLACK_IS_ZERO).ok_or_else(|| {
            ImageError::UnsupportedFormat("a palette TIFF whose first IFD cannot be read".into())
        })?;
    let mut gdec = open(&grey, limits)?;
    let (Samples::U8(idx), 1) = read_samples(&mut gdec, &grey, limits, w, h, bps as u8)? else {
        return Err(unsupported(PHOTOMETRIC_PALETTE, spp, bps));
    };
    let entry = |i: usize, band: usize| (map[band * n + i] / 256).min(255) as u8;
    let rgb = idx
        .iter()
        .flat_map(|&i| {
            let i = usize::from(i);
            [entry(i, 0), entry(i, 1), entry(i, 2)]
        })
        .collect();
    image::RgbImage::from_raw(w, h, rgb)
        .map(DynamicImage::ImageRgb8)
        .ok_or_else(short)
}

/// The first IFD of a classic (not Big) TIFF: its byte order and where each 12-byte
/// entry sits, for the copies this module edits.
struct Ifd {
    le: bool,
    entries: Vec<usize>,
}

impl Ifd {
    fn parse(bytes: &[u8]) -> Option<Ifd> {
        let le = match bytes.get(..4)? {
            [b'I', b'I', 42, 0] => true,
            [b'M', b'M', 0, 42] => false,
            _ => return None,
        };
        let mut ifd = Ifd {
            le,
            entries: Vec::new(),
        };
        let at = usize::try_from(ifd.u32(bytes, 4)?).ok()?;
        let count = usize::from(ifd.u16(bytes, at)?);
        ifd.entries = (0..count).map(|k| at + 2 + 12 * k).collect();
        // Every entry must be inside the file.
        bytes.get(at..at + 2 + 12 * count)?;
        Some(ifd)
    }

    fn u16(&self, b: &[u8], at: usize) -> Option<u16> {
        let v: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(if self.le {
            u16::from_le_bytes(v)
        } else {
            u16::from_be_bytes(v)
        })
    }

    fn u32(&self, b: &[u8], at: usize) -> Option<u32> {
        let v: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if self.le {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        })
    }

    fn put(&self, out: &mut [u8], at: usize, size: usize, v: u64) {
        let b = if self.le {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        };
        let b = if self.le { &b[..size] } else { &b[8 - size..] };
        out[at..at + size].copy_from_slice(b);
    }

    /// Bytes per value of a SHORT, LONG or BYTE entry.
    fn size(typ: u16) -> Option<usize> {
        match typ {
            1 | 7 => Some(1),
            3 => Some(2),
            4 => Some(4),
            _ => None,
        }
    }

    /// Where entry `e`'s values sit: in the entry when they fit in 4 bytes.
    fn values_at(&self, b: &[u8], e: usize, size: usize, count: usize) -> Option<usize> {
        if size * count <= 4 {
            Some(e + 8)
        } else {
            usize::try_from(self.u32(b, e + 8)?).ok()
        }
    }

    fn value(&self, b: &[u8], at: usize, size: usize) -> Option<u64> {
        match size {
            1 => b.get(at).map(|&v| u64::from(v)),
            2 => self.u16(b, at).map(u64::from),
            _ => self.u32(b, at).map(u64::from),
        }
    }

    /// Entry `e` in `out` made to hold the one value `v`.
    fn set_one(&self, out: &mut [u8], e: usize, size: usize, v: u64) {
        self.put(out, e + 4, 4, 1);
        out[e + 8..e + 12].fill(0);
        self.put(out, e + 8, size, v);
    }
}

/// A copy of a TIFF whose first IFD's one-SHORT tag `tag` holds `value`; `None`
/// when the structure does not allow it.
fn with_short_tag(bytes: &[u8], tag: u16, value: u16) -> Option<Vec<u8>> {
    let ifd = Ifd::parse(bytes)?;
    for &e in &ifd.entries {
        // Of type SHORT, one value: held in the entry itself.
        if ifd.u16(bytes, e)? == tag && ifd.u16(bytes, e + 2)? == 3 && ifd.u32(bytes, e + 4)? == 1 {
            let mut out = bytes.to_vec();
            ifd.put(&mut out, e + 8, 2, u64::from(value));
            return Some(out);
        }
    }
    None
}

/// A copy of a planar TIFF that describes plane `plane` alone: one sample a pixel,
/// chunky, grey, its chunks the `per_plane` offsets and byte counts of that plane.
fn plane_copy(bytes: &[u8], plane: usize, per_plane: usize) -> Option<Vec<u8>> {
    const SAMPLES_PER_PIXEL: u16 = 277;
    const PLANAR_CONFIGURATION: u16 = 284;
    const BITS_PER_SAMPLE: u16 = 258;
    const SAMPLE_FORMAT: u16 = 339;
    const CHUNK_TAGS: [u16; 4] = [273, 279, 324, 325];
    let ifd = Ifd::parse(bytes)?;
    let mut out = bytes.to_vec();
    for &e in &ifd.entries {
        let tag = ifd.u16(bytes, e)?;
        let size = Ifd::size(ifd.u16(bytes, e + 2)?);
        let count = usize::try_from(ifd.u32(bytes, e + 4)?).ok()?;
        match (tag, size) {
            (SAMPLES_PER_PIXEL | PLANAR_CONFIGURATION, Some(n)) => ifd.set_one(&mut out, e, n, 1),
            (TAG_PHOTOMETRIC, Some(n)) => {
                let at = ifd.values_at(bytes, e, n, count)?;
                if ifd.value(bytes, at, n)? != u64::from(PHOTOMETRIC_WHITE_IS_ZERO) {
                    ifd.set_one(&mut out, e, n, u64::from(PHOTOMETRIC_BLACK_IS_ZERO));
                }
            }
            (BITS_PER_SAMPLE | SAMPLE_FORMAT, Some(n)) => {
                let at = ifd.values_at(bytes, e, n, count)?;
                let first = ifd.value(bytes, at, n)?;
                ifd.set_one(&mut out, e, n, first);
            }
            (TAG_EXTRA_SAMPLES, _) => ifd.put(&mut out, e + 4, 4, 0),
            (t, Some(n)) if CHUNK_TAGS.contains(&t) => {
                if count < per_plane * (plane + 1) {
                    return None;
                }
                let at = ifd.values_at(bytes, e, n, count)? + plane * per_plane * n;
                ifd.put(&mut out, e + 4, 4, per_plane as u64);
                if per_plane * n <= 4 {
                    let values: Vec<u64> = (0..per_plane)
                        .map(|i| ifd.value(bytes, at + i * n, n))
                        .collect::<Option<_>>()?;
                    out[e + 8..e + 12].fill(0);
                    for (i, v) in values.into_iter().enumerate() {
                        ifd.put(&mut out, e + 8 + i * n, n, v);
                    }
                } else {
                    ifd.put(&mut out, e + 8, 4, at as u64);
                }
            }
            _ => {}
        }
    }
    Some(out)
}

/// JPEG-in-TIFF with YCbCr: each strip or tile is a JPEG (after the shared
/// JPEGTables), decoded to RGB by libjpeg-turbo as libtiff's JPEGCOLORMODE_RGB does in
/// Pillow, and placed where the chunk sits.
fn ycbcr_jpeg(
    bytes: &[u8],
    dec: &mut Decoder<Cursor<&[u8]>>,
    w: u32,
    h: u32,
) -> Result<DynamicImage, ImageError> {
    let tables = match dec.find_tag(Tag::JPEGTables).map_err(tiff_error)? {
        Some(v) => v.into_u8_vec().map_err(tiff_error)?,
        None => Vec::new(),
    };
    let layout = Chunks::of(dec, w, h)?;
    let (wu, hu) = (w as usize, h as usize);
    let mut rgb = vec![0u8; wu * hu * 3];
    let (cw, ch) = (layout.width as usize, layout.height as usize);
    for c in 0..layout.count {
        let data = layout.data(bytes, c)?;
        // The tables stream ends with EOI and the chunk starts with SOI: one stream.
        let jpeg: Vec<u8> = if tables.len() > 4 && data.len() > 2 {
            let mut j = tables[..tables.len() - 2].to_vec();
            j.extend_from_slice(&data[2..]);
            j
        } else {
            data.to_vec()
        };
        let img = turbojpeg::decompress(&jpeg, turbojpeg::PixelFormat::RGB)
            .map_err(|e| ImageError::Decode(format!("TIFF chunk {c}: {e}")))?;
        let (x0, y0) = ((c % layout.across) * cw, (c / layout.across) * ch);
        let copy_w = img.width.min(cw).min(wu - x0);
        let copy_h = img.height.min(ch).min(hu - y0);
        for y in 0..copy_h {
            let src = &img.pixels[y * img.pitch..y * img.pitch + copy_w * 3];
            let at = ((y0 + y) * wu + x0) * 3;
            rgb[at..at + copy_w * 3].copy_from_slice(src);
        }
    }
    image::RgbImage::from_raw(w, h, rgb)
        .map(DynamicImage::ImageRgb8)
        .ok_or_else(short)
}

/// Where a page's strips or tiles are, from the tags alone.
struct Chunks {
    offsets: Vec<u64>,
    counts: Vec<u64>,
    /// Nominal chunk size (a strip is the image's width by RowsPerStrip).
    width: u32,
    height: u32,
    across: usize,
    count: usize,
}

impl Chunks {
    fn of(dec: &mut Decoder<Cursor<&[u8]>>, w: u32, h: u32) -> Result<Chunks, ImageError> {
        let tiled = dec.find_tag(Tag::TileWidth).map_err(tiff_error)?.is_some();
        let (offsets, counts, cw, ch) = if tiled {
            (
                tag_vec(dec, Tag::TileOffsets)?,
                tag_vec(dec, Tag::TileByteCounts)?,
                tag::<u32>(dec, Tag::TileWidth)?.unwrap_or(w),
                tag::<u32>(dec, Tag::TileLength)?.unwrap_or(h),
            )
        } else {
            (
                tag_vec(dec, Tag::StripOffsets)?,
                tag_vec(dec, Tag::StripByteCounts)?,
                w,
                tag::<u32>(dec, Tag::RowsPerStrip)?.unwrap_or(h).min(h),
            )
        };
        if cw == 0 || ch == 0 {
            return Err(ImageError::Decode("a TIFF chunk of size 0".into()));
        }
        let across = w.div_ceil(cw) as usize;
        let count = across * h.div_ceil(ch) as usize;
        if offsets.len() < count || counts.len() < count {
            return Err(ImageError::Decode(format!(
                "the TIFF lists {} chunks; its size needs {count}",
                offsets.len().min(counts.len())
            )));
        }
        Ok(Chunks {
            offsets,
            counts,
            width: cw,
            height: ch,
            across,
            count,
        })
    }

    /// The stored (compressed) bytes of chunk `c`.
    fn data<'a>(&self, bytes: &'a [u8], c: usize) -> Result<&'a [u8], ImageError> {
        let start = usize::try_from(self.offsets[c]).map_err(|_| short())?;
        let len = usize::try_from(self.counts[c]).map_err(|_| short())?;
        bytes
            .get(start..start.saturating_add(len))
            .ok_or_else(|| ImageError::Decode(format!("TIFF chunk {c} lies past the end")))
    }
}

/// CCITT Group 3, one-dimensional (the `tiff` crate reads only Group 4): each strip
/// through the `fax` crate's decoder. A run the coding calls white is a 0 bit, and
/// the Photometric tag says what a 0 is, as in libtiff.
fn fax3(
    bytes: &[u8],
    dec: &mut Decoder<Cursor<&[u8]>>,
    photometric: u16,
    w: u32,
    h: u32,
) -> Result<DynamicImage, ImageError> {
    const T4_2D: u64 = 1;
    const FILL_ORDER_LSB_FIRST: u16 = 2;
    /// Return To Control, six EOLs. libtiff ends a strip without it; the decoder keeps
    /// a line only once the EOL after it is read.
    const RTC: [u8; 9] = [0x00, 0x10, 0x01, 0x00, 0x10, 0x01, 0x00, 0x10, 0x01];
    let options: u64 = tag(dec, Tag::Unknown(292))?.unwrap_or(0);
    if options & T4_2D != 0 {
        return Err(ImageError::UnsupportedFormat(
            "CCITT Group 3 with two-dimensional coding".into(),
        ));
    }
    let width = u16::try_from(w)
        .map_err(|_| ImageError::UnsupportedFormat(format!("a fax {w} pixels wide")))?;
    let reversed = tag::<u16>(dec, Tag::Unknown(266))? == Some(FILL_ORDER_LSB_FIRST);
    let layout = Chunks::of(dec, w, h)?;
    if layout.width != w {
        return Err(ImageError::UnsupportedFormat(
            "CCITT Group 3 in tiles".into(),
        ));
    }
    let (zero, one) = match photometric {
        PHOTOMETRIC_WHITE_IS_ZERO => (255u8, 0u8),
        _ => (0, 255),
    };
    let mut grey = Vec::with_capacity(w as usize * h as usize);
    for c in 0..layout.count {
        let rows = (layout.height as usize).min(h as usize - c * layout.height as usize);
        let data = layout.data(bytes, c)?;
        let stream = data
            .iter()
            .map(|&b| if reversed { b.reverse_bits() } else { b })
            .chain(RTC);
        let mut got = 0;
        fax::decoder::decode_g3(stream, |line| {
            if got < rows {
                grey.extend(fax::decoder::pels(line, width).map(|p| match p {
                    fax::Color::White => zero,
                    fax::Color::Black => one,
                }));
                got += 1;
            }
        });
        if got < rows {
            return Err(ImageError::Decode(format!(
                "CCITT Group 3 strip {c}: {got} of {rows} rows decode"
            )));
        }
    }
    image::GrayImage::from_raw(w, h, grey)
        .map(DynamicImage::ImageLuma8)
        .ok_or_else(short)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_and_premultiplied_alpha_follow_pillow() {
        assert_eq!(cmyk2rgb(&[0, 0, 0, 0]), [255, 255, 255]);
        assert_eq!(cmyk2rgb(&[255, 0, 0, 0]), [0, 255, 255]);
        // nk = 155; 100 * 155 / 255 = 60.78 -> 61 (MULDIV255 rounds); 155 - 61 = 94.
        assert_eq!(cmyk2rgb(&[100, 0, 255, 100]), [94, 155, 0]);
        let mut p = [50, 100, 200, 128];
        unpremultiply(&mut p);
        assert_eq!(p, [99, 199, 255, 128]);
        let mut p = [50, 100, 200, 0];
        unpremultiply(&mut p);
        assert_eq!(p, [0, 0, 0, 0]);
    }

    #[test]
    fn floats_clip_and_truncate_like_f2l() {
        assert_eq!(
            [-1.0, 0.99, 1.5, 254.9, 300.0].map(f2l),
            [0, 0, 1, 254, 255]
        );
    }

    /// A little-endian one-strip TIFF: `entries` are (tag, SHORT values); LONG
    /// StripOffsets / StripByteCounts point at `pixels`, placed after the IFD.
    fn tiff(w: u32, h: u32, entries: &[(u16, Vec<u16>)], pixels: &[u8]) -> Vec<u8> {
        let n = entries.len() + 4;
        let ifd_end = 8 + 2 + 12 * n + 4;
        let mut extra: Vec<u8> = Vec::new();
        let mut ifd: Vec<(u16, u16, u32, [u8; 4])> =
            vec![(256, 4, 1, w.to_le_bytes()), (257, 4, 1, h.to_le_bytes())];
        for (tag, values) in entries {
            let mut field = [0u8; 4];
            if values.len() <= 2 {
                for (i, v) in values.iter().enumerate() {
                    field[2 * i..2 * i + 2].copy_from_slice(&v.to_le_bytes());
                }
            } else {
                field = ((ifd_end + extra.len()) as u32).to_le_bytes();
                values
                    .iter()
                    .for_each(|v| extra.extend_from_slice(&v.to_le_bytes()));
            }
            ifd.push((*tag, 3, values.len() as u32, field));
        }
        let strip = (ifd_end + extra.len()) as u32;
        ifd.push((273, 4, 1, strip.to_le_bytes()));
        ifd.push((279, 4, 1, (pixels.len() as u32).to_le_bytes()));
        ifd.sort_by_key(|e| e.0);
        let mut b = b"II*\0\x08\0\0\0".to_vec();
        b.extend_from_slice(&(n as u16).to_le_bytes());
        for (tag, ty, count, field) in ifd {
            b.extend_from_slice(&tag.to_le_bytes());
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(&count.to_le_bytes());
            b.extend_from_slice(&field);
        }
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&extra);
        b.extend_from_slice(pixels);
        b
    }

    #[test]
    fn a_palette_tiff_maps_through_its_colormap_as_pillow_does() {
        // 2 bits an index: the map holds 4 reds, 4 greens, 4 blues (16-bit values).
        let map: Vec<u16> = [0, 256, 65535, 5000, 0, 0, 512, 0, 0, 0, 0, 65535].to_vec();
        // One row of indices 0, 1, 2, 3, packed as 0b00_01_10_11.
        let b = tiff(
            4,
            1,
            &[(258, vec![2]), (262, vec![3]), (320, map)],
            &[0b0001_1011],
        );
        let (img, _) = decode(&b, &Limits::default()).unwrap();
        let got: Vec<[u8; 3]> = img.into_rgb8().pixels().map(|p| p.0).collect();
        // Pillow: value // 256.
        assert_eq!(got, vec![[0, 0, 0], [1, 0, 0], [255, 2, 0], [19, 0, 255]]);
    }

    #[test]
    fn crafted_tiff_headers_are_errors_not_panics() {
        let big = tiff(
            100_000,
            100_000,
            &[(258, vec![8]), (262, vec![1])],
            &[0; 16],
        );
        assert!(matches!(
            decode(&big, &Limits::default()),
            Err(ImageError::TooLarge(_))
        ));
        let zero_bits = tiff(4, 1, &[(258, vec![0]), (262, vec![1])], &[0; 4]);
        assert!(decode(&zero_bits, &Limits::default()).is_err());
        let short_map = tiff(
            4,
            1,
            &[(258, vec![8]), (262, vec![3]), (320, vec![1, 2, 3])],
            &[0; 4],
        );
        assert!(matches!(
            decode(&short_map, &Limits::default()),
            Err(ImageError::Decode(_))
        ));
        let few_pixels = tiff(64, 64, &[(258, vec![8]), (262, vec![1])], &[0; 10]);
        assert!(decode(&few_pixels, &Limits::default()).is_err());
    }

    #[test]
    fn a_photometric_patch_needs_a_real_ifd() {
        assert_eq!(
            with_short_tag(b"II*\0\xff\xff\xff\xff", TAG_PHOTOMETRIC, 1),
            None
        );
        assert_eq!(with_short_tag(b"GIF89a", TAG_PHOTOMETRIC, 1), None);
    }
}
