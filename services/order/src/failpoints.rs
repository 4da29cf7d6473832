//! `order-service-failpoints`: the Order Service built with its seeded faults (feature
//! `failpoints`, see `services/kit/src/failpoint.rs`) for `saga-conformance selftest`. The
//! same code as `order-service`; a target of its own so both builds stay side by side.

#[path = "main.rs"]
mod service;

fn main() -> anyhow::Result<()> {
    service::main()
}
