//! Group commit for the intake. Each `POST /api/v1/orders` hands its validated order to a
//! writer and waits for the answer; a writer takes every order that is waiting (never waiting
//! for more: a lone order goes at once) and stores them with their `order.created` outbox rows
//! in one transaction and one commit. Only then does each request get its answer, so a 201
//! still means "durably stored"; a crash before the commit answers nobody.
//!
//! Why: at a few hundred orders a second, one transaction per order was half of PostgreSQL's
//! commits and the largest share of its CPU (docs/performance.md). Under load the orders that
//! arrive during one commit share the next.
//!
//! A batch that fails (the database refused one order of it) is stored again order by order,
//! so one bad order fails only its own request.

use saga_contract::OrderCreated;
use saga_service_kit::db::HeldConnection;
use saga_service_kit::outbox::Binds;
use saga_service_kit::service::Context;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

/// Most orders in one transaction: bounds a transaction's size and the statement's arrays.
const MAX_BATCH: usize = 64;
/// Writers storing batches side by side: while one waits for its commit's WAL flush, the
/// next takes the orders that arrived meanwhile.
const WRITERS: usize = 2;
/// Requests waiting for a writer before new ones wait to be queued (back-pressure).
const QUEUE: usize = 1024;

/// One order ready to store: its id, the event that describes it, and the event framed.
pub struct NewOrder {
    pub order_id: Uuid,
    pub event: OrderCreated,
    pub framed: Vec<u8>,
}

struct Pending {
    order: NewOrder,
    stored: oneshot::Sender<Result<(), String>>,
}

/// Where the intake hands its orders; cheap to clone.
#[derive(Clone)]
pub struct Intake {
    queue: mpsc::Sender<Pending>,
}

impl Intake {
    /// Starts the writers on `context`'s pool.
    pub fn start(context: Context) -> Intake {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..WRITERS {
            tokio::spawn(write_batches(context.clone(), waiting.clone()));
        }
        Intake { queue }
    }

    /// Stores `order` with its outbox row; `Err` says why the database did not take it.
    pub async fn store(&self, order: NewOrder) -> Result<(), String> {
        let (stored, answer) = oneshot::channel();
        self.queue.send(Pending { order, stored }).await.map_err(|_| "the intake is shutting down".to_string())?;
        answer.await.unwrap_or_else(|_| Err("the intake writer stopped before the commit".to_string()))
    }
}

/// One writer: takes what is waiting (holding the queue only while taking), stores it, answers.
async fn write_batches(context: Context, waiting: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut held = HeldConnection::new(context.pool.clone());
    loop {
        {
            let mut queue = waiting.lock().await;
            if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return; // every sender is gone: the service is stopping
            }
        }
        let orders: Vec<&NewOrder> = batch.iter().map(|p| &p.order).collect();
        match insert(&context, &mut held, &orders).await {
            Ok(()) => batch.drain(..).for_each(|p| {
                let _ = p.stored.send(Ok(()));
            }),
            Err(error) if batch.len() == 1 => {
                let _ = batch.pop().map(|p| p.stored.send(Err(error.to_string())));
            }
            // Alone, each order meets only its own fate.
            Err(_) => {
                for pending in batch.drain(..) {
                    let outcome = insert(&context, &mut held, &[&pending.order]).await.map_err(|e| e.to_string());
                    let _ = pending.stored.send(outcome);
                }
            }
        }
    }
}

/// Seeded fault `order::publish-before-commit`: one order stored by its own request, in a
/// transaction of its own on a connection from the pool (an intake without the group commit).
pub async fn store_alone(context: &Context, order: &NewOrder) -> sqlx::Result<()> {
    let mut held = HeldConnection::new(context.pool.clone());
    store(context, &mut held, &[order]).await
}

/// The orders, their lines and their `order.created` outbox rows in one statement on the
/// writer's connection (given back after a failure: it may be what failed).
async fn insert(context: &Context, held: &mut HeldConnection, orders: &[&NewOrder]) -> sqlx::Result<()> {
    let stored = store(context, held, orders).await;
    if stored.is_err() {
        held.forget();
    }
    stored
}

async fn store(context: &Context, held: &mut HeldConnection, orders: &[&NewOrder]) -> sqlx::Result<()> {
    let mut tx = context.relay.begin(held).await?;
    let lines = || orders.iter().flat_map(|o| o.event.items.iter().enumerate().map(move |(n, item)| (o, n, item)));
    // Nothing else runs in this transaction, so the orders, their lines and their outbox rows
    // are one statement, committed on its own: one round trip.
    tx.write_at_commit(
        "new_orders AS (INSERT INTO orders (order_id, user_id, store_id, status, total_amount) \
           SELECT id, usr, store, 'ORDER_CREATED', total FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[]) AS o(id, usr, store, total)), \
         new_lines AS (INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price) \
           SELECT * FROM unnest($5::uuid[], $6::int[], $7::text[], $8::int[], $9::bigint[]))",
        Binds::default()
            .bind(orders.iter().map(|o| o.order_id).collect::<Vec<_>>())
            .bind(orders.iter().map(|o| o.event.user_id.as_str()).collect::<Vec<_>>())
            .bind(orders.iter().map(|o| o.event.store_id.as_str()).collect::<Vec<_>>())
            .bind(orders.iter().map(|o| o.event.total_amount.0).collect::<Vec<_>>())
            .bind(lines().map(|(o, _, _)| o.order_id).collect::<Vec<_>>())
            .bind(lines().map(|(_, n, _)| n as i32).collect::<Vec<_>>())
            .bind(lines().map(|(_, _, i)| i.product_id.as_str()).collect::<Vec<_>>())
            .bind(lines().map(|(_, _, i)| i.quantity).collect::<Vec<_>>())
            .bind(lines().map(|(_, _, i)| i.unit_price.0).collect::<Vec<_>>()),
    );
    let topic = context.config.topics.name(saga_contract::SagaTopic::OrderCreated);
    // Seeded fault `order::publish-before-commit`: the record was published before this
    // transaction (see api.rs), so it gets no outbox row.
    if !saga_service_kit::failpoint::active("order::publish-before-commit") {
        for order in orders {
            tx.event(topic, &order.event.order_id, order.framed.clone());
        }
    }
    tx.commit().await
}
