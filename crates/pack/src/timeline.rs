//! Pictures of a plan: a Chrome/Perfetto trace and an SVG timeline.
//!
//! Both show the same thing: bundles one after another in time, and inside
//! each bundle every slot's range of physical blocks for as long as the slot
//! is predicted to run, coloured by tenant. Times are the scheduler's
//! predictions in its model units, never measurements: the pictures are
//! labelled so (the trace format counts in microseconds, so there one unit
//! shows as one microsecond).

use std::fmt::Write as _;

/// One slot of one bundle, placed in time and in the launch's block range.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotSpan {
    pub tenant: u32,
    /// A label for the tenant (e.g. `resnet18#2`).
    pub tenant_name: String,
    pub kernel: String,
    /// Physical block range `[first_block, first_block + blocks)`.
    pub first_block: u32,
    pub blocks: u32,
    /// Start and duration in the plan's time units (predicted).
    pub start: f64,
    pub duration: f64,
}

/// One bundle's slots and extent.
#[derive(Clone, Debug, PartialEq)]
pub struct BundleSpan {
    pub index: usize,
    pub start: f64,
    pub duration: f64,
    pub total_blocks: u32,
    pub slots: Vec<SlotSpan>,
}

fn escape_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A Chrome trace (`chrome://tracing`, Perfetto): one process per tenant,
/// one complete event per slot, plus a "bundles" process with one event per
/// bundle.
pub fn chrome_trace(bundles: &[BundleSpan]) -> String {
    let mut events = Vec::new();
    let mut tenants: Vec<(u32, String)> =
        bundles.iter().flat_map(|b| b.slots.iter().map(|s| (s.tenant, s.tenant_name.clone()))).collect();
    tenants.sort();
    tenants.dedup();
    events.push(r#"{"name":"process_name","ph":"M","pid":0,"args":{"name":"bundles (predicted)"}}"#.to_string());
    for (t, name) in &tenants {
        events.push(format!(
            r#"{{"name":"process_name","ph":"M","pid":{},"args":{{"name":"tenant {}"}}}}"#,
            t + 1,
            escape_json(name)
        ));
    }
    for b in bundles {
        events.push(format!(
            r#"{{"name":"bundle {}","cat":"bundle","ph":"X","ts":{:.3},"dur":{:.3},"pid":0,"tid":0,"args":{{"slots":{},"blocks":{}}}}}"#,
            b.index,
            b.start,
            b.duration,
            b.slots.len(),
            b.total_blocks
        ));
        for s in &b.slots {
            events.push(format!(
                r#"{{"name":"{}","cat":"slot","ph":"X","ts":{:.3},"dur":{:.3},"pid":{},"tid":0,"args":{{"bundle":{},"blocks":"{}..{}"}}}}"#,
                escape_json(&s.kernel),
                s.start,
                s.duration,
                s.tenant + 1,
                b.index,
                s.first_block,
                s.first_block + s.blocks
            ));
        }
    }
    format!("{{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n{}\n]}}\n", events.join(",\n"))
}

/// A distinct, readable colour per tenant.
fn colour(tenant: u32) -> String {
    // Golden-angle hues keep neighbouring tenants apart.
    let hue = (tenant as f64 * 137.508) % 360.0;
    format!("hsl({hue:.0},65%,55%)")
}

/// An SVG timeline: time left to right, physical blocks of each bundle top to
/// bottom (scaled to the tallest bundle), one rectangle per slot coloured by
/// tenant, with a legend.
pub fn svg_timeline(bundles: &[BundleSpan], title: &str) -> String {
    let (width, height, left, top, legend_w) = (1100.0, 420.0, 60.0, 40.0, 250.0);
    let plot_w = width - left - legend_w - 20.0;
    let plot_h = height - top - 40.0;
    let end = bundles.iter().map(|b| b.start + b.duration).fold(0.0f64, f64::max).max(1e-9);
    let max_blocks = bundles.iter().map(|b| b.total_blocks).max().unwrap_or(1).max(1) as f64;
    let x = |t: f64| left + t / end * plot_w;
    let y = |blk: f64| top + blk / max_blocks * plot_h;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(svg, r#"<text x="{left}" y="20" font-size="14">{}</text>"#, escape_xml(title));
    let _ = writeln!(
        svg,
        r##"<text x="{left}" y="{}" fill="#555">time (predicted, model units) →    bundles drawn: {}    ·    physical blocks of each launch ↓</text>"##,
        height - 12.0,
        bundles.len()
    );
    for b in bundles {
        let _ = writeln!(
            svg,
            r##"<rect x="{:.2}" y="{top}" width="{:.2}" height="{plot_h}" fill="none" stroke="#999" stroke-dasharray="3,2"/>"##,
            x(b.start),
            (x(b.start + b.duration) - x(b.start)).max(0.5)
        );
        for s in &b.slots {
            let _ = writeln!(
                svg,
                r##"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="{}" stroke="white" stroke-width="0.5"><title>{} · {} · blocks {}..{} · {:.1} units</title></rect>"##,
                x(s.start),
                y(s.first_block as f64),
                (x(s.start + s.duration) - x(s.start)).max(0.5),
                (y((s.first_block + s.blocks) as f64) - y(s.first_block as f64)).max(0.5),
                colour(s.tenant),
                escape_xml(&s.tenant_name),
                escape_xml(&s.kernel),
                s.first_block,
                s.first_block + s.blocks,
                s.duration
            );
        }
    }
    let mut tenants: Vec<(u32, String)> =
        bundles.iter().flat_map(|b| b.slots.iter().map(|s| (s.tenant, s.tenant_name.clone()))).collect();
    tenants.sort();
    tenants.dedup();
    let lx = width - legend_w;
    for (i, (t, name)) in tenants.iter().enumerate().take(24) {
        let ly = top + i as f64 * 16.0;
        let _ = writeln!(svg, r#"<rect x="{lx}" y="{ly}" width="12" height="12" fill="{}"/>"#, colour(*t));
        // Long names are cut to fit the legend; the full name is in each slot's tooltip.
        let shown: String = if name.chars().count() > 34 {
            name.chars().take(16).chain("…".chars()).chain(name.chars().skip(name.chars().count() - 17)).collect()
        } else {
            name.clone()
        };
        let _ = writeln!(svg, r#"<text x="{}" y="{}">{}</text>"#, lx + 18.0, ly + 10.0, escape_xml(&shown));
    }
    if tenants.len() > 24 {
        let _ = writeln!(
            svg,
            r#"<text x="{lx}" y="{}">… {} more tenants</text>"#,
            top + 24.0 * 16.0 + 10.0,
            tenants.len() - 24
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<BundleSpan> {
        let slot = |tenant: u32, first: u32, blocks: u32, start: f64, dur: f64| SlotSpan {
            tenant,
            tenant_name: format!("resnet18#{tenant}"),
            kernel: "conv \"3x3\"".into(),
            first_block: first,
            blocks,
            start,
            duration: dur,
        };
        vec![
            BundleSpan {
                index: 0,
                start: 0.0,
                duration: 10.0,
                total_blocks: 64,
                slots: vec![slot(0, 0, 32, 0.0, 10.0), slot(1, 32, 32, 0.0, 8.0)],
            },
            BundleSpan {
                index: 1,
                start: 10.0,
                duration: 5.0,
                total_blocks: 16,
                slots: vec![slot(2, 0, 16, 10.0, 5.0)],
            },
        ]
    }

    #[test]
    fn trace_has_one_event_per_slot_and_bundle_and_escapes_names() {
        let t = chrome_trace(&sample());
        assert_eq!(t.matches(r#""cat":"slot""#).count(), 3);
        assert_eq!(t.matches(r#""cat":"bundle""#).count(), 2);
        assert!(t.contains(r#"conv \"3x3\""#));
        assert!(t.starts_with('{') && t.trim_end().ends_with('}'));
    }

    #[test]
    fn svg_draws_every_slot_with_a_legend() {
        let s = svg_timeline(&sample(), "plan <test>");
        assert_eq!(s.matches("<title>").count(), 3);
        assert!(s.contains("plan &lt;test&gt;"));
        for t in 0..3 {
            assert!(s.contains(&format!("resnet18#{t}")));
        }
        assert!(s.trim_end().ends_with("</svg>"));
    }
}
