//! `synergia status`.

use super::client::{ClientArgs, node_error};
use synergia::node::peers::status::{PeerStatus, render_table};

/// Peer sync status of a node: one row per peer.
///
/// Columns: reachable, last attempt, last success, lag (envelopes and seconds),
/// envelopes and objects received and sent, rejections by reason, envelopes withheld by
/// TLP level, days to certificate and signing-key expiry, whether the clear/green view
/// digests agree, and the last error with its time. Needs the `operate` role.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    client: ClientArgs,
    /// Print the JSON answer instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let c = a.client.connect()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, v) = rt.block_on(c.json(c.request(reqwest::Method::GET, "/api/v1/peers")))?;
    if status != 200 {
        anyhow::bail!(node_error(status, &v));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let peers: Vec<PeerStatus> = serde_json::from_value(v["peers"].clone())?;
    println!(
        "node {} ({}); view digests: {}",
        v["member"].as_str().unwrap_or("?"),
        c.url,
        v["digests"]
    );
    if let Some(m) = v.get("membership").filter(|m| !m.is_null()) {
        println!(
            "membership log: entry {} ({}), threshold {}",
            m["head"]["index"],
            m["head"]["hash"].as_str().unwrap_or("?"),
            m["threshold"]
        );
        for f in m["forks"].as_array().into_iter().flatten() {
            println!(
                "FORK at entry {}: ours {} (approved by {}), other {} (approved by {}, from {}, seen {}); no entry is taken until an operator resolves it",
                f["index"],
                f["held"]["hash"].as_str().unwrap_or("?"),
                signers(&f["held"]["signers"]),
                f["other"]["hash"].as_str().unwrap_or("?"),
                signers(&f["other"]["signers"]),
                f["from"].as_str().unwrap_or("?"),
                f["seen_at"].as_str().unwrap_or("?"),
            );
        }
    }
    print!("{}", render_table(&peers));
    Ok(0)
}

fn signers(v: &serde_json::Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
