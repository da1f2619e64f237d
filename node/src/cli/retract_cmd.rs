//! `synergia retract`.

use super::client::ClientArgs;

/// Take back envelopes or objects this member published: the node signs a
/// retraction that every node applies (the originals stay in the evidence log).
/// Needs `publish`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("targets").required(true).multiple(true).args(["envelope", "object"])))]
pub struct Args {
    /// Envelope ids to retract as a whole (sha256:…); repeatable.
    #[arg(long = "envelope", num_args = 1..)]
    envelope: Vec<String>,
    /// Objects to retract: a STIX id (every version this member published) or
    /// ID@VERSION (the version whose `modified` is VERSION); repeatable.
    #[arg(long = "object", num_args = 1..)]
    object: Vec<String>,
    /// Why: false-positive, wrong-tlp, test-data, superseded or other.
    #[arg(long, value_parser = ["false-positive", "wrong-tlp", "test-data", "superseded", "other"])]
    reason: String,
    /// Free text for the people reading it (at most 4096 bytes).
    #[arg(long, default_value = "")]
    note: String,
    /// Print the JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    // Each target is checked here first, so a typo is named before anything is sent.
    for e in &a.envelope {
        if synergia::envelope::EnvelopeId::parse(e).is_none() {
            anyhow::bail!("--envelope {e:?} is not an envelope id (sha256: and 64 hex digits)");
        }
    }
    for o in &a.object {
        synergia::envelope::retraction::ObjectTarget::parse_cli(o)
            .map_err(|e| anyhow::anyhow!("--object {e}"))?;
    }
    let v = a.client.connect()?.post_json(
        "/api/v1/retractions",
        &serde_json::json!({
            "envelopes": a.envelope,
            "objects": a.object,
            "reason": a.reason,
            "note": a.note,
        }),
    )?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    for r in v["retractions"].as_array().into_iter().flatten() {
        println!(
            "retraction {} (seq {}, tlp {}): {} envelope(s), {} object(s), reason {}",
            r["id"].as_str().unwrap_or(""),
            r["seq"],
            r["tlp"].as_str().unwrap_or(""),
            r["envelopes"].as_array().map_or(0, Vec::len),
            r["objects"].as_array().map_or(0, Vec::len),
            v["reason"].as_str().unwrap_or(""),
        );
    }
    Ok(0)
}
