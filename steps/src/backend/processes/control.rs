//! Fault commands for a stack started by hand (`saga-conformance stack --push-port`): a
//! loopback HTTP endpoint, `POST /faults/<command>`, that carries the command's [`Fault`] out on the stack.
//! The config the stack writes for `--backend external` lists them as `[external.commands]`
//! (`curl … /faults/stop_product`), so checking the reference as an external implementation has
//! every capability the processes backend has, and reaches the same verdict.

use super::Stack;
use crate::backend::fault::{Fault, FaultTarget, ScaleNeed};
use anyhow::Context;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use tokio::sync::{mpsc, oneshot};

/// The faults the endpoint carries out: those that need no more than one instance of each
/// service and one Kafka node, and the faults lifting them.
fn faults() -> Vec<Fault> {
    let put = Fault::kinds().into_iter().filter(|f| f.scale_need() == ScaleNeed::None);
    let mut all: Vec<Fault> = Vec::new();
    for fault in put.flat_map(|f| [Some(f), f.undo()]).flatten() {
        if !all.contains(&fault) {
            all.push(fault);
        }
    }
    all
}

/// The `[external.commands]` keys the endpoint serves: its faults' commands.
pub fn command_keys() -> Vec<String> {
    faults().iter().map(Fault::command).collect()
}

/// `[external.commands]` lines calling the endpoint on `port`: curl prints the error body and
/// exits non-zero when the operation fails.
pub fn commands_toml(port: u16) -> String {
    command_keys()
        .iter()
        .map(|key| format!("{key} = \"curl -sS --fail-with-body -X POST http://127.0.0.1:{port}/faults/{key}\"\n"))
        .collect()
}

type Request = (String, oneshot::Sender<Result<(), String>>);

/// The commands the endpoint received, for [`FaultEndpoint::apply`] to carry out on the stack.
pub struct FaultEndpoint {
    port: u16,
    requests: mpsc::Receiver<Request>,
}

impl FaultEndpoint {
    /// Serves the endpoint on a free loopback port until the process ends.
    pub async fn serve() -> anyhow::Result<FaultEndpoint> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let (sender, requests) = mpsc::channel(1);
        let router = Router::new().route("/faults/{command}", post(receive)).with_state(sender);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                eprintln!("stack: the fault endpoint stopped: {e}");
            }
        });
        Ok(FaultEndpoint { port, requests })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Carries out each command on `stack`, one at a time, until the endpoint is gone. Runs in
    /// the task that owns the stack: the fault operations' futures are not `Send`, so the HTTP
    /// handlers hand the commands over rather than run them.
    pub async fn apply(mut self, stack: &Stack) {
        while let Some((command, reply)) = self.requests.recv().await {
            eprintln!("stack: fault command {command}");
            let outcome = run(stack, &command).await.map_err(|e| format!("{e:#}"));
            // The caller may have given up waiting; the stack is as the command left it either way.
            let _ = reply.send(outcome);
        }
    }
}

async fn receive(State(sender): State<mpsc::Sender<Request>>, Path(command): Path<String>) -> (StatusCode, String) {
    let (reply, outcome) = oneshot::channel();
    if sender.send((command.clone(), reply)).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the stack is stopping\n".into());
    }
    match outcome.await {
        Ok(Ok(())) => (StatusCode::OK, format!("{command}: done\n")),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{command}: {e}\n")),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the stack is stopping\n".into()),
    }
}

async fn run(stack: &Stack, command: &str) -> anyhow::Result<()> {
    let fault = faults().into_iter().find(|f| f.command() == command);
    let fault =
        fault.with_context(|| format!("unknown fault command {command} (known: {})", command_keys().join(", ")))?;
    stack.apply(&fault).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_one_the_capabilities_know() {
        let keys = command_keys();
        for key in [
            "stop_product",
            "start_order",
            "kill_payment",
            "pause_product",
            "unpause_product",
            "kill_db_product",
            "start_db_product",
            "stop_kafka",
            "start_kafka",
            "kill_postgres",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key}");
        }
        assert!(!keys.iter().any(|k| k.contains("instance")), "{keys:?}");
        let toml = format!("[commands]\n{}", commands_toml(4242));
        let parsed: toml::Table = toml::from_str(&toml).unwrap();
        assert_eq!(parsed["commands"].as_table().unwrap().len(), keys.len());
        assert!(toml.contains("http://127.0.0.1:4242/faults/kill_postgres"));
    }
}
