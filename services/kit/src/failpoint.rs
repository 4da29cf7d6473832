//! Seeded faults for the suite's self-test (`saga-conformance selftest`). Built only with the
//! `failpoints` feature (the `*-failpoints` binaries); in normal builds [`seeded`] is a
//! constant `None` and the faults' code paths are dead code the optimiser removes.
//!
//! A fault is switched on through the `FAILPOINTS` environment variable read by the `fail`
//! crate at start-up, e.g. `FAILPOINTS='product::skip-price-check=return'`; an argument
//! (`return(300)`) reaches the fault's code, e.g. as a delay in milliseconds. Each fault is a
//! realistic implementation bug placed where it would be written; the self-test requires the
//! conformance suite to catch every one of them.

use std::time::Duration;

/// Keeps the fault configuration alive for the life of the process.
#[cfg(feature = "failpoints")]
pub struct Faults(#[allow(dead_code)] fail::FailScenario<'static>);
#[cfg(not(feature = "failpoints"))]
pub struct Faults;

/// Reads `FAILPOINTS` (feature `failpoints`; otherwise nothing) and logs what is seeded.
pub fn setup() -> Faults {
    #[cfg(feature = "failpoints")]
    {
        let scenario = fail::FailScenario::setup();
        let active = fail::list();
        if !active.is_empty() {
            tracing::warn!(?active, "failpoints seeded: this binary misbehaves on purpose");
        }
        Faults(scenario)
    }
    #[cfg(not(feature = "failpoints"))]
    Faults
}

/// `Some(argument)` (empty without one) when the failpoint `name` is seeded with `return`.
#[cfg(feature = "failpoints")]
pub fn seeded(name: &str) -> Option<String> {
    fail::fail_point!(name, |arg: Option<String>| Some(arg.unwrap_or_default()));
    None
}

/// Always `None`: built without the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn seeded(_name: &str) -> Option<String> {
    None
}

/// Whether the failpoint `name` is seeded.
#[inline]
pub fn active(name: &str) -> bool {
    seeded(name).is_some()
}

/// The failpoint's argument as a delay in milliseconds (`return(300)`; 500 ms without one),
/// `None` when it is not seeded.
pub fn delay(name: &str) -> Option<Duration> {
    seeded(name).map(|arg| Duration::from_millis(arg.trim().parse().unwrap_or(500)))
}

/// Sleeps for the failpoint's delay when it is seeded (a window widened on purpose).
pub async fn stall(name: &str) {
    if let Some(pause) = delay(name) {
        tokio::time::sleep(pause).await;
    }
}
