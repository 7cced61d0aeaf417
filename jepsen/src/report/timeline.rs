//! The timeline of a run, drawn with plotters: each member's role over time (one row per
//! member), the faults as shaded bands, acknowledged writes per second, and the windows
//! without an acknowledged write. Drawn as SVG for `report.html` (inlined) and as PNG for the
//! README.
//!
//! Owns only drawing; what to draw comes from [`TimelineData`], computed from the history.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context as _, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::history::{Event, History, OpValue, Operation, Outcome};

/// The font every label is drawn with (Debian's fonts-dejavu-core; scripts/setup.sh installs
/// it): plotters' pure-Rust text rendering needs the font file.
const FONT_FILE: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FONT: &str = "sans-serif";

/// What a member was doing, as drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lane {
    Primary,
    Streaming,
    NotStreaming,
    Witness,
    Down,
    Unreachable,
}

impl Lane {
    pub fn of(role: &str, streaming: bool) -> Lane {
        match role {
            "primary" | "master" => Lane::Primary,
            "replica" | "standby_leader" if streaming => Lane::Streaming,
            "replica" | "standby_leader" => Lane::NotStreaming,
            "witness" => Lane::Witness,
            "unreachable" => Lane::Unreachable,
            _ => Lane::Down,
        }
    }

    pub fn color(self) -> RGBColor {
        match self {
            Lane::Primary => RGBColor(214, 39, 40),
            Lane::Streaming => RGBColor(44, 160, 44),
            Lane::NotStreaming => RGBColor(255, 127, 14),
            Lane::Witness => RGBColor(148, 103, 189),
            Lane::Down => RGBColor(150, 150, 150),
            Lane::Unreachable => RGBColor(50, 50, 50),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Lane::Primary => "primary",
            Lane::Streaming => "replica, streaming",
            Lane::NotStreaming => "replica, not streaming",
            Lane::Witness => "witness",
            Lane::Down => "database stopped/starting",
            Lane::Unreachable => "agent unreachable",
        }
    }
}

/// Everything the timeline shows, in seconds since the run started.
#[derive(Clone, Debug, Default)]
pub struct TimelineData {
    pub end: f64,
    /// Member -> (from, to, lane), in order.
    pub lanes: BTreeMap<String, Vec<(f64, f64, Lane)>>,
    /// (start, end, label) of each fault: from its start to its convergence (or heal).
    pub faults: Vec<(f64, f64, String)>,
    /// Acknowledged inserts per whole second.
    pub acks_per_s: Vec<u32>,
    /// Windows without an acknowledged write.
    pub unavailable: Vec<(f64, f64)>,
}

impl TimelineData {
    pub fn from_history(history: &History, ops: &[Operation], unavailable: &[(f64, f64)]) -> Self {
        let end = history.end();
        let mut lanes: BTreeMap<String, Vec<(f64, f64, Lane)>> = BTreeMap::new();
        for event in &history.events {
            if let Event::Role {
                t,
                member,
                role,
                streaming,
                ..
            } = event
            {
                let list = lanes.entry(member.clone()).or_default();
                if let Some(last) = list.last_mut() {
                    last.1 = *t;
                }
                list.push((*t, end, Lane::of(role, *streaming)));
            }
        }
        let mut convergence_at: BTreeMap<usize, f64> = BTreeMap::new();
        for event in &history.events {
            if let Event::Convergence { t, index, .. } = event {
                convergence_at.insert(*index, *t);
            }
        }
        let faults = history
            .faults()
            .iter()
            .map(|f| {
                let to = convergence_at
                    .get(&f.index)
                    .copied()
                    .or(f.heal)
                    .unwrap_or(end)
                    .max(f.start + 0.2);
                (f.start, to, format!("{} {}", f.index, f.nemesis))
            })
            .collect();
        let mut acks_per_s = vec![0u32; end.ceil() as usize + 1];
        for op in ops {
            if let (OpValue::Insert { .. }, Outcome::Ok, Some(done)) =
                (&op.op, op.outcome, op.completed)
                && let Some(slot) = acks_per_s.get_mut(done as usize)
            {
                *slot += 1;
            }
        }
        TimelineData {
            end,
            lanes,
            faults,
            acks_per_s,
            unavailable: unavailable.to_vec(),
        }
    }
}

/// Registers the labels' font once; an error says which package brings it.
fn font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT_FILE).map_err(|e| {
                format!(
                    "read {FONT_FILE}: {e} (apt-get install fonts-dejavu-core; scripts/setup.sh does)"
                )
            })?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FONT, FontStyle::Normal, bytes)
                .map_err(|_| format!("{FONT_FILE} is not a usable font"))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// Pixels per second of run, so that a fault cycle stays readable.
const PX_PER_S: f64 = 6.0;

fn size(from: f64, to: f64, members: usize) -> (u32, u32) {
    let width = ((to - from) * PX_PER_S).clamp(1000.0, 4000.0) as u32;
    (width, 170 + 26 * members as u32 + 230)
}

/// The timeline of `[from, to)` as an SVG document.
pub fn svg(data: &TimelineData, from: f64, to: f64) -> anyhow::Result<String> {
    font()?;
    let mut text = String::new();
    {
        let backend = SVGBackend::with_string(&mut text, size(from, to, data.lanes.len()));
        draw(backend.into_drawing_area(), data, from, to)?;
    }
    Ok(text)
}

/// The timeline of `[from, to)` as a PNG file.
pub fn png(data: &TimelineData, from: f64, to: f64, path: &Path) -> anyhow::Result<()> {
    font()?;
    let backend = BitMapBackend::new(path, size(from, to, data.lanes.len()));
    let area = backend.into_drawing_area();
    draw(area.clone(), data, from, to)?;
    area.present()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("write {}", path.display()))
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    data: &TimelineData,
    from: f64,
    to: f64,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("draw the timeline: {e}");
    root.fill(&WHITE).map_err(err)?;
    let members: Vec<&String> = data.lanes.keys().collect();
    let n = members.len().max(1);
    let (_, height) = root.dim_in_pixel();
    let (top, bottom) = root.split_vertically(height - 230);
    let band = RGBAColor(70, 130, 180, 0.18);

    top.draw(&Text::new(
        format!("Members' roles and faults, {from:.0}-{to:.0} s"),
        (70, 6),
        (FONT, 17).into_font().color(&BLACK),
    ))
    .map_err(err)?;
    let mut roles = ChartBuilder::on(&top)
        .margin(10)
        .margin_top(45)
        .x_label_area_size(25)
        .y_label_area_size(60)
        .build_cartesian_2d(from..to, 0.0..n as f64)
        .map_err(err)?;
    roles
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_label_style((FONT, 12))
        .x_desc("seconds since the run started")
        .draw()
        .map_err(err)?;
    roles
        .draw_series(
            data.faults
                .iter()
                .filter(|f| f.1 > from && f.0 < to)
                .map(|f| {
                    Rectangle::new(
                        [(f.0.max(from), 0.0), (f.1.min(to), n as f64)],
                        band.filled(),
                    )
                }),
        )
        .map_err(err)?;
    for (k, member) in members.iter().enumerate() {
        let row = (n - 1 - k) as f64;
        roles
            .draw_series(
                data.lanes[*member]
                    .iter()
                    .filter(|s| s.1 > from && s.0 < to)
                    .map(|s| {
                        Rectangle::new(
                            [(s.0.max(from), row + 0.2), (s.1.min(to), row + 0.8)],
                            s.2.color().filled(),
                        )
                    }),
            )
            .map_err(err)?;
    }
    // Member names at the left of their rows.
    // (the top area starts at the root's origin, so the chart's pixel coordinates are the
    // area's).
    for (k, m) in members.iter().enumerate() {
        let (x, y) = roles.backend_coord(&(from, (n - 1 - k) as f64 + 0.5));
        top.draw(&Text::new(
            m.to_string(),
            (x - 50, y - 7),
            (FONT, 13).into_font().color(&BLACK),
        ))
        .map_err(err)?;
    }
    // Fault numbers above the bands.
    roles
        .draw_series(
            data.faults
                .iter()
                .filter(|f| f.0 >= from && f.0 < to)
                .map(|f| {
                    Text::new(
                        f.2.split(' ').next().unwrap_or("").to_owned(),
                        (f.0, n as f64 - 0.02),
                        (FONT, 11).into_font().color(&BLACK),
                    )
                }),
        )
        .map_err(err)?;
    // The legend, in one row under the title, so that it hides no member's row.
    let mut x = 70;
    let legend: Vec<(RGBAColor, &str)> = [
        Lane::Primary,
        Lane::Streaming,
        Lane::NotStreaming,
        Lane::Down,
        Lane::Unreachable,
        Lane::Witness,
    ]
    .iter()
    .map(|l| (l.color().to_rgba(), l.label()))
    .chain(std::iter::once((band, "fault, until converged")))
    .collect();
    for (color, label) in legend {
        top.draw(&Rectangle::new([(x, 32), (x + 14, 42)], color.filled()))
            .map_err(err)?;
        top.draw(&Text::new(
            label.to_owned(),
            (x + 18, 31),
            (FONT, 12).into_font().color(&BLACK),
        ))
        .map_err(err)?;
        x += 26 + 6 * label.len() as i32;
    }

    let lo = from.max(0.0) as usize;
    let hi = (to.ceil() as usize).min(data.acks_per_s.len());
    let peak = data.acks_per_s[lo.min(hi)..hi]
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut writes = ChartBuilder::on(&bottom)
        .caption(
            "Acknowledged writes per second (red: no write acknowledged for over 1 s)",
            (FONT, 15),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(from..to, 0.0..peak * 1.1)
        .map_err(err)?;
    writes
        .configure_mesh()
        .x_label_style((FONT, 12))
        .y_label_style((FONT, 12))
        .y_desc("writes/s")
        .draw()
        .map_err(err)?;
    writes
        .draw_series(
            data.faults
                .iter()
                .filter(|f| f.1 > from && f.0 < to)
                .map(|f| {
                    Rectangle::new(
                        [(f.0.max(from), 0.0), (f.1.min(to), peak * 1.1)],
                        band.filled(),
                    )
                }),
        )
        .map_err(err)?;
    writes
        .draw_series(
            data.unavailable
                .iter()
                .filter(|w| w.1 > from && w.0 < to)
                .map(|w| {
                    Rectangle::new(
                        [(w.0.max(from), 0.0), (w.1.min(to), peak * 1.1)],
                        RGBAColor(214, 39, 40, 0.35).filled(),
                    )
                }),
        )
        .map_err(err)?;
    writes
        .draw_series(
            AreaSeries::new(
                (lo..hi).map(|s| (s as f64 + 0.5, data.acks_per_s[s] as f64)),
                0.0,
                RGBAColor(31, 119, 180, 0.5),
            )
            .border_style(RGBColor(31, 119, 180)),
        )
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Phase;
    use crate::history::tests::insert;

    fn sample() -> (History, Vec<Operation>) {
        let mut events = Vec::new();
        for (k, m) in ["n1", "n2", "n3"].iter().enumerate() {
            events.push(Event::Role {
                t: 0.1 * k as f64,
                member: (*m).into(),
                role: if k == 0 { "primary" } else { "replica" }.into(),
                streaming: k != 0,
                timeline: Some(1),
            });
        }
        for i in 0..100 {
            events.extend(insert(
                "w0",
                i,
                i as f64 * 0.1,
                i as f64 * 0.1 + 0.01,
                Outcome::Ok,
            ));
        }
        events.push(Event::Nemesis {
            t: 3.0,
            index: 0,
            phase: Phase::Start,
            nemesis: "kill-host".into(),
            detail: "n1".into(),
        });
        events.push(Event::Role {
            t: 3.1,
            member: "n1".into(),
            role: "unreachable".into(),
            streaming: false,
            timeline: None,
        });
        let h = History::from_events(events);
        let ops = h.operations().unwrap();
        (h, ops)
    }

    #[test]
    fn the_timeline_draws_every_member_and_fault_as_svg() {
        if std::fs::metadata(FONT_FILE).is_err() {
            eprintln!(
                "skipped: {FONT_FILE} is missing (scripts/setup.sh installs fonts-dejavu-core)"
            );
            return;
        }
        let (h, ops) = sample();
        let data = TimelineData::from_history(&h, &ops, &[(5.0, 7.0)]);
        assert_eq!(data.lanes["n1"].len(), 2);
        assert_eq!(data.lanes["n1"][1].2, Lane::Unreachable);
        let text = svg(&data, 0.0, data.end).unwrap();
        assert!(text.starts_with("<svg"));
        for label in ["n1", "n2", "n3", "primary", "replica, streaming"] {
            assert!(text.contains(label), "{label} missing");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.png");
        png(&data, 0.0, data.end, &path).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 1000);
    }

    #[test]
    fn roles_map_to_lanes() {
        assert_eq!(Lane::of("primary", false), Lane::Primary);
        assert_eq!(Lane::of("replica", true), Lane::Streaming);
        assert_eq!(Lane::of("replica", false), Lane::NotStreaming);
        assert_eq!(Lane::of("stopped", false), Lane::Down);
        assert_eq!(Lane::of("unreachable", false), Lane::Unreachable);
    }
}
