//! The collections a node offers over TAXII and which object versions each holds.

use crate::node::Node;
use crate::stix::tlp::TlpLevel;
use crate::store::view::View;

/// What a collection contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every version this node holds (default filter shows the merged latest view).
    Consolidated,
    /// Versions delivered by one origin member (`local` is this node's own).
    Origin(String),
}

/// A TAXII collection.
#[derive(Debug, Clone)]
pub struct Collection {
    /// TAXII id (a UUID derived from the alias, the same on every node).
    pub id: String,
    /// Short name accepted in URLs too: `consolidated`, `local`, or a member name.
    pub alias: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Contents.
    pub scope: Scope,
    /// Whether POST publishes into it.
    pub writable: bool,
}

/// The TAXII id of the collection with this alias: a UUID derived from the alias, so
/// it is the same on every node.
pub fn collection_id(alias: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("synergia:collection:{alias}").as_bytes(),
    )
    .to_string()
}

/// Every collection of a node: `consolidated`, `local`, and one per roster member,
/// former members included.
pub fn all(node: &Node) -> Vec<Collection> {
    let mut out = vec![
        Collection {
            id: collection_id("consolidated"),
            alias: "consolidated".into(),
            title: "consolidated".into(),
            description: "The merged, de-duplicated view of every member's objects this node holds (latest versions by default).".into(),
            scope: Scope::Consolidated,
            writable: false,
        },
        Collection {
            id: collection_id("local"),
            alias: "local".into(),
            title: "local".into(),
            description: format!("Objects published by this member ({}); adding objects publishes them, signed.", node.member()),
            scope: Scope::Origin(node.member().to_string()),
            writable: true,
        },
    ];
    let roster = node.roster();
    for m in roster.members() {
        out.push(Collection {
            id: collection_id(&m.name),
            alias: m.name.clone(),
            title: m.name.clone(),
            description: format!("Objects reported by member {} (read-only).", m.name),
            scope: Scope::Origin(m.name.clone()),
            writable: false,
        });
    }
    // A former member's objects published before its removal stay valid and in
    // the consolidated view; its collection stays too, under the same id.
    for f in roster.former() {
        let name = &f.member.name;
        out.push(Collection {
            id: collection_id(name),
            alias: name.clone(),
            title: name.clone(),
            description: format!(
                "Objects reported by {name}, a member until {} (read-only).",
                f.removed_at
            ),
            scope: Scope::Origin(name.clone()),
            writable: false,
        });
    }
    out
}

/// A collection by id or alias.
pub fn find(node: &Node, key: &str) -> Option<Collection> {
    all(node)
        .into_iter()
        .find(|c| c.id == key || c.alias == key)
}

impl Collection {
    /// A stable key binding `next` tokens to this collection.
    pub fn token_scope(&self) -> String {
        format!("{}:{}", self.id, self.alias)
    }

    /// Whether version `h` belongs to the collection as a reader cleared up to
    /// `max_tlp` sees it: a member's collection holds what that member delivered in
    /// envelopes the reader may know of (an amber or red delivery does not put a
    /// version into the collection of a green reader).
    pub fn contains(&self, view: &View, h: u32, max_tlp: TlpLevel) -> bool {
        match &self.scope {
            Scope::Consolidated => view.version(h).is_some(),
            Scope::Origin(o) => match view.origin_index(o) {
                Some(ix) => view.delivered_at(h, ix, max_tlp),
                None => false,
            },
        }
    }
}
