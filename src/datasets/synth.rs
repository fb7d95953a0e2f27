//! Procedurally drawn scenes whose captions are true by construction.
//!
//! This module owns the synthetic world of `capstream dataset synth`: its vocabulary
//! (shapes, colours, sizes, backgrounds), drawing a scene, writing its reference
//! captions from the scene itself, and speaking one of them. It does not write files
//! or choose splits; the CLI writes the triplets and `split` assigns them.
//!
//! Every image `i` of a seed draws from its own generator stream `(seed, i)`, so a
//! scene depends only on `(seed, i, size)`: the output is the same byte for byte on any
//! number of threads, and a larger `count` extends a smaller one.
//!
//! Captions only ever say what the scene metadata says. A colour word is always
//! directly followed by a shape word (`red circle`), a count word or article comes
//! before an optional size word, and spatial words (`left of`, `above`, `next to`…)
//! are used only between two objects that are the only ones of their kind, and only
//! when one axis clearly dominates the offset between their centres.

use std::io::Cursor;

use image::{ImageFormat, RgbImage};

use crate::datasets::Triplet;
use crate::dsp::wav::write_wav_pcm16;
use crate::error::{Error, Result};
use crate::speech::Speaker;
use crate::train::SplitMix64;

/// Shape kinds, in vocabulary order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    /// Circle.
    Circle,
    /// Square.
    Square,
    /// Triangle.
    Triangle,
    /// Star.
    Star,
    /// Hexagon.
    Hexagon,
    /// Diamond.
    Diamond,
    /// Cross.
    Cross,
    /// Heart.
    Heart,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 8] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Star,
        Shape::Hexagon,
        Shape::Diamond,
        Shape::Cross,
        Shape::Heart,
    ];

    /// The caption word for one.
    pub fn word(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Star => "star",
            Shape::Hexagon => "hexagon",
            Shape::Diamond => "diamond",
            Shape::Cross => "cross",
            Shape::Heart => "heart",
        }
    }

    /// The caption word for several.
    pub fn plural(self) -> &'static str {
        match self {
            Shape::Cross => "crosses",
            s => match s.word() {
                "circle" => "circles",
                "square" => "squares",
                "triangle" => "triangles",
                "star" => "stars",
                "hexagon" => "hexagons",
                "diamond" => "diamonds",
                _ => "hearts",
            },
        }
    }

    /// Whether the point `(u, v)` (shape frame: radius 1, `v` pointing down) is inside.
    fn contains(self, u: f32, v: f32) -> bool {
        match self {
            Shape::Circle => u * u + v * v <= 1.0,
            // Squares and crosses fill less of the unit disc's box than a circle does
            // at full extent; 0.82 keeps the areas of the kinds of one size comparable.
            Shape::Square => u.abs() <= 0.82 && v.abs() <= 0.82,
            Shape::Diamond => u.abs() + v.abs() <= 1.0,
            Shape::Cross => {
                let (a, b) = (u.abs(), v.abs());
                (a <= 0.3 && b <= 0.95) || (b <= 0.3 && a <= 0.95)
            }
            Shape::Heart => {
                // (x² + y² − 1)³ − x² y³ ≤ 0, spanning about x ∈ ±1.14, y ∈ [−1, 1.25].
                let x = u * 1.2;
                let y = -v * 1.2 + 0.12;
                let q = x * x + y * y - 1.0;
                q * q * q - x * x * y * y * y <= 0.0
            }
            Shape::Triangle => in_polygon(&TRIANGLE, u, v),
            Shape::Hexagon => in_polygon(&HEXAGON, u, v),
            Shape::Star => in_polygon(&STAR, u, v),
        }
    }
}

const TRIANGLE: [(f32, f32); 3] = [(0.0, -1.0), (0.95, 0.8), (-0.95, 0.8)];
// Regular hexagon with a flat top (vertices at 0°, 60°, …).
const HEXAGON: [(f32, f32); 6] = [
    (1.0, 0.0),
    (0.5, 0.866),
    (-0.5, 0.866),
    (-1.0, 0.0),
    (-0.5, -0.866),
    (0.5, -0.866),
];
// Five-pointed star, outer radius 1, inner 0.45, first point up.
const STAR: [(f32, f32); 10] = [
    (0.0, -1.0),
    (0.264, -0.364),
    (0.951, -0.309),
    (0.428, 0.139),
    (0.588, 0.809),
    (0.0, 0.45),
    (-0.588, 0.809),
    (-0.428, 0.139),
    (-0.951, -0.309),
    (-0.264, -0.364),
];

/// Even–odd crossing test.
fn in_polygon(p: &[(f32, f32)], x: f32, y: f32) -> bool {
    let mut inside = false;
    let mut j = p.len() - 1;
    for i in 0..p.len() {
        let (xi, yi) = p[i];
        let (xj, yj) = p[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Object colours, in vocabulary order. No grey: backgrounds are greyish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Colour {
    /// Red.
    Red,
    /// Green.
    Green,
    /// Blue.
    Blue,
    /// Yellow.
    Yellow,
    /// Orange.
    Orange,
    /// Purple.
    Purple,
    /// Pink.
    Pink,
    /// Brown.
    Brown,
    /// Black.
    Black,
    /// White.
    White,
}

impl Colour {
    /// Every colour.
    pub const ALL: [Colour; 10] = [
        Colour::Red,
        Colour::Green,
        Colour::Blue,
        Colour::Yellow,
        Colour::Orange,
        Colour::Purple,
        Colour::Pink,
        Colour::Brown,
        Colour::Black,
        Colour::White,
    ];

    /// The caption word.
    pub fn word(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Orange => "orange",
            Colour::Purple => "purple",
            Colour::Pink => "pink",
            Colour::Brown => "brown",
            Colour::Black => "black",
            Colour::White => "white",
        }
    }

    /// The drawn colour: saturated and far apart, so that a small model can tell them.
    pub fn rgb(self) -> [f32; 3] {
        match self {
            Colour::Red => [220.0, 30.0, 30.0],
            Colour::Green => [30.0, 165.0, 50.0],
            Colour::Blue => [30.0, 70.0, 225.0],
            Colour::Yellow => [245.0, 220.0, 25.0],
            Colour::Orange => [250.0, 130.0, 15.0],
            Colour::Purple => [135.0, 40.0, 185.0],
            Colour::Pink => [250.0, 120.0, 195.0],
            Colour::Brown => [120.0, 70.0, 25.0],
            Colour::Black => [15.0, 15.0, 15.0],
            Colour::White => [250.0, 250.0, 250.0],
        }
    }
}

/// Object sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Size {
    /// Small.
    Small,
    /// Medium.
    Medium,
    /// Large.
    Large,
}

impl Size {
    /// Every size.
    pub const ALL: [Size; 3] = [Size::Small, Size::Medium, Size::Large];

    /// The caption word.
    pub fn word(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Medium => "medium",
            Size::Large => "large",
        }
    }

    /// Radius as a fraction of the image side.
    fn radius(self) -> f32 {
        match self {
            Size::Small => 0.075,
            Size::Medium => 0.11,
            Size::Large => 0.155,
        }
    }
}

/// Background kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Background {
    /// Flat.
    Flat,
    /// Gradient.
    Gradient,
    /// Stripes.
    Stripes,
    /// Noise.
    Noise,
    /// Grid.
    Grid,
}

impl Background {
    /// Every background.
    pub const ALL: [Background; 5] = [
        Background::Flat,
        Background::Gradient,
        Background::Stripes,
        Background::Noise,
        Background::Grid,
    ];

    /// The caption adjective (`on a striped background`).
    pub fn word(self) -> &'static str {
        match self {
            Background::Flat => "plain",
            Background::Gradient => "shaded",
            Background::Stripes => "striped",
            Background::Noise => "speckled",
            Background::Grid => "checkered",
        }
    }
}

/// One drawn object.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Shape kind.
    pub shape: Shape,
    /// Fill colour.
    pub colour: Colour,
    /// Size class.
    pub size: Size,
    /// Centre x in pixels (right).
    pub x: f32,
    /// Centre y in pixels (down).
    pub y: f32,
    /// Radius in pixels.
    pub radius: f32,
}

/// Objects of one kind: same shape, colour and size. A scene never has two groups with
/// the same shape and colour, so `two red circles` always counts all red circles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Shape kind.
    pub shape: Shape,
    /// Fill colour.
    pub colour: Colour,
    /// Size class of every object of the group.
    pub size: Size,
    /// Number of objects (1–4).
    pub count: usize,
}

/// Where one object is relative to another, from their drawn centres.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// Left of.
    LeftOf,
    /// Right of.
    RightOf,
    /// Above.
    Above,
    /// Below.
    Below,
}

/// A scene: what was drawn, as the captions describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// Image side in pixels.
    pub side: u32,
    /// Background kind.
    pub background: Background,
    /// Groups in caption order.
    pub groups: Vec<Group>,
    /// Objects, grouped in `groups` order.
    pub objects: Vec<Object>,
}

impl Scene {
    /// `a` relative to `b`, when one axis clearly dominates (1.5×) the offset between
    /// the centres; `None` for diagonal arrangements, where either word would mislead.
    pub fn relation(a: &Object, b: &Object) -> Option<Relation> {
        let (dx, dy) = (a.x - b.x, a.y - b.y);
        if dx.abs() >= 1.5 * dy.abs() {
            Some(if dx < 0.0 {
                Relation::LeftOf
            } else {
                Relation::RightOf
            })
        } else if dy.abs() >= 1.5 * dx.abs() {
            Some(if dy < 0.0 {
                Relation::Above
            } else {
                Relation::Below
            })
        } else {
            None
        }
    }

    /// The object of a shape and colour, when there is exactly one.
    pub fn single(&self, shape: Shape, colour: Colour) -> Option<&Object> {
        let mut it = self
            .objects
            .iter()
            .filter(|o| o.shape == shape && o.colour == colour);
        match (it.next(), it.next()) {
            (Some(o), None) => Some(o),
            _ => None,
        }
    }
}

/// Options of [`synthesize`].
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Number of images.
    pub count: usize,
    /// Seed: the same seed gives the same rows.
    pub seed: u64,
    /// Image side in pixels (at least 32).
    pub size: u32,
    /// Speak the first caption of each image into `audio`.
    pub speaker: Option<Speaker>,
    /// Image encoding: PNG (lossless) or JPEG (quality 92).
    pub format: ImageFormat,
    /// Worker threads (at least 1); the result does not depend on it.
    pub threads: usize,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            count: 8475,
            seed: 0,
            size: 128,
            speaker: Some(Speaker::default()),
            format: ImageFormat::Png,
            threads: 1,
        }
    }
}

/// One synthetic row with the scene it shows.
#[derive(Debug, Clone)]
pub struct Synth {
    /// The row as written.
    pub triplet: Triplet,
    /// What its image shows.
    pub scene: Scene,
}

/// Draws `count` scenes (ids `synth-<seed>-<index>`), with captions and, when asked,
/// spoken audio; `split` is left unset. Rows come back in index order.
pub fn synthesize(opts: &SynthOptions) -> Result<Vec<Synth>> {
    if opts.size < 32 {
        return Err(Error::Config("synth: size must be at least 32".into()));
    }
    if !matches!(opts.format, ImageFormat::Png | ImageFormat::Jpeg) {
        return Err(Error::Config("synth: format must be PNG or JPEG".into()));
    }
    if let Some(s) = &opts.speaker {
        s.validate()?;
    }
    let threads = opts.threads.clamp(1, opts.count.max(1));
    // Strided work split: each thread takes every `threads`-th index, so that slow
    // (speaking) and fast rows spread evenly; results are put back in index order.
    let parts: Vec<Result<Vec<(usize, Synth)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t..opts.count)
                        .step_by(threads)
                        .map(|i| synth_one(opts, i).map(|r| (i, r)))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Runtime("synth worker panicked".into())))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(opts.count);
    for p in parts {
        all.extend(p?);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

/// One row: scene `index` of `opts.seed`.
pub fn synth_one(opts: &SynthOptions, index: usize) -> Result<Synth> {
    let mut rng = SplitMix64::new(opts.seed, index as u64);
    let scene = draw_scene_layout(&mut rng, opts.size);
    let img = render(&scene, &mut rng, opts.size);
    let captions = captions(&scene, &mut rng);
    let mut bytes = Vec::new();
    match opts.format {
        ImageFormat::Jpeg => {
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 92);
            img.write_with_encoder(enc)
        }
        f => img.write_to(&mut Cursor::new(&mut bytes), f),
    }
    .map_err(|e| Error::Stage {
        stage: "synth".into(),
        message: format!("encoding image {index}: {e}"),
    })?;
    let audio = match &opts.speaker {
        Some(s) => Some(write_wav_pcm16(&s.speak(&captions[0])?, s.sample_rate)),
        None => None,
    };
    Ok(Synth {
        triplet: Triplet {
            id: format!("synth-{}-{index:06}", opts.seed),
            image: bytes,
            captions,
            audio,
            split: None,
        },
        scene,
    })
}

fn unit(rng: &mut SplitMix64) -> f32 {
    (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32
}

fn pick<T: Copy>(rng: &mut SplitMix64, xs: &[T]) -> T {
    xs[rng.below(xs.len() as u64) as usize]
}

/// Chooses groups and places their objects without overlap.
fn draw_scene_layout(rng: &mut SplitMix64, side: u32) -> Scene {
    let background = pick(rng, &Background::ALL);
    let n = 1 + rng.below(4) as usize;
    // Kinds: 1..=n distinct (shape, colour) pairs sharing the n objects.
    let kinds = 1 + rng.below(n as u64) as usize;
    let mut counts = vec![1usize; kinds];
    for _ in kinds..n {
        let k = rng.below(kinds as u64) as usize;
        counts[k] += 1;
    }
    let mut groups: Vec<Group> = Vec::new();
    for count in counts {
        loop {
            let (shape, colour) = (pick(rng, &Shape::ALL), pick(rng, &Colour::ALL));
            if groups
                .iter()
                .all(|g| (g.shape, g.colour) != (shape, colour))
            {
                let size = pick(rng, &Size::ALL);
                groups.push(Group {
                    shape,
                    colour,
                    size,
                    count,
                });
                break;
            }
        }
    }
    let s = side as f32;
    // Rejection placement; if a layout does not fit, shrink the largest group and try
    // again (the size recorded is the size drawn, so captions stay true).
    for _ in 0..64 {
        if let Some(objects) = place(rng, &groups, s) {
            return Scene {
                side,
                background,
                groups,
                objects,
            };
        }
        if let Some(g) = groups.iter_mut().max_by_key(|g| g.size) {
            g.size = match g.size {
                Size::Large => Size::Medium,
                _ => Size::Small,
            };
        }
    }
    // Four small objects always fit in a side of 32 or more; keep one object otherwise.
    groups.truncate(1);
    groups[0].count = 1;
    groups[0].size = Size::Small;
    let g = &groups[0];
    let objects = vec![Object {
        shape: g.shape,
        colour: g.colour,
        size: g.size,
        x: s / 2.0,
        y: s / 2.0,
        radius: g.size.radius() * s,
    }];
    Scene {
        side,
        background,
        groups,
        objects,
    }
}

fn place(rng: &mut SplitMix64, groups: &[Group], s: f32) -> Option<Vec<Object>> {
    let mut objects: Vec<Object> = Vec::new();
    let gap = (s * 0.04).max(2.0);
    for g in groups {
        for _ in 0..g.count {
            let r = g.size.radius() * s;
            let lo = r + 2.0;
            let span = s - 2.0 * lo;
            let mut placed = false;
            for _ in 0..200 {
                let (x, y) = (lo + unit(rng) * span, lo + unit(rng) * span);
                if objects
                    .iter()
                    .all(|o| ((o.x - x).powi(2) + (o.y - y).powi(2)).sqrt() >= o.radius + r + gap)
                {
                    objects.push(Object {
                        shape: g.shape,
                        colour: g.colour,
                        size: g.size,
                        x,
                        y,
                        radius: r,
                    });
                    placed = true;
                    break;
                }
            }
            if !placed {
                return None;
            }
        }
    }
    Some(objects)
}

/// A muted colour: backgrounds stay greyish so that every object colour stands out.
fn muted(rng: &mut SplitMix64) -> [f32; 3] {
    let base = 110.0 + unit(rng) * 90.0;
    let tint = |rng: &mut SplitMix64| base + (unit(rng) - 0.5) * 40.0;
    [tint(rng), tint(rng), tint(rng)]
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// Draws the background, the objects (4× supersampled edges), mild noise and, for half
/// the images, a light blur.
fn render(scene: &Scene, rng: &mut SplitMix64, side: u32) -> RgbImage {
    let n = side as usize;
    let a = muted(rng);
    let mut b = muted(rng);
    // Keep the second tone visibly different so that the pattern is there.
    if (a[0] + a[1] + a[2] - b[0] - b[1] - b[2]).abs() < 60.0 {
        let shift = if a[0] + a[1] + a[2] > 450.0 {
            -40.0
        } else {
            40.0
        };
        b = [b[0] + shift, b[1] + shift, b[2] + shift];
    }
    let mut px = vec![[0f32; 3]; n * n];
    let period = 6 + rng.below(10) as usize;
    let vertical = rng.below(2) == 0;
    for y in 0..n {
        for x in 0..n {
            px[y * n + x] = match scene.background {
                Background::Flat => a,
                Background::Gradient => {
                    let t = if vertical { y } else { x } as f32 / (n - 1) as f32;
                    mix(a, b, t)
                }
                Background::Stripes => {
                    let c = if vertical { x } else { y };
                    if (c / period).is_multiple_of(2) {
                        a
                    } else {
                        b
                    }
                }
                Background::Grid => {
                    if x.is_multiple_of(period) || y.is_multiple_of(period) {
                        b
                    } else {
                        a
                    }
                }
                Background::Noise => {
                    let t = unit(rng) * 30.0 - 15.0;
                    [a[0] + t, a[1] + t, a[2] + t]
                }
            };
        }
    }
    const SUB: [f32; 2] = [0.25, 0.75];
    for o in &scene.objects {
        let c = o.colour.rgb();
        let x0 = (o.x - o.radius - 1.0).floor().max(0.0) as usize;
        let y0 = (o.y - o.radius - 1.0).floor().max(0.0) as usize;
        let x1 = ((o.x + o.radius + 1.0).ceil() as usize).min(n);
        let y1 = ((o.y + o.radius + 1.0).ceil() as usize).min(n);
        for y in y0..y1 {
            for x in x0..x1 {
                let mut hits = 0;
                for sy in SUB {
                    for sx in SUB {
                        let u = (x as f32 + sx - o.x) / o.radius;
                        let v = (y as f32 + sy - o.y) / o.radius;
                        hits += usize::from(o.shape.contains(u, v));
                    }
                }
                if hits > 0 {
                    let p = &mut px[y * n + x];
                    *p = mix(*p, c, hits as f32 / 4.0);
                }
            }
        }
    }
    if rng.below(2) == 0 {
        blur121(&mut px, n);
    }
    let amp = 2.0 + unit(rng) * 6.0;
    let mut img = RgbImage::new(side, side);
    for (i, p) in img.pixels_mut().enumerate() {
        for (out, q) in p.0.iter_mut().zip(px[i]) {
            let v = q + (unit(rng) - 0.5) * 2.0 * amp;
            *out = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    img
}

/// Separable [1 2 1]/4 blur with clamped edges.
fn blur121(px: &mut [[f32; 3]], n: usize) {
    let mut tmp = px.to_vec();
    for y in 0..n {
        for x in 0..n {
            let l = px[y * n + x.saturating_sub(1)];
            let c = px[y * n + x];
            let r = px[y * n + (x + 1).min(n - 1)];
            tmp[y * n + x] = [0, 1, 2].map(|k| (l[k] + 2.0 * c[k] + r[k]) / 4.0);
        }
    }
    for y in 0..n {
        for x in 0..n {
            let u = tmp[y.saturating_sub(1) * n + x];
            let c = tmp[y * n + x];
            let d = tmp[(y + 1).min(n - 1) * n + x];
            px[y * n + x] = [0, 1, 2].map(|k| (u[k] + 2.0 * c[k] + d[k]) / 4.0);
        }
    }
}

/// Count words, as captions write them.
pub const NUMBERS: [&str; 5] = ["", "one", "two", "three", "four"];

fn article(next: &str) -> &'static str {
    if next.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// `a red circle`, `one small red circle`, `two large blue stars`.
fn noun_phrase(g: &Group, sized: bool, one: bool) -> String {
    let noun = if g.count == 1 {
        g.shape.word()
    } else {
        g.shape.plural()
    };
    let rest = if sized {
        format!("{} {} {noun}", g.size.word(), g.colour.word())
    } else {
        format!("{} {noun}", g.colour.word())
    };
    let det = match g.count {
        1 if one => "one",
        1 => article(&rest),
        c => NUMBERS[c.min(4)],
    };
    format!("{det} {rest}")
}

/// `a red circle, two blue squares and a green star`.
fn list(groups: &[Group], sized: bool, one: bool) -> String {
    let parts: Vec<String> = groups.iter().map(|g| noun_phrase(g, sized, one)).collect();
    match parts.len() {
        0 => String::new(),
        1 => parts[0].clone(),
        k => format!("{} and {}", parts[..k - 1].join(", "), parts[k - 1]),
    }
}

fn single(o: &Object, sized: bool, definite: bool) -> String {
    let g = Group {
        shape: o.shape,
        colour: o.colour,
        size: o.size,
        count: 1,
    };
    let np = noun_phrase(&g, sized, false);
    if definite {
        // Replace the article: `the red circle`.
        match np.split_once(' ') {
            Some((_, rest)) => format!("the {rest}"),
            None => np,
        }
    } else {
        np
    }
}

/// Where in the frame an object is: `top left`, `center`, …
fn position(o: &Object, side: f32) -> &'static str {
    let h = (o.x / side * 3.0).floor().clamp(0.0, 2.0) as usize;
    let v = (o.y / side * 3.0).floor().clamp(0.0, 2.0) as usize;
    [
        ["top left", "top", "top right"],
        ["left", "center", "right"],
        ["bottom left", "bottom", "bottom right"],
    ][v][h]
}

/// Sentences about the relation of `a` to `b` (both the only ones of their kind).
fn relation_sentences(a: &Object, b: &Object, rel: Relation, out: &mut Vec<String>) {
    let (a0, b0) = (single(a, false, false), single(b, false, false));
    let (a1, b1) = (single(a, true, false), single(b, true, false));
    let (left, right) = match rel {
        Relation::LeftOf => ((&a0, &a1), (&b0, &b1)),
        Relation::RightOf => ((&b0, &b1), (&a0, &a1)),
        Relation::Above | Relation::Below => {
            let (top, bottom) = if rel == Relation::Above {
                ((&a0, &a1), (&b0, &b1))
            } else {
                ((&b0, &b1), (&a0, &a1))
            };
            out.push(format!("{} above {}", top.0, bottom.0));
            out.push(format!("{} below {}", bottom.0, top.0));
            out.push(format!("there is {} above {}", top.1, bottom.1));
            out.push(format!("{} underneath {}", bottom.1, top.0));
            out.push(format!("{} is above {}", top.0, bottom.1));
            return;
        }
    };
    out.push(format!("{} to the left of {}", left.0, right.0));
    out.push(format!("{} left of {}", left.1, right.1));
    out.push(format!("there is {} to the right of {}", right.0, left.0));
    out.push(format!("{} to the right of {}", right.1, left.0));
    out.push(format!("{} next to {}", left.0, right.0));
    out.push(format!("{} and {} side by side", left.1, right.1));
}

/// Five distinct captions of a scene; the first is the one spoken.
fn captions(scene: &Scene, rng: &mut SplitMix64) -> Vec<String> {
    let g = &scene.groups;
    let n: usize = g.iter().map(|g| g.count).sum();
    let bg = scene.background.word();
    let plain = list(g, false, false);
    let sized = list(g, true, false);
    // "there is a red circle and two blue squares": the verb agrees with the first.
    let is_are = if g[0].count > 1 { "are" } else { "is" };
    let mut c = vec![
        plain.clone(),
        sized.clone(),
        format!("there {is_are} {sized}"),
        format!("a picture of {plain} on a {bg} background"),
        format!("{sized} on a {bg} background"),
        format!("an image with {plain}"),
        format!("{} on a {bg} background", list(g, false, true)),
    ];
    if n == 1 {
        let o = &scene.objects[0];
        c.push(format!(
            "{} in the {}",
            single(o, true, false),
            position(o, scene.side as f32)
        ));
        c.push(format!("a single {} {}", o.colour.word(), o.shape.word()));
    } else {
        if g.len() == 1 {
            c.push(format!("a group of {plain}"));
        }
        if g.len() > 1 {
            c.push(format!("{} shapes: {plain}", NUMBERS[n.min(4)]));
        }
        c.push(format!("a {bg} background with {sized}"));
    }
    // Relations between two objects that are alone of their kind.
    let singles: Vec<&Object> = scene
        .objects
        .iter()
        .filter(|o| scene.single(o.shape, o.colour).is_some())
        .collect();
    let mut rel_sentences = Vec::new();
    'pairs: for (i, a) in singles.iter().enumerate() {
        for b in &singles[i + 1..] {
            if let Some(rel) = Scene::relation(a, b) {
                if n == 2 {
                    relation_sentences(a, b, rel, &mut rel_sentences);
                } else {
                    let mut tmp = Vec::new();
                    relation_sentences(a, b, rel, &mut tmp);
                    // With more objects, name them all first, then the relation.
                    let (ad, bd) = (single(a, false, true), single(b, false, true));
                    let word = match rel {
                        Relation::LeftOf => "to the left of",
                        Relation::RightOf => "to the right of",
                        Relation::Above => "above",
                        Relation::Below => "below",
                    };
                    rel_sentences.push(format!("{plain} with {ad} {word} {bd}"));
                    rel_sentences.push(format!("{sized}, {ad} is {word} {bd}"));
                }
                break 'pairs;
            }
        }
    }
    // Prefer relation sentences (they carry the most), then the rest, shuffled.
    rng.shuffle(&mut rel_sentences);
    rng.shuffle(&mut c);
    let take_rel = rel_sentences.len().min(2 + rng.below(2) as usize);
    let mut out: Vec<String> = Vec::with_capacity(5);
    for s in rel_sentences.into_iter().take(take_rel).chain(c) {
        if out.len() == 5 {
            break;
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    rng.shuffle(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_fill_their_centre_and_not_the_far_corner() {
        for s in Shape::ALL {
            assert!(s.contains(0.0, 0.1), "{s:?} centre");
            assert!(!s.contains(0.99, 0.99), "{s:?} corner");
        }
    }

    #[test]
    fn every_scene_has_five_distinct_captions() {
        let opts = SynthOptions {
            count: 1,
            speaker: None,
            ..Default::default()
        };
        for i in 0..200 {
            let r = synth_one(&opts, i).unwrap();
            let mut c = r.triplet.captions.clone();
            assert_eq!(c.len(), 5, "{c:?}");
            c.sort();
            c.dedup();
            assert_eq!(c.len(), 5, "{:?}", r.triplet.captions);
        }
    }
}
