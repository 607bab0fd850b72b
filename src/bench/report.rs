//! The benchmark's report: a table for people and one `BENCH name=value unit`
//! line per figure for scripts.

use super::load::Outcome;

/// Figures, in the order measured.
#[derive(Default)]
pub(super) struct Report {
    rows: Vec<(String, f64, &'static str, &'static str)>,
}

impl Report {
    pub(super) fn add(
        &mut self,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        target: &'static str,
    ) {
        self.rows.push((name.into(), value, unit, target));
    }

    pub(super) fn latency(&mut self, prefix: &str, outcome: &Outcome, targets: [&'static str; 5]) {
        let h = &outcome.latency;
        let ms = |micros: u64| micros as f64 / 1000.0;
        for ((name, quantile), target) in
            [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)]
                .into_iter()
                .zip(targets)
        {
            self.add(
                format!("{prefix}_{name}_ms"),
                ms(h.value_at_quantile(quantile)),
                "ms",
                target,
            );
        }
        self.add(format!("{prefix}_max_ms"), ms(h.max()), "ms", targets[4]);
        self.add(
            format!("{prefix}_errors"),
            outcome.errors as f64,
            "requests",
            "0",
        );
    }

    pub(super) fn print(&self) {
        println!();
        println!("{:<40} {:>12}  {:<10} target", "figure", "value", "unit");
        println!("{}", "-".repeat(90));
        for (name, value, unit, target) in &self.rows {
            println!(
                "{name:<40} {:>12}  {unit:<10} {target}",
                format_value(*value)
            );
        }
        println!();
        for (name, value, unit, _) in &self.rows {
            println!("BENCH {name}={} {unit}", format_value(*value));
        }
    }
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}
