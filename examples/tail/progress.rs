//! `--until-caught-up` on a terminal: a progress bar on stderr (shards done of known, events,
//! events/s, lag) and one summary line at the end. Nothing at all when stderr is not a
//! terminal: what harnesses read on stderr stays as it was (empty unless something failed).
//!
//! The bar is redrawn from the printing loop's 100 ms tick, from the stream's `status()` (no
//! I/O): the loop does nothing per event for it.

use std::io::{self, IsTerminal as _};
use std::time::{Duration, Instant};

use dynamodb_stream::ChangeStream;
use dynamodb_stream::status::{ShardState, Status};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bar and what the summary needs; inert when stderr is not a terminal.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    /// A bar for a `--until-caught-up` run (`wanted`), if stderr is a terminal.
    pub(crate) fn new(wanted: bool) -> Self {
        let bar = (wanted && io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} shards {pos}/{len} [{bar:30}] {msg} ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        Self {
            bar,
            started: Instant::now(),
        }
    }

    /// Redraws the bar: `printed` events so far.
    pub(crate) fn update(&self, printed: u64, stream: &ChangeStream) {
        let Some(bar) = &self.bar else {
            return;
        };
        let status = stream.status();
        let (done, total) = shards_done(&status);
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        let rate = rate(printed, self.started.elapsed());
        let lag = lag(&status).map_or_else(String::new, |lag| format!(", lag {}", human(lag)));
        bar.set_message(format!("{printed} events, {rate:.0}/s{lag}"));
        bar.tick();
    }

    /// Clears the bar and prints the summary line (terminal only).
    pub(crate) fn finish(&self, printed: u64, stream: Option<&ChangeStream>) {
        let Some(bar) = &self.bar else {
            return;
        };
        bar.finish_and_clear();
        let shards = stream.map_or(0, |s| s.status().shards.len());
        let elapsed = self.started.elapsed();
        eprintln!(
            "tail: {printed} events from {shards} shards in {:.1} s ({:.0} events/s)",
            elapsed.as_secs_f64(),
            rate(printed, elapsed)
        );
    }
}

/// Shards read to their (current) end, and shards known.
fn shards_done(status: &Status) -> (usize, usize) {
    let done = status
        .shards
        .iter()
        .filter(|s| matches!(s.state, ShardState::Finished | ShardState::CaughtUp))
        .count();
    (done, status.shards.len())
}

/// The largest age of the last record delivered from a shard being read.
fn lag(status: &Status) -> Option<Duration> {
    status
        .shards
        .iter()
        .filter(|s| s.state == ShardState::Reading)
        .filter_map(|s| s.last_record_age)
        .max()
}

fn rate(events: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        events as f64 / secs
    } else {
        0.0
    }
}

/// `4.2s`, `12m03s`, `5h07m`.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(human(Duration::from_millis(4200)), "4.2s");
        assert_eq!(human(Duration::from_secs(723)), "12m03s");
        assert_eq!(human(Duration::from_secs(5 * 3600 + 7 * 60 + 9)), "5h07m");
        assert_eq!(rate(10, Duration::ZERO), 0.0);
        assert_eq!(rate(10, Duration::from_secs(2)), 5.0);
    }
}
