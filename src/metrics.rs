//! Counters the daemon keeps and `/metrics` shows in Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Every counter of one daemon.
#[derive(Default)]
pub struct Metrics {
    /// Messages received, by (list or "-", outcome).
    posts: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Messages never published nor answered because they would start a
    /// loop or are automatic, by the kind of address they came to.
    loops: Mutex<BTreeMap<&'static str, u64>>,
    /// Messages that could not be committed (answered 451).
    commit_failures: AtomicU64,
    /// Feed regenerations, and the time they took.
    feed_builds: AtomicU64,
    feed_build_micros: AtomicU64,
    /// Feed files written (content changed).
    feed_files_written: AtomicU64,
    /// Digests sent, by list.
    digests: Mutex<BTreeMap<String, u64>>,
    /// Deliveries accepted by the relay, and refused for good (5xx or given up).
    deliveries_sent: AtomicU64,
    deliveries_failed: AtomicU64,
    /// Deliveries queued or deferred, as of the scheduler's last look.
    outbox_depth: AtomicU64,
}

impl Metrics {
    /// Counts one received message.
    pub fn count_post(&self, list: Option<&str>, outcome: &'static str) {
        let mut posts = self.posts.lock().expect("metrics lock");
        *posts
            .entry((list.unwrap_or("-").to_string(), outcome))
            .or_default() += 1;
    }

    /// Counts one message refused as a loop or as automatic mail, sent to
    /// an address of `kind` ("posting", "-request"...).
    pub fn count_loop(&self, kind: &'static str) {
        *self
            .loops
            .lock()
            .expect("metrics lock")
            .entry(kind)
            .or_default() += 1;
    }

    /// Counts one message answered "try again later".
    pub fn count_commit_failure(&self) {
        self.commit_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one feed regeneration.
    pub fn count_feed_build(&self, micros: u64, files_written: usize) {
        self.feed_builds.fetch_add(1, Ordering::Relaxed);
        self.feed_build_micros.fetch_add(micros, Ordering::Relaxed);
        self.feed_files_written
            .fetch_add(files_written as u64, Ordering::Relaxed);
    }

    /// Counts one digest sent.
    pub fn count_digest(&self, list: &str) {
        *self
            .digests
            .lock()
            .expect("metrics lock")
            .entry(list.to_string())
            .or_default() += 1;
    }

    /// Counts the outcome of one outbox run.
    pub fn count_deliveries(&self, sent: u64, failed: u64) {
        self.deliveries_sent.fetch_add(sent, Ordering::Relaxed);
        self.deliveries_failed.fetch_add(failed, Ordering::Relaxed);
    }

    /// Records how many deliveries wait in the outbox.
    pub fn set_outbox_depth(&self, depth: u64) {
        self.outbox_depth.store(depth, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter and gauge.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP tidings_posts_received_total Messages received, by list and outcome.\n",
        );
        out.push_str("# TYPE tidings_posts_received_total counter\n");
        for ((list, outcome), count) in self.posts.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "tidings_posts_received_total{{list=\"{list}\",outcome=\"{outcome}\"}} {count}"
            );
        }
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            );
        };
        out.push_str("# HELP tidings_loops_total Messages neither published nor answered: loops, automatic mail, and mail to command addresses left unanswered, by the kind of address.\n# TYPE tidings_loops_total counter\n");
        for (kind, count) in self.loops.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "tidings_loops_total{{address=\"{kind}\"}} {count}");
        }
        counter(
            &mut out,
            "tidings_commit_failures_total",
            "Messages answered 451 because the store failed.",
            self.commit_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "tidings_feed_builds_total",
            "Feed regenerations.",
            self.feed_builds.load(Ordering::Relaxed),
        );
        let _ = write!(
            out,
            "# HELP tidings_feed_build_seconds_total Time spent regenerating feeds.\n# TYPE tidings_feed_build_seconds_total counter\ntidings_feed_build_seconds_total {}\n",
            self.feed_build_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        counter(
            &mut out,
            "tidings_feed_files_written_total",
            "Feed files replaced because their content changed.",
            self.feed_files_written.load(Ordering::Relaxed),
        );
        out.push_str("# HELP tidings_digests_sent_total Digests sent, by list.\n# TYPE tidings_digests_sent_total counter\n");
        for (list, count) in self.digests.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "tidings_digests_sent_total{{list=\"{list}\"}} {count}");
        }
        counter(
            &mut out,
            "tidings_deliveries_sent_total",
            "Digest messages accepted by the relay.",
            self.deliveries_sent.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "tidings_deliveries_failed_total",
            "Digest messages refused for good (5xx) or given up.",
            self.deliveries_failed.load(Ordering::Relaxed),
        );
        let _ = write!(
            out,
            "# HELP tidings_outbox_depth Deliveries queued or deferred.\n# TYPE tidings_outbox_depth gauge\ntidings_outbox_depth {}\n",
            self.outbox_depth.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text() {
        let metrics = Metrics::default();
        metrics.count_post(Some("en"), "stored");
        metrics.count_post(Some("en"), "stored");
        metrics.count_post(None, "rejected");
        metrics.set_outbox_depth(3);
        let text = metrics.render();
        assert!(text.contains("tidings_posts_received_total{list=\"en\",outcome=\"stored\"} 2\n"));
        assert!(text.contains("tidings_posts_received_total{list=\"-\",outcome=\"rejected\"} 1\n"));
        assert!(text.contains("# TYPE tidings_outbox_depth gauge\ntidings_outbox_depth 3\n"));
    }
}
