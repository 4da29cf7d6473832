//! The seeded bugs of the self-test ([`SEEDED_BUGS`]): each a fault planted in the reference
//! services behind the `failpoints` cargo feature (`services/kit/src/failpoint.rs`), with the
//! requirement family that must catch it and the scenarios run for it.

use crate::Service;

/// One seeded bug and what must catch it.
#[derive(Debug, Clone, Copy)]
pub struct SeededBug {
    /// Short id, also the report's sub-directory.
    pub name: &'static str,
    /// The bug, as a reviewer would describe it.
    pub bug: &'static str,
    /// The requirement family that must catch it (a scenario tagged `@<family>` fails).
    pub family: &'static str,
    /// The scenarios run for it: the families (or requirements) it can touch.
    pub tags: &'static str,
    /// The scenarios among `tags` that catch it through a fault the backend puts on the stack (a
    /// kill, a stop, a pause, a database taken away): the self-test on the containers backend runs
    /// these, as the fault takes another path there (`docker kill`, not SIGKILL). `None` when
    /// what catches it does not depend on the backend.
    pub through_backend: Option<&'static str>,
    /// `FAILPOINTS` per service that carries the bug.
    pub seeds: &'static [(Service, &'static str)],
}

/// The seeded faults: at least one per requirement family and one per crash window.
pub const SEEDED_BUGS: &[SeededBug] = &[
    SeededBug {
        name: "stock-before-reserve",
        bug: "stock.reserved reports the stock read before the decrement, not what is left",
        family: "FLOW",
        tags: "@FLOW",
        through_backend: None,
        seeds: &[(Service::Product, "product::stock-before-reserve=return")],
    },
    SeededBug {
        name: "no-cancel-push",
        bug: "the cancellation push is never sent",
        family: "FAIL",
        tags: "@FAIL",
        through_backend: None,
        seeds: &[(Service::Order, "order::no-cancel-push=return")],
    },
    SeededBug {
        name: "skip-price-check",
        bug: "the Product Service does not compare the client's unitPrice with the catalogue",
        family: "FAIL",
        tags: "@FAIL",
        through_backend: None,
        seeds: &[(Service::Product, "product::skip-price-check=return")],
    },
    SeededBug {
        name: "not-idempotent",
        bug: "the Order Service neither dedupes by eventId nor checks the order's status",
        family: "IDEMP",
        tags: "@IDEMP",
        through_backend: None,
        seeds: &[(Service::Order, "kit::no-dedupe=return;order::ignore-status=return")],
    },
    SeededBug {
        name: "key-by-event-id",
        bug: "order.confirmed / order.cancelled are keyed by their eventId instead of the orderId",
        family: "ORDER",
        tags: "@ORDER",
        through_backend: None,
        seeds: &[(Service::Order, "kit::key-by-event-id=return")],
    },
    SeededBug {
        name: "slow-intake",
        bug: "the intake does 400 ms of work in line before answering",
        family: "TIME",
        tags: "@TIME",
        through_backend: None,
        seeds: &[(Service::Order, "order::slow-intake=return(400)")],
    },
    SeededBug {
        name: "intake-waits-for-stock",
        bug: "the intake holds its answer until the Product Service has decided (up to 10 s)",
        family: "COUPLING",
        tags: "@COUPLING-1 or @COUPLING-3",
        through_backend: Some("@COUPLING-1 or @COUPLING-3"),
        seeds: &[(Service::Order, "order::intake-waits-for-stock=return(10000)")],
    },
    SeededBug {
        name: "plain-avro",
        bug: "the Product Service writes plain Avro, without the Confluent header",
        family: "WIRE",
        tags: "@WIRE",
        through_backend: None,
        seeds: &[(Service::Product, "kit::plain-avro=return")],
    },
    SeededBug {
        name: "poison-retried-forever",
        bug: "a record that cannot be decoded is retried forever instead of dead-lettered",
        family: "INPUT",
        tags: "@INPUT-4 or @INPUT-5",
        through_backend: None,
        seeds: &[(Service::Product, "kit::poison-retried-forever=return")],
    },
    SeededBug {
        name: "lost-update",
        bug: "stock is read without FOR UPDATE and the value read is written back (lost update, oversell)",
        family: "STOCK",
        tags: "@STOCK",
        through_backend: None,
        seeds: &[(Service::Product, "product::lost-update=return(20)")],
    },
    SeededBug {
        name: "float-total",
        bug: "the order total is added up in binary floating point and its cents truncated",
        family: "FLOW",
        tags: "@FLOW",
        through_backend: None,
        seeds: &[(Service::Order, "order::float-total=return")],
    },
    SeededBug {
        name: "push-own-event-id",
        bug: "the PAYMENT_WAIT push carries a fresh eventId instead of the order.confirmed that caused it",
        family: "FIELDS",
        tags: "@FLOW",
        through_backend: None,
        seeds: &[(Service::Payment, "payment::push-own-event-id=return")],
    },
    SeededBug {
        name: "timestamp-seconds",
        bug: "order.confirmed carries eventTimestamp in epoch seconds where milliseconds are due",
        family: "FIELDS",
        tags: "@FLOW",
        through_backend: None,
        seeds: &[(Service::Order, "order::timestamp-seconds=return")],
    },
    SeededBug {
        name: "confirm-cancelled-order",
        bug: "stock.reserved moves the order whatever its status (only the eventId dedupe guards it)",
        family: "LATE",
        tags: "@LATE",
        through_backend: None,
        seeds: &[(Service::Order, "order::ignore-status=return")],
    },
    SeededBug {
        name: "payment-dedupe-by-event-only",
        bug: "payments are deduped by eventId only: no one-payment-per-order constraint",
        family: "LATE",
        tags: "@LATE",
        through_backend: None,
        seeds: &[(Service::Payment, "payment::no-unique-order=return")],
    },
    SeededBug {
        name: "dedupe-in-memory",
        bug: "the Order Service remembers handled eventIds in memory only (forgotten on restart)",
        family: "IDEMP",
        tags: "@IDEMP",
        through_backend: Some("@IDEMP-6"),
        seeds: &[(Service::Order, "kit::dedupe-in-memory=return;order::ignore-status=return")],
    },
    SeededBug {
        name: "payment-dedupe-in-memory",
        bug: "the Payment Service remembers handled eventIds in memory only (forgotten on restart) and has no one-payment-per-order check",
        family: "IDEMP",
        tags: "@IDEMP",
        through_backend: Some("@IDEMP-7"),
        seeds: &[(Service::Payment, "kit::dedupe-in-memory=return;payment::no-unique-order=return")],
    },
    SeededBug {
        name: "publish-from-memory",
        bug: "crash window commit → publish: events are published 300 ms after commit from memory, with no outbox row",
        family: "CRASH",
        tags: "@CRASH-1",
        through_backend: Some("@CRASH-1"),
        seeds: &[
            (Service::Order, "kit::publish-from-memory=return(300)"),
            (Service::Product, "kit::publish-from-memory=return(300)"),
            (Service::Payment, "kit::publish-from-memory=return(300)"),
        ],
    },
    SeededBug {
        name: "offset-before-effect",
        bug: "crash window effect → offset: the offset is committed 300 ms before the handler's transaction",
        family: "CRASH",
        tags: "@CRASH-1",
        through_backend: Some("@CRASH-1"),
        seeds: &[(Service::Product, "kit::offset-before-effect=return(300)")],
    },
    SeededBug {
        name: "push-from-memory",
        bug: "crash window publish → push: the PAYMENT_WAIT push is sent 300 ms after commit from memory, with no outbox row",
        family: "CRASH",
        tags: "@CRASH-1",
        through_backend: Some("@CRASH-1"),
        seeds: &[(Service::Payment, "kit::push-from-memory=return(300)")],
    },
    SeededBug {
        name: "keep-good-lines",
        bug: "a refused reservation keeps the lines taken before the failing one (request order): not all or none",
        family: "FAIL",
        tags: "@FAIL",
        through_backend: None,
        seeds: &[(Service::Product, "product::keep-good-lines=return")],
    },
    SeededBug {
        name: "duplicate-lines-per-line",
        bug: "intake accepts two lines of one product, and each line is checked alone against the stock (oversell)",
        family: "FAIL",
        tags: "@FAIL",
        through_backend: None,
        seeds: &[
            (Service::Order, "order::accept-duplicate-lines=return"),
            (Service::Product, "product::per-line-stock-check=return"),
        ],
    },
    SeededBug {
        name: "unordered-locks",
        bug: "stock rows locked one by one in request order, 200 ms apart (A+B and B+A deadlock), and the deadlock taken for poison",
        family: "STOCK",
        tags: "@STOCK-3",
        through_backend: None,
        seeds: &[(Service::Product, "product::unordered-locks=return(200)")],
    },
    SeededBug {
        name: "cancel-without-guard",
        bug: "stock.reservation.failed cancels the order whatever its status: the cancel path has no guard",
        family: "LATE",
        tags: "@LATE",
        through_backend: None,
        seeds: &[(Service::Order, "order::cancel-ignores-status=return")],
    },
    SeededBug {
        name: "push-forgotten-on-error",
        bug: "a push is sent once and forgotten when the gateway answers 5xx or does not answer",
        family: "PUSH",
        tags: "@PUSH",
        through_backend: None,
        seeds: &[
            (Service::Order, "kit::push-forgotten-on-error=return"),
            (Service::Payment, "kit::push-forgotten-on-error=return"),
        ],
    },
    SeededBug {
        name: "decode-with-own-schema",
        bug: "consumers decode with their own copy of the schema, ignoring the writer's schema id",
        family: "WIRE",
        tags: "@WIRE",
        through_backend: None,
        seeds: &[
            (Service::Order, "kit::decode-with-own-schema=return"),
            (Service::Product, "kit::decode-with-own-schema=return"),
            (Service::Payment, "kit::decode-with-own-schema=return"),
        ],
    },
    SeededBug {
        name: "publish-before-commit",
        bug: "the intake publishes order.created before its transaction commits (no outbox row): a failed commit leaves a record for an order that does not exist",
        family: "CRASH",
        tags: "@CRASH-3",
        through_backend: Some("@CRASH-3"),
        seeds: &[(Service::Order, "order::publish-before-commit=return")],
    },
    SeededBug {
        name: "skip-after-retries",
        bug: "a consumer gives up on a record after 5 failed attempts (~1.5 s) and commits past it",
        family: "CRASH",
        tags: "@CRASH-5",
        through_backend: Some("@CRASH-5"),
        seeds: &[
            (Service::Order, "kit::skip-after-retries=return(5)"),
            (Service::Product, "kit::skip-after-retries=return(5)"),
            (Service::Payment, "kit::skip-after-retries=return(5)"),
        ],
    },
    SeededBug {
        name: "no-total-cap",
        bug: "the intake caps each line's amount but not the order's total (two lines may sum past 99,999,999.99)",
        family: "INPUT",
        tags: "@INPUT-1",
        through_backend: None,
        seeds: &[(Service::Order, "order::no-total-cap=return")],
    },
];
