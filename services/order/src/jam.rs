//! A trial, off by default: `JAM_AFTER_ORDERS=N` makes intake stop answering after N order
//! requests — every later `POST /api/v1/orders` waits for ever, as a service whose connection
//! pool deadlocked does, while `/health` and the consumers go on. It tries the suite's "one
//! defect shows as one failure": the scenario that meets the jam fails, and those after it are
//! "not judged: the implementation had not recovered since …" (docs/reference-implementation.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// When intake jams (`None`: never) and how many order requests it has taken so far.
#[derive(Debug, Clone, Default)]
pub struct Jam {
    after: Option<u64>,
    taken: Arc<AtomicU64>,
}

impl Jam {
    /// `JAM_AFTER_ORDERS`: unset or empty, never; a number N ≥ 0, after N order requests.
    pub fn from_env() -> anyhow::Result<Jam> {
        Jam::parse(std::env::var("JAM_AFTER_ORDERS").ok().as_deref())
    }

    fn parse(value: Option<&str>) -> anyhow::Result<Jam> {
        let after = match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            Some(n) => Some(n.parse().map_err(|_| {
                anyhow::anyhow!("JAM_AFTER_ORDERS={n}: a number of order requests after which intake stops answering")
            })?),
        };
        if let Some(n) = after {
            tracing::warn!(
                orders = n,
                "JAM_AFTER_ORDERS: intake stops answering after this many order requests (a trial)"
            );
        }
        Ok(Jam { after, taken: Arc::default() })
    }

    /// Takes one order request: whether intake has jammed (this request is over the limit).
    fn jammed(&self) -> bool {
        let before = self.taken.fetch_add(1, Ordering::SeqCst);
        self.after.is_some_and(|n| before >= n)
    }

    /// Returns at once, or never once intake has jammed.
    pub async fn hold(&self) {
        if self.jammed() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Jam;

    #[test]
    fn intake_jams_after_the_nth_order_request_and_never_without_the_setting() {
        let jam = Jam::parse(Some("2")).unwrap();
        assert_eq!([jam.jammed(), jam.jammed(), jam.jammed(), jam.jammed()], [false, false, true, true]);
        let never = Jam::parse(None).unwrap();
        assert!((0..100).all(|_| !never.jammed()));
        assert!(Jam::parse(Some("soon")).unwrap_err().to_string().contains("JAM_AFTER_ORDERS=soon"));
    }
}
