//! Colours, line styles and markers: one fixed qualitative palette, and a fixed look per
//! system so a mode has the same colour in every chart.

use plotters::style::RGBColor;

/// At most this many series share a panel; more are split over panels.
pub const MAX_SERIES: usize = 6;

/// Tableau 10 (matplotlib's `tab10`, which the notebook uses too), in its usual order.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4), // blue
    RGBColor(0xff, 0x7f, 0x0e), // orange
    RGBColor(0x2c, 0xa0, 0x2c), // green
    RGBColor(0xd6, 0x27, 0x28), // red
    RGBColor(0x94, 0x67, 0xbd), // purple
    RGBColor(0x8c, 0x56, 0x4b), // brown
    RGBColor(0xe3, 0x77, 0xc2), // pink
    RGBColor(0x7f, 0x7f, 0x7f), // grey
    RGBColor(0xbc, 0xbd, 0x22), // olive
    RGBColor(0x17, 0xbe, 0xcf), // cyan
];

/// Secondary text (subtitle, notes, the cores marker's label).
pub const GUIDE: RGBColor = RGBColor(0x55, 0x55, 0x55);
/// Guide lines (ideal, achieved = offered, the cores marker): lighter than any series, so
/// the near-black `floor` never reads as one.
pub const GUIDE_LINE: RGBColor = RGBColor(0xa0, 0xa0, 0xa0);
/// The reference every other system is compared with: the platform's own executors, fed
/// directly.
const FLOOR: RGBColor = RGBColor(0x30, 0x30, 0x30);

/// This platform's dispatch modes, in legend order.
pub const PLATFORM: [&str; 3] = ["local", "pull", "push"];
/// Reference targets, in legend order (after the platform's modes).
pub const REFERENCES: [&str; 6] = ["floor", "process_pool", "zmq", "ray", "celery", "dask"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Triangle,
    Square,
}

/// How one series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesStyle {
    pub color: RGBColor,
    pub dashed: bool,
    pub marker: Marker,
    /// Hollow markers (references) rather than filled ones (this platform).
    pub hollow: bool,
}

impl SeriesStyle {
    /// The n-th colour of the palette, solid with round markers.
    #[must_use]
    pub fn nth(n: usize) -> Self {
        Self {
            color: PALETTE[n % PALETTE.len()],
            dashed: false,
            marker: Marker::Circle,
            hollow: false,
        }
    }

    /// The fixed look of a system: this platform's modes solid with filled circles (blue,
    /// orange, green), references dashed with hollow squares (`floor` near-black triangles),
    /// anything else by its position among `others`.
    #[must_use]
    pub fn system(name: &str) -> Self {
        if let Some(i) = PLATFORM.iter().position(|p| *p == name) {
            return Self::nth(i);
        }
        if name == "floor" {
            return Self {
                color: FLOOR,
                dashed: true,
                marker: Marker::Triangle,
                hollow: false,
            };
        }
        // process_pool red, zmq purple, ray brown, celery pink, dask cyan.
        let color = match REFERENCES.iter().position(|r| *r == name) {
            Some(i) => [3, 4, 5, 6, 9][(i - 1) % 5],
            None => 8 + name.bytes().map(usize::from).sum::<usize>() % 2,
        };
        Self {
            color: PALETTE[color],
            dashed: true,
            marker: Marker::Square,
            hollow: true,
        }
    }
}

/// Where a system sorts: this platform's modes, then the references, then anything else.
#[must_use]
pub fn system_rank(name: &str) -> usize {
    PLATFORM
        .iter()
        .chain(REFERENCES.iter())
        .position(|s| *s == name)
        .unwrap_or(PLATFORM.len() + REFERENCES.len())
}

/// Whether a system is one of this platform's dispatch modes.
#[must_use]
pub fn is_platform(name: &str) -> bool {
    PLATFORM.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The "redmean" colour difference, a cheap approximation of how far apart two colours
    /// look (0 to about 765).
    fn distance(a: RGBColor, b: RGBColor) -> f64 {
        let r = (f64::from(a.0) + f64::from(b.0)) / 2.0;
        let d = |x: u8, y: u8| (f64::from(x) - f64::from(y)).powi(2);
        ((2.0 + r / 256.0) * d(a.0, b.0)
            + 4.0 * d(a.1, b.1)
            + (2.0 + (255.0 - r) / 256.0) * d(a.2, b.2))
        .sqrt()
    }

    #[test]
    fn the_palette_has_no_near_duplicates() {
        for (i, a) in PALETTE.iter().enumerate() {
            for b in &PALETTE[i + 1..] {
                assert!(distance(*a, *b) > 100.0, "{a:?} and {b:?} are too close");
            }
        }
    }

    #[test]
    fn every_known_system_has_its_own_colour() {
        let systems: Vec<&str> = PLATFORM.iter().chain(REFERENCES.iter()).copied().collect();
        for (i, a) in systems.iter().enumerate() {
            for b in &systems[i + 1..] {
                let (sa, sb) = (SeriesStyle::system(a), SeriesStyle::system(b));
                assert!(
                    distance(sa.color, sb.color) > 100.0,
                    "{a} and {b} look alike: {sa:?} {sb:?}"
                );
            }
        }
        assert!(!SeriesStyle::system("push").dashed);
        assert!(SeriesStyle::system("zmq").dashed);
    }

    #[test]
    fn systems_sort_platform_first_then_references() {
        let mut names = vec!["dask", "zmq", "push", "floor", "local", "other", "pull"];
        names.sort_by_key(|n| system_rank(n));
        assert_eq!(
            names,
            ["local", "pull", "push", "floor", "zmq", "dask", "other"]
        );
    }
}
