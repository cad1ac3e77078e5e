//! [`Exporter`]: where `GET /metrics` publishes a feed's figures and what it
//! renders — a Prometheus recorder of the router's own, or the
//! application's installed one through its handle. Neighbours: `state.rs`
//! holds one per router (when asked for); `metrics.rs`, the handler, uses
//! it. Invariant: nothing here installs a global recorder.

use std::sync::Arc;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Where `/metrics` publishes and what it renders.
#[derive(Debug)]
pub(crate) struct Exporter {
    /// The `feed` label of every series.
    pub(crate) feed: String,
    pub(crate) target: Target,
}

#[derive(Debug)]
pub(crate) enum Target {
    /// A recorder of this router's own for each scrape, never installed
    /// globally: the response holds this feed's series only, exactly as
    /// they are now (a consumer or sink gone since the last scrape is not
    /// in it; counters of a reader of a reopened journal start over).
    Own,
    /// The application's installed recorder, rendered through its handle:
    /// the response holds the application's series too.
    Installed(PrometheusHandle),
}

impl Exporter {
    /// An exporter with a private recorder.
    pub(crate) fn own(feed: String) -> Arc<Exporter> {
        Arc::new(Exporter { feed, target: Target::Own })
    }

    /// An exporter that publishes to the installed recorder and renders
    /// `handle`.
    pub(crate) fn installed(feed: String, handle: PrometheusHandle) -> Arc<Exporter> {
        Arc::new(Exporter { feed, target: Target::Installed(handle) })
    }

    /// Publishes with `publish`, then renders.
    pub(crate) fn publish_and_render(&self, publish: impl FnOnce()) -> String {
        match &self.target {
            Target::Own => {
                // Every value is a snapshot: a fresh recorder holds the
                // current series and nothing that vanished.
                let recorder: PrometheusRecorder = PrometheusBuilder::new().build_recorder();
                ::metrics::with_local_recorder(&recorder, publish);
                recorder.handle().render()
            }
            Target::Installed(handle) => {
                publish();
                // Histograms of the application need it; ours have none.
                handle.run_upkeep();
                handle.render()
            }
        }
    }
}
