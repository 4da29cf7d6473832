//! Our schema registry against a REAL Confluent client.
//!
//! Starts the reference stack (PostgreSQL, Kafka, the registry, the three services), takes one
//! order through the saga to ORDER_CONFIRMED, then runs the pytest suite in
//! `services/registry/tests/confluent_client` with confluent-kafka's SchemaRegistryClient,
//! AvroSerializer/AvroDeserializer and Consumer, from the venv that `./saga setup` makes in
//! `~/.cache/saga-conformance/py-venv`. The suite registers and evolves schemas, round-trips a
//! record, and decodes the `order.created` / `stock.reserved` / `order.confirmed` records our
//! services produced for that order.
//!
//! Needs the service binaries: `cargo build --release --workspace --bins` first.

use saga_conformance::sink::PushSink;
use saga_conformance::stack::{Stack, StackOptions, cache_dir, default_bin_dir};
use saga_contract::Topics;
use serde_json::{Value, json};
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
    const SETUP: &str = "run `./saga setup` (it creates ~/.cache/saga-conformance/py-venv and installs services/registry/tests/confluent_client/requirements.txt)";
    assert!(python.exists(), "the Python venv for the Confluent client tests is missing ({} not found): {SETUP}", python.display());
    let probe = tokio::process::Command::new(python)
        .args(["-c", "import confluent_kafka.schema_registry.avro, pytest"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {SETUP}", python.display()));
    assert!(probe.status.success(), "{} cannot import confluent_kafka/pytest ({}): {SETUP}", python.display(), String::from_utf8_lossy(&probe.stderr).trim());
}

/// Seeds a product, places an order and waits until the saga has confirmed it. Returns the order id.
async fn confirmed_order(stack: &Stack) -> anyhow::Result<String> {
    let e = &stack.endpoints;
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build()?;
    let product_id = format!("P-confluent-{}", uuid::Uuid::new_v4().simple());
    let put = http
        .put(format!("{}/api/v1/products/{product_id}", e.product_url))
        .json(&json!({"name": "Keyboard", "price": 15000, "stock": 50}))
        .send()
        .await?;
    anyhow::ensure!(put.status().is_success(), "seeding product {product_id}: HTTP {} {}", put.status(), put.text().await.unwrap_or_default());

    let post = http
        .post(format!("{}/api/v1/orders", e.order_url))
        .header("X-User-Id", "U-confluent-client")
        .json(&json!({"storeId": "S1", "items": [{"productId": product_id, "quantity": 2, "unitPrice": 15000}]}))
        .send()
        .await?;
    let status = post.status();
    let body: Value = post.json().await?;
    anyhow::ensure!(status.as_u16() == 201, "placing an order: HTTP {status} {body}");
    let order_id = body["orderId"].as_str().ok_or_else(|| anyhow::anyhow!("no orderId in {body}"))?.to_string();

    // Poll the order until the saga has confirmed it (pacing only; the deadline decides).
    let until = Instant::now() + CONFIRM_DEADLINE;
    let mut last = Value::Null;
    loop {
        let response = http.get(format!("{}/api/v1/orders/{order_id}", e.order_url)).send().await?;
        if response.status().is_success() {
            last = response.json().await?;
            match last["status"].as_str() {
                Some("ORDER_CONFIRMED") => return Ok(order_id),
                Some("ORDER_CANCELLED") => anyhow::bail!("order {order_id} was cancelled: {last}"),
                _ => {}
            }
        }
        anyhow::ensure!(Instant::now() < until, "order {order_id} was not ORDER_CONFIRMED within {CONFIRM_DEADLINE:?}; last seen: {last}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the pytest suite against the stack; Err carries its output.
async fn run_pytest(python: &Path, stack: &Stack, topics: &Topics, order_id: &str) -> anyhow::Result<()> {
    let e = &stack.endpoints;
    let mut command = tokio::process::Command::new(python);
    command
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "services/registry/tests/confluent_client"])
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
    anyhow::ensure!(output.status.success(), "the Confluent client suite failed ({}); its output is above", output.status);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn confluent_python_client_works_with_our_registry_and_services() {
    let began = Instant::now();
    let python = venv_python();
    check_venv(&python).await;

    let sink = PushSink::start(None).await.expect("starting the push sink");
    let topics = Topics::default();
    let options = StackOptions {
        bin_dir: default_bin_dir(),
        kafka_libs: cache_dir().join("kafka-libs"),
        log_dir: repo_root().join("reports/registry-confluent-client/logs"),
        push_gateway_url: sink.url(),
        topics: topics.clone(),
    };
    let stack = Stack::start(options).await.expect("starting the stack");
    let outcome = async {
        let order_id = confirmed_order(&stack).await?;
        println!("order {order_id} is ORDER_CONFIRMED after {:.1}s", began.elapsed().as_secs_f64());
        run_pytest(&python, &stack, &topics, &order_id).await
    }
    .await;
    let logs = stack.log_dir.clone();
    stack.shutdown().await;
    println!("registry_confluent_client: {:.1}s in all", began.elapsed().as_secs_f64());
    if let Err(e) = outcome {
        panic!("{e:#} (stack logs in {})", logs.display());
    }
}
