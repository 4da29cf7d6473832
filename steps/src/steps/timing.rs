//! The timing scenario: orders placed one after another, each stage timed from the evidence
//! (HTTP round trip, record timestamps, push arrival), percentiles held to the budgets.

use super::SagaWorld;
use super::orders::place;
use crate::api::OrderLine;
use crate::checkers::stages::Stamps;
use crate::timing::{Sample, summarize};
use cucumber::{then, when};
use saga_contract::{PushKind, SagaTopic};

#[when(regex = r#"^orders for (\d+) of "([^"]+)" are placed one after another and timed$"#)]
async fn timed_orders(world: &mut SagaWorld, quantity: i64, alias: String) {
    let product = world.product(&alias);
    let (warmup, samples) = (world.env.config.timing.warmup, world.env.config.timing.samples);
    let user = world.user("timing");
    let store = format!("S-{}", world.tag);
    for n in 0..warmup + samples {
        let items = vec![OrderLine { product_id: product.id.clone(), quantity, unit_price: product.price }];
        let started_at_ms = saga_contract::now_millis();
        let (order_id, answer) = place(world, &user, &store, items).await;
        // The saga is over when the payment push arrives.
        if world
            .env
            .sink
            .wait_for(&order_id, world.deadline(), |p| p.iter().any(|p| p.kind == PushKind::PaymentWait))
            .await
            .is_err()
        {
            panic!(
                "order {order_id} did not reach PAYMENT_WAIT within {:?}{}",
                world.deadline(),
                world.evidence(&order_id)
            );
        }
        if n < warmup {
            continue;
        }
        let mut ts = std::collections::BTreeMap::new();
        for topic in [SagaTopic::OrderCreated, SagaTopic::StockReserved, SagaTopic::OrderConfirmed] {
            let record = world
                .env
                .tap
                .wait_for(topic, &order_id, world.deadline())
                .await
                .unwrap_or_else(|_| panic!("no {topic} for {order_id}{}", world.evidence(&order_id)));
            ts.insert(topic, record.timestamp_ms as f64);
        }
        let payment_at = world.env.sink.arrival_of(&order_id, PushKind::PaymentWait).expect("the push arrived") as f64;
        let stamps = Stamps {
            sent_ms: Some(started_at_ms as f64),
            created_ms: Some(ts[&SagaTopic::OrderCreated]),
            reserved_ms: Some(ts[&SagaTopic::StockReserved]),
            ended_ms: Some(ts[&SagaTopic::OrderConfirmed]),
            paid_ms: Some(payment_at),
        };
        let mut sample = Sample { order_id: order_id.clone(), started_at_ms, ..Sample::default() };
        sample.stages.insert("intake", answer.elapsed_ms);
        let stages = [
            ("reservation", stamps.reservation()),
            ("confirmation", stamps.confirmation()),
            ("payment", stamps.payment()),
            ("saga", stamps.saga()),
        ];
        sample.stages.extend(stages.into_iter().filter_map(|(stage, ms)| Some((stage, ms?))));
        world.samples.push(sample);
        let done = n + 1 - warmup;
        if done % 10 == 0 || done == samples {
            eprintln!("  [timing] {done}/{samples} orders measured");
        }
    }
    world.env.timing.add(&world.samples);
}

#[then("every stage's latency percentile is within its budget")]
async fn within_budget(world: &mut SagaWorld) {
    let timing = &world.env.config.timing;
    let summary = summarize(&world.samples, timing);
    let table: Vec<String> = summary
        .iter()
        .map(|s| {
            format!(
                "{:<13} p50 {:>8.1} ms  p{} {:>8.1} ms  budget {:>7.0} ms  {}",
                s.stage,
                s.p50,
                s.checked_percentile,
                s.checked_value,
                s.budget_ms,
                if s.within_budget { "ok" } else { "OVER" }
            )
        })
        .collect();
    eprintln!("  [timing] {} samples\n  {}", world.samples.len(), table.join("\n  "));
    world.figures.insert("latency_ms".into(), serde_json::to_value(&summary).expect("stage summaries are JSON"));
    assert!(world.samples.len() >= timing.samples, "only {} samples", world.samples.len());
    assert!(summary.iter().all(|s| s.within_budget), "stages over budget:\n{}", table.join("\n"));
}
