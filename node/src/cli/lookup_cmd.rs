//! `synergia lookup`.

use super::client::ClientArgs;

/// Who reported these observables: every object naming each value (an IP also matches
/// CIDR indicators containing it; a CIDR also matches the addresses and smaller
/// networks inside it), with corroboration and provenance. Needs `read`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Values: IPs, CIDRs, domains, URLs, hashes, or typed keys (domain-name:…).
    #[arg(required = true)]
    values: Vec<String>,
    /// Print the JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let v = a
        .client
        .connect()?
        .post_json("/api/v1/lookup", &serde_json::json!({"values": a.values}))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    for r in v["results"].as_array().into_iter().flatten() {
        let q = r["query"].as_str().unwrap_or("");
        if let Some(e) = r["error"].as_str() {
            println!("{q}: {e}");
            continue;
        }
        println!(
            "{q} ({}): reported by {} member(s)",
            r["key"].as_str().unwrap_or(""),
            r["corroboration"]
        );
        for h in r["hits"].as_array().into_iter().flatten() {
            let matched = h["matched"].as_str().unwrap_or("");
            let via = if matched.is_empty() || Some(matched) == r["key"].as_str() {
                String::new()
            } else {
                format!(" (as {matched})")
            };
            println!(
                "  {:<50} {:<10} conf {:>3} tlp {:<12} seen {} .. {}{}",
                h["id"].as_str().unwrap_or(""),
                h["type"].as_str().unwrap_or(""),
                h["confidence"]
                    .as_i64()
                    .map_or("-".into(), |c| c.to_string()),
                h["tlp"].as_str().unwrap_or(""),
                h["first_seen"].as_str().unwrap_or("-"),
                h["last_seen"].as_str().unwrap_or("-"),
                if h["revoked"] == true { " REVOKED" } else { "" },
            );
            if !via.is_empty() {
                println!("    matched{via}");
            }
            for p in h["provenance"].as_array().into_iter().flatten() {
                println!(
                    "      by {:<12} key {:<18} seq {:<6} signed {} via {} at {}  {}",
                    p["origin"].as_str().unwrap_or(""),
                    p["key_id"].as_str().unwrap_or(""),
                    p["seq"],
                    p["signed_at"].as_str().unwrap_or(""),
                    p["received_from"].as_str().unwrap_or(""),
                    p["received_at"].as_str().unwrap_or(""),
                    p["envelope_id"].as_str().unwrap_or("")
                );
            }
        }
        if r["truncated"] == true {
            println!(
                "  (more addresses inside {q} than one lookup scans: these are the first ones; export to read them all)"
            );
        }
    }
    Ok(0)
}
