//! Reference-implementation tests that need the whole stack but are not conformance
//! requirements (they depend on how the reference is built). One stack serves them all:
//!
//! 1. **Outbox**: with the broker frozen, an order is accepted (committed with its event in the
//!    outbox), the Order Service is killed before it could publish, the broker thaws, the service
//!    restarts — and the event is published and the saga completes, exactly once.
//! 2. **Registry vs a real Confluent client**: one order is taken to ORDER_CONFIRMED, then the
//!    pytest suite in `steps/tests/confluent_client` with confluent-kafka's
//!    SchemaRegistryClient, AvroSerializer/AvroDeserializer and Consumer, from the venv that
//!    `./saga setup` makes in `~/.cache/saga-conformance/py-venv`. The suite registers and evolves
//!    schemas, round-trips a record, and decodes the `order.created` / `stock.reserved` /
//!    `order.confirmed` records our services produced for that order.
//!
//! Needs the service binaries: `cargo build --release --workspace --bins` first.

use saga_conformance::Service;
use saga_conformance::api::{NewOrder, OrderLine, ProductSpec};
use saga_conformance::backend::paths::cache_dir;
use saga_conformance::backend::processes::{Stack, StackOptions};
use saga_conformance::client::SagaClient;
use saga_conformance::poll;
use saga_conformance::sink::PushSink;
use saga_contract::{Money, OrderStatus, Topics};
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const CONFIRM_DEADLINE: Duration = Duration::from_secs(60);
const PYTEST_DEADLINE: Duration = Duration::from_secs(300);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn venv_python() -> PathBuf {
    cache_dir().join("py-venv/bin/python")
}

/// Fails early, with the fix, when the venv is missing or lacks the client.
async fn check_venv(python: &Path) {
    const SETUP: &str = "run `./saga setup` (it creates ~/.cache/saga-conformance/py-venv and installs steps/tests/confluent_client/requirements.txt)";
    assert!(
        python.exists(),
        "the Python venv for the Confluent client tests is missing ({} not found): {SETUP}",
        python.display()
    );
    let probe = tokio::process::Command::new(python)
        .args(["-c", "import confluent_kafka.schema_registry.avro, pytest"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {SETUP}", python.display()));
    assert!(
        probe.status.success(),
        "{} cannot import confluent_kafka/pytest ({}): {SETUP}",
        python.display(),
        String::from_utf8_lossy(&probe.stderr).trim()
    );
}

/// Seeds a product and places an order for 2 of it; returns the order id.
async fn place_order(client: &SagaClient) -> anyhow::Result<String> {
    let product_id = format!("P-reference-{}", uuid::Uuid::new_v4().simple());
    let price = Money(1_500_000);
    client.put_product(&product_id, &ProductSpec { name: "Keyboard".into(), price, stock: 50 }).await?;
    let order =
        NewOrder { store_id: "S1".into(), items: vec![OrderLine { product_id, quantity: 2, unit_price: price }] };
    Ok(client.place_order("U-reference", &order).await?.0.order_id)
}

/// Polls the order until the saga has confirmed it (pacing only; the deadline decides).
async fn wait_confirmed(client: &SagaClient, order_id: &str) -> anyhow::Result<()> {
    let status =
        poll::until(CONFIRM_DEADLINE, Duration::from_millis(100), async || match client.order(order_id).await {
            Ok(Some(order)) if order.status != OrderStatus::Created => Ok(order.status),
            Ok(Some(order)) => Err(order.status.to_string()),
            Ok(None) => Err("HTTP 404".to_string()),
            Err(e) => Err(e.to_string()),
        })
        .await;
    match status {
        Ok(OrderStatus::Confirmed) => Ok(()),
        Ok(other) => anyhow::bail!("order {order_id} ended {other}"),
        Err(last) => {
            anyhow::bail!("order {order_id} was not ORDER_CONFIRMED within {CONFIRM_DEADLINE:?}; last seen: {last}")
        }
    }
}

/// Runs the pytest suite against the stack; Err carries its output.
async fn run_pytest(python: &Path, stack: &Stack, topics: &Topics, order_id: &str) -> anyhow::Result<()> {
    let e = &stack.endpoints;
    let mut command = tokio::process::Command::new(python);
    command
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "steps/tests/confluent_client"])
        .current_dir(repo_root())
        .env("SCHEMA_REGISTRY_URL", &e.registry_url)
        .env("KAFKA_BOOTSTRAP_SERVERS", &e.kafka_bootstrap)
        .env("SAGA_ORDER_ID", order_id)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .envs(topics.env_pairs())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let began = Instant::now();
    let output = tokio::time::timeout(PYTEST_DEADLINE, command.output())
        .await
        .map_err(|_| anyhow::anyhow!("pytest did not finish within {PYTEST_DEADLINE:?}"))??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("---- pytest (confluent-kafka client) stdout, {:.1}s ----\n{stdout}", began.elapsed().as_secs_f64());
    if !stderr.trim().is_empty() {
        println!("---- pytest stderr ----\n{stderr}");
    }
    anyhow::ensure!(
        output.status.success(),
        "the Confluent client suite failed ({}); its output is above",
        output.status
    );
    Ok(())
}

/// The outbox check (see the header): returns the order id once the saga has completed.
async fn outbox_survives_a_crash_between_commit_and_publish(
    stack: &Stack,
    client: &SagaClient,
) -> anyhow::Result<String> {
    stack.freeze_kafka(true).await?;
    let placed = place_order(client).await;
    // Whatever happened, the broker must thaw before anything else.
    let killed = stack.stop_service(Service::Order, true).await;
    // White-box: the event exists only as an outbox row now (the test is about the reference).
    let pending = async {
        let order_id = placed.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let mut db = sqlx::PgConnection::connect(&stack.database_url("order_db")).await?;
        let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM outbox WHERE kind = 'kafka' AND msg_key = $1")
            .bind(order_id)
            .fetch_one(&mut db)
            .await?;
        Ok::<_, anyhow::Error>(rows)
    }
    .await;
    stack.freeze_kafka(false).await?;
    let order_id = placed?;
    killed?;
    anyhow::ensure!(pending? == 1, "order.created of {order_id} should be waiting in the outbox after the crash");
    println!("order {order_id} accepted while Kafka was frozen; order-service killed before publishing");
    stack.start_service(Service::Order).await?;
    wait_confirmed(client, &order_id).await?;
    // The payment follows the confirmation asynchronously: poll with the same deadline.
    let payments =
        poll::until(CONFIRM_DEADLINE, Duration::from_millis(100), async || match client.payments(&order_id).await {
            Ok(payments) if !payments.is_empty() => Ok(payments),
            Ok(none) => Err(format!("{none:?}")),
            Err(e) => Err(e.to_string()),
        })
        .await
        .map_err(|last| anyhow::anyhow!("no payment for {order_id} within {CONFIRM_DEADLINE:?}: {last}"))?;
    anyhow::ensure!(payments.len() == 1, "expected exactly one payment for {order_id}, got {payments:?}");
    println!("order {order_id}: order.created was published after the restart; confirmed with one payment");
    Ok(order_id)
}

/// The seed's monitoring points, read from each service's `/metrics` after the orders above:
/// publishes per topic, records handled per outcome, time per stage, pushes delivered.
async fn metrics_count_the_saga(client: &SagaClient) -> anyhow::Result<()> {
    let expected: [(Service, &str, &[&str]); 7] = [
        (Service::Order, "saga_publish_total", &[r#"topic="order.created""#, r#"outcome="success""#]),
        (Service::Order, "saga_publish_total", &[r#"topic="order.confirmed""#, r#"outcome="success""#]),
        (Service::Order, "saga_consumed_total", &[r#"topic="stock.reserved""#, r#"outcome="processed""#]),
        (Service::Product, "saga_publish_total", &[r#"topic="stock.reserved""#, r#"outcome="success""#]),
        (Service::Product, "saga_stage_seconds_count", &[r#"stage="order.created""#]),
        (Service::Payment, "saga_consumed_total", &[r#"topic="order.confirmed""#, r#"outcome="processed""#]),
        (Service::Payment, "saga_push_total", &[r#"outcome="success""#]),
    ];
    for (service, name, labels) in expected {
        let url = format!("{service} /metrics");
        // The push and the payment follow the confirmation asynchronously.
        let value = poll::until(CONFIRM_DEADLINE, Duration::from_millis(100), async || {
            let text = client.metrics(service).await.map_err(|e| e.to_string())?;
            let value = text
                .lines()
                .find(|line| line.starts_with(&format!("{name}{{")) && labels.iter().all(|l| line.contains(l)))
                .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok());
            match value {
                Some(v) if v >= 1.0 => Ok(v),
                other => Err(format!("{other:?} in:\n{text}")),
            }
        })
        .await
        .map_err(|seen| anyhow::anyhow!("{url}: {name}{{{}}} should be at least 1, saw {seen}", labels.join(",")))?;
        println!("{url}: {name}{{{}}} = {value}", labels.join(","));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn reference_stack_outbox_and_confluent_client() {
    let _one_stack = crate::ONE_STACK_AT_A_TIME.lock().await;
    let began = Instant::now();
    let python = venv_python();
    check_venv(&python).await;

    let sink = PushSink::start(None).await.expect("starting the push sink");
    let topics = Topics::default();
    let options =
        StackOptions::reference(repo_root().join("reports/reference-stack/logs"), &sink.url(), topics.clone());
    let stack = Stack::start(options).await.expect("starting the stack");
    let outcome = async {
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build()?;
        let client = SagaClient::new(http, &stack.endpoints);
        outbox_survives_a_crash_between_commit_and_publish(&stack, &client).await?;
        let order_id = place_order(&client).await?;
        wait_confirmed(&client, &order_id).await?;
        println!("order {order_id} is ORDER_CONFIRMED after {:.1}s", began.elapsed().as_secs_f64());
        metrics_count_the_saga(&client).await?;
        run_pytest(&python, &stack, &topics, &order_id).await
    }
    .await;
    let logs = stack.log_dir.clone();
    stack.shutdown().await;
    println!("reference_stack: {:.1}s in all", began.elapsed().as_secs_f64());
    if let Err(e) = outcome {
        panic!("{e:#} (stack logs in {})", logs.display());
    }
}
