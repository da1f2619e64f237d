//! STIX 2.1 open vocabularies (section 10 of the specification).
//!
//! Values outside an open vocabulary are allowed but earn a warning, as the OASIS
//! reference validator does; the lists are the specification's, verbatim.

/// The `attack-motivation-ov` vocabulary.
pub const ATTACK_MOTIVATION_OV: &[&str] = &[
    "accidental",
    "coercion",
    "dominance",
    "ideology",
    "notoriety",
    "organizational-gain",
    "personal-gain",
    "personal-satisfaction",
    "revenge",
    "unpredictable",
];

/// The `attack-resource-level-ov` vocabulary.
pub const ATTACK_RESOURCE_LEVEL_OV: &[&str] = &[
    "individual",
    "club",
    "contest",
    "team",
    "organization",
    "government",
];

/// The `grouping-context-ov` vocabulary.
pub const GROUPING_CONTEXT_OV: &[&str] =
    &["suspicious-activity", "malware-analysis", "unspecified"];

/// The `identity-class-ov` vocabulary.
pub const IDENTITY_CLASS_OV: &[&str] = &[
    "individual",
    "group",
    "system",
    "organization",
    "class",
    "unknown",
];

/// The `implementation-languages-ov` vocabulary.
pub const IMPLEMENTATION_LANGUAGES_OV: &[&str] = &[
    "applescript",
    "bash",
    "c",
    "c++",
    "c#",
    "go",
    "java",
    "javascript",
    "lua",
    "objective-c",
    "perl",
    "php",
    "powershell",
    "python",
    "ruby",
    "scala",
    "swift",
    "typescript",
    "visual-basic",
    "x86-32",
    "x86-64",
];

/// The `indicator-type-ov` vocabulary.
pub const INDICATOR_TYPE_OV: &[&str] = &[
    "anomalous-activity",
    "anonymization",
    "benign",
    "compromised",
    "malicious-activity",
    "attribution",
    "unknown",
];

/// The `industry-sector-ov` vocabulary.
pub const INDUSTRY_SECTOR_OV: &[&str] = &[
    "agriculture",
    "aerospace",
    "automotive",
    "chemical",
    "commercial",
    "communications",
    "construction",
    "defense",
    "education",
    "energy",
    "entertainment",
    "financial-services",
    "government",
    "emergency-services",
    "government-local",
    "government-national",
    "government-public-services",
    "government-regional",
    "healthcare",
    "hospitality-leisure",
    "infrastructure",
    "dams",
    "nuclear",
    "water",
    "insurance",
    "manufacturing",
    "mining",
    "non-profit",
    "pharmaceuticals",
    "retail",
    "technology",
    "telecommunications",
    "transportation",
    "utilities",
];

/// The `infrastructure-type-ov` vocabulary.
pub const INFRASTRUCTURE_TYPE_OV: &[&str] = &[
    "amplification",
    "anonymization",
    "botnet",
    "command-and-control",
    "control-system",
    "exfiltration",
    "firewall",
    "hosting-malware",
    "hosting-target-lists",
    "phishing",
    "reconnaissance",
    "routers-switches",
    "staging",
    "workstation",
    "unknown",
];

/// The `malware-result-ov` vocabulary.
pub const MALWARE_RESULT_OV: &[&str] = &["malicious", "suspicious", "benign", "unknown"];

/// The `malware-type-ov` vocabulary.
pub const MALWARE_TYPE_OV: &[&str] = &[
    "adware",
    "backdoor",
    "bot",
    "bootkit",
    "ddos",
    "downloader",
    "dropper",
    "exploit-kit",
    "keylogger",
    "ransomware",
    "remote-access-trojan",
    "resource-exploitation",
    "rogue-security-software",
    "rootkit",
    "screen-capture",
    "spyware",
    "trojan",
    "unknown",
    "virus",
    "webshell",
    "wiper",
    "worm",
];

/// The `malware-capabilities-ov` vocabulary.
pub const MALWARE_CAPABILITIES_OV: &[&str] = &[
    "accesses-remote-machines",
    "anti-debugging",
    "anti-disassembly",
    "anti-emulation",
    "anti-memory-forensics",
    "anti-sandbox",
    "anti-vm",
    "captures-input-peripherals",
    "captures-output-peripherals",
    "captures-system-state-data",
    "cleans-traces-of-infection",
    "commits-fraud",
    "communicates-with-c2",
    "compromises-data-availability",
    "compromises-data-integrity",
    "compromises-system-availability",
    "controls-local-machine",
    "degrades-security-software",
    "degrades-system-updates",
    "determines-c2-server",
    "emails-spam",
    "escalates-privileges",
    "evades-av",
    "exfiltrates-data",
    "fingerprints-host",
    "hides-artifacts",
    "hides-executing-code",
    "infects-files",
    "infects-remote-machines",
    "installs-other-components",
    "persists-after-system-reboot",
    "prevents-artifact-access",
    "prevents-artifact-deletion",
    "probes-network-environment",
    "self-modifies",
    "steals-authentication-credentials",
    "violates-system-operational-integrity",
];

/// The `indicator-pattern-ov` vocabulary.
pub const INDICATOR_PATTERN_OV: &[&str] = &["stix", "pcre", "sigma", "snort", "suricata", "yara"];

/// The `processor-architecture-ov` vocabulary.
pub const PROCESSOR_ARCHITECTURE_OV: &[&str] = &[
    "alpha", "arm", "ia-64", "mips", "powerpc", "sparc", "x86", "x86-64",
];

/// The `region-ov` vocabulary.
pub const REGION_OV: &[&str] = &[
    "africa",
    "eastern-africa",
    "middle-africa",
    "northern-africa",
    "southern-africa",
    "western-africa",
    "americas",
    "latin-america-caribbean",
    "south-america",
    "caribbean",
    "central-america",
    "northern-america",
    "asia",
    "central-asia",
    "eastern-asia",
    "southern-asia",
    "south-eastern-asia",
    "western-asia",
    "europe",
    "eastern-europe",
    "northern-europe",
    "southern-europe",
    "western-europe",
    "oceania",
    "australia-new-zealand",
    "melanesia",
    "micronesia",
    "polynesia",
    "antarctica",
];

/// The `report-type-ov` vocabulary.
pub const REPORT_TYPE_OV: &[&str] = &[
    "threat-report",
    "attack-pattern",
    "campaign",
    "identity",
    "indicator",
    "intrusion-set",
    "malware",
    "observed-data",
    "threat-actor",
    "tool",
    "vulnerability",
];

/// The `threat-actor-type-ov` vocabulary.
pub const THREAT_ACTOR_TYPE_OV: &[&str] = &[
    "activist",
    "competitor",
    "crime-syndicate",
    "criminal",
    "hacker",
    "insider-accidental",
    "insider-disgruntled",
    "nation-state",
    "sensationalist",
    "spy",
    "terrorist",
    "unknown",
];

/// The `threat-actor-role-ov` vocabulary.
pub const THREAT_ACTOR_ROLE_OV: &[&str] = &[
    "agent",
    "director",
    "independent",
    "infrastructure-architect",
    "infrastructure-operator",
    "malware-author",
    "sponsor",
];

/// The `threat-actor-sophistication-ov` vocabulary.
pub const THREAT_ACTOR_SOPHISTICATION_OV: &[&str] = &[
    "none",
    "minimal",
    "intermediate",
    "advanced",
    "expert",
    "innovator",
    "strategic",
];

/// The `tool-type-ov` vocabulary.
pub const TOOL_TYPE_OV: &[&str] = &[
    "denial-of-service",
    "exploitation",
    "information-gathering",
    "network-capture",
    "credential-exploitation",
    "remote-access",
    "vulnerability-scanning",
    "unknown",
];

/// The `hash-algo-ov` vocabulary.
pub const HASH_ALGO_OV: &[&str] = &[
    "MD5", "SHA-1", "SHA-256", "SHA-512", "SHA3-256", "SHA3-512", "SSDEEP", "TLSH",
];

/// The `account-type-ov` vocabulary.
pub const ACCOUNT_TYPE_OV: &[&str] = &[
    "unix",
    "windows-local",
    "windows-domain",
    "ldap",
    "tacacs",
    "radius",
    "nis",
    "openid",
    "facebook",
    "skype",
    "twitter",
    "kavi",
];
