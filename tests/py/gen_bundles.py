#!/usr/bin/env python3
"""Generates the scripted part of tests/data/bundles/ (valid/ and invalid/).

Each valid bundle holds realistic feed content for one or more object types; each
invalid bundle takes a valid object and breaks one rule, named in the file name.
Hand-written cases live beside them with names not starting with `gen_`.
Re-run after changing: python3 tests/py/gen_bundles.py
"""
import copy
import json
import os
import uuid

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "bundles")
NS = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
T0 = "2026-03-01T10:00:00.000Z"
T1 = "2026-03-02T11:30:00.000Z"
IDENT = "identity--7b2f1c3a-5d1e-4f8a-9b3c-2d4e6f8a0b1c"
TLP_GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
_n = [0]


def v4(ty):
    _n[0] += 1
    u = uuid.UUID(int=(uuid.uuid5(uuid.NAMESPACE_URL, "synergia-%d" % _n[0]).int & ~(0xF << 76)) | (4 << 76))
    return "%s--%s" % (ty, u)


def sco_id(ty, obj, props):
    contrib = {p: obj[p] for p in props if p in obj}
    if "hashes" in contrib:
        h = contrib["hashes"]
        for alg in ("MD5", "SHA-1", "SHA-256", "SHA-512"):
            if alg in h:
                contrib["hashes"] = {alg: h[alg]}
                break
    data = json.dumps(contrib, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "%s--%s" % (ty, uuid.uuid5(NS, data))


def sdo(ty, **props):
    o = {"type": ty, "spec_version": "2.1", "id": v4(ty), "created": T0, "modified": T1,
         "created_by_ref": IDENT}
    o.update(props)
    return o


SCO_PROPS = {
    "artifact": ["hashes", "payload_bin"], "autonomous-system": ["number"], "directory": ["path"],
    "domain-name": ["value"], "email-addr": ["value"], "email-message": ["from_ref", "subject", "body"],
    "file": ["hashes", "name", "extensions", "parent_directory_ref"], "ipv4-addr": ["value"],
    "ipv6-addr": ["value"], "mac-addr": ["value"], "mutex": ["name"], "url": ["value"],
    "network-traffic": ["start", "end", "src_ref", "dst_ref", "src_port", "dst_port", "protocols", "extensions"],
    "software": ["name", "cpe", "swid", "vendor", "version"],
    "user-account": ["account_type", "user_id", "account_login"],
    "windows-registry-key": ["key", "values"], "x509-certificate": ["hashes", "serial_number"],
}


def sco(ty, **props):
    o = {"type": ty, "spec_version": "2.1"}
    o.update(props)
    o["id"] = sco_id(ty, o, SCO_PROPS[ty]) if ty in SCO_PROPS else v4(ty)
    return o


def bundle(*objs):
    return {"type": "bundle", "id": v4("bundle"), "objects": list(objs)}


identity = {"type": "identity", "spec_version": "2.1", "id": IDENT, "created": T0, "modified": T0,
            "name": "Example Vendor CERT", "identity_class": "organization", "sectors": ["technology"]}
ipv4 = sco("ipv4-addr", value="203.0.113.7")
ipv6 = sco("ipv6-addr", value="2001:db8::7")
mac = sco("mac-addr", value="00:1a:2b:3c:4d:5e")
asn = sco("autonomous-system", number=64500, name="EXAMPLE-AS", rir="RIPE")
domain = sco("domain-name", value="evil.example", resolves_to_refs=[ipv4["id"]])
url = sco("url", value="https://evil.example/payload.bin")
directory = sco("directory", path="C:\\Users\\Public")
MD5 = "4d186321c1a7f0f354b297e8914ab240"
SHA256 = "3e9b0b1d5d4c2a8f7e6d5c4b3a291807f6e5d4c3b2a1908f7e6d5c4b3a291807"
file_ = sco("file", name="invoice.exe", size=124416, hashes={"SHA-256": SHA256, "MD5": MD5},
            parent_directory_ref=directory["id"], mime_type="application/x-dosexec")
artifact = sco("artifact", mime_type="application/zip", payload_bin="UEsDBBQAAAAIAA==")
email_addr = sco("email-addr", value="billing@evil.example", display_name="Billing")
email = sco("email-message", is_multipart=False, from_ref=email_addr["id"], subject="Invoice 4411",
            date="2026-03-01T09:00:00Z", body="Please see attached.")
mutex = sco("mutex", name="Global\\qakbot_2026")
software = sco("software", name="Word", vendor="Microsoft", version="16.0",
               cpe="cpe:2.3:a:microsoft:word:16.0:*:*:*:*:*:*:*")
user = sco("user-account", user_id="1001", account_login="jdoe", account_type="unix")
regkey = sco("windows-registry-key", key="HKEY_LOCAL_MACHINE\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
             values=[{"name": "updater", "data": "C:\\Users\\Public\\invoice.exe", "data_type": "REG_SZ"}])
x509 = sco("x509-certificate", serial_number="36:f7:d4:32:f4:ab:70:ea:d3:ce:98:6e:ea:99:93:49:32:0a:b7:06",
           issuer="C=ZA, ST=Western Cape, L=Cape Town, O=Thawte Consulting cc", is_self_signed=False,
           validity_not_before="2026-01-01T00:00:00Z", validity_not_after="2027-01-01T00:00:00Z")
traffic = sco("network-traffic", src_ref=ipv4["id"], dst_ref=ipv6["id"], src_port=49152, dst_port=443,
              protocols=["ipv4", "tcp", "tls"], src_byte_count=1024, start="2026-03-01T10:00:00Z",
              end="2026-03-01T10:05:00Z")
process = sco("process", pid=4242, command_line="invoice.exe /silent", image_ref=file_["id"])
indicator = sdo("indicator", name="C2 IP", indicator_types=["malicious-activity"],
                pattern="[ipv4-addr:value = '203.0.113.7']", pattern_type="stix",
                valid_from="2026-03-01T00:00:00Z", valid_until="2026-06-01T00:00:00Z",
                kill_chain_phases=[{"kill_chain_name": "lockheed-martin-cyber-kill-chain",
                                    "phase_name": "command-and-control"}],
                object_marking_refs=[TLP_GREEN], confidence=80,
                external_references=[{"source_name": "vendor-blog",
                                      "url": "https://blog.example/qakbot-2026"}])
malware = sdo("malware", name="QakBot", is_family=True, malware_types=["trojan", "bot"],
              aliases=["Qbot"], first_seen="2025-01-01T00:00:00Z", last_seen="2026-03-01T00:00:00Z",
              implementation_languages=["c++"], capabilities=["exfiltrates-data"],
              sample_refs=[file_["id"]])
attack_pattern = sdo("attack-pattern", name="Spearphishing Attachment",
                     external_references=[{"source_name": "mitre-attack", "external_id": "T1566.001",
                                           "url": "https://attack.mitre.org/techniques/T1566/001"},
                                          {"source_name": "capec", "external_id": "CAPEC-163"}],
                     kill_chain_phases=[{"kill_chain_name": "mitre-attack", "phase_name": "initial-access"}])
campaign = sdo("campaign", name="Invoice Storm", objective="Credential theft",
               first_seen="2026-02-01T00:00:00Z", last_seen="2026-03-01T00:00:00Z")
coa = sdo("course-of-action", name="Block C2", description="Block 203.0.113.7 at the perimeter.")
grouping = sdo("grouping", name="Triage", context="suspicious-activity", object_refs=[indicator["id"], malware["id"]])
incident = sdo("incident", name="INC-2026-0042", description="QakBot infection at a customer.")
infrastructure = sdo("infrastructure", name="QakBot C2", infrastructure_types=["command-and-control"],
                     first_seen="2026-01-01T00:00:00Z")
intrusion_set = sdo("intrusion-set", name="TA570", resource_level="organization",
                    primary_motivation="personal-gain", goals=["financial gain"])
location = sdo("location", name="Lyon", latitude=45.764, longitude=4.8357, precision=1000.0, country="FR")
location_region = sdo("location", region="eastern-europe")
analysis = sdo("malware-analysis", product="example-sandbox", version="5.1", result="malicious",
               analysis_started="2026-03-01T10:00:00Z", analysis_ended="2026-03-01T10:10:00Z",
               sample_ref=file_["id"], host_vm_ref=software["id"])
note = sdo("note", abstract="Confirmed", content="Seen at three customers.", authors=["analyst1"],
           object_refs=[indicator["id"]])
observed = sdo("observed-data", first_observed="2026-03-01T10:00:00Z", last_observed="2026-03-01T11:00:00Z",
               number_observed=12, object_refs=[ipv4["id"], domain["id"]])
opinion = sdo("opinion", opinion="agree", explanation="Matches our telemetry.", object_refs=[indicator["id"]])
report = sdo("report", name="QakBot returns", published="2026-03-02T00:00:00Z", report_types=["threat-report"],
             object_refs=[indicator["id"], malware["id"]])
threat_actor = sdo("threat-actor", name="TA570 operators", threat_actor_types=["crime-syndicate"],
                   roles=["agent"], sophistication="expert", resource_level="organization",
                   primary_motivation="personal-gain")
tool = sdo("tool", name="Cobalt Strike", tool_types=["remote-access"], tool_version="4.9")
vuln = sdo("vulnerability", name="CVE-2024-21413",
           external_references=[{"source_name": "cve", "external_id": "CVE-2024-21413"}])
relationship = sdo("relationship", relationship_type="indicates", source_ref=indicator["id"],
                   target_ref=malware["id"], start_time="2026-03-01T00:00:00Z", stop_time="2026-04-01T00:00:00Z")
sighting = sdo("sighting", sighting_of_ref=indicator["id"], count=3, where_sighted_refs=[IDENT],
               observed_data_refs=[observed["id"]], first_seen="2026-03-01T10:00:00Z",
               last_seen="2026-03-01T12:00:00Z", summary=False)
lang_content = sdo("language-content", object_ref=malware["id"], object_modified=T1,
                   contents={"fr": {"description": "Cheval de Troie bancaire"}, "de": {"name": "QakBot"}})
ext_def = sdo("extension-definition", name="x-acme-score", schema="https://acme.example/score.json",
              version="1.0.0", extension_types=["property-extension"])
statement = {"type": "marking-definition", "spec_version": "2.1", "id": v4("marking-definition"),
             "created": T0, "definition_type": "statement",
             "definition": {"statement": "Copyright 2026 Example Vendor"}}
tlp1_white = {"type": "marking-definition", "spec_version": "2.1",
              "id": "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9", "created": "2017-01-20T00:00:00.000Z",
              "definition_type": "tlp", "name": "TLP:WHITE", "definition": {"tlp": "white"}}
custom_obj = {"type": "x-acme-campaign-note", "spec_version": "2.1", "id": v4("x-acme-campaign-note"),
              "created": T0, "modified": T1, "x_acme_text": "free text"}

VALID = {
    "identity": [identity],
    "indicator_ipv4": [identity, indicator],
    "indicator_domain": [sdo("indicator", pattern="[domain-name:value = 'evil.example']", pattern_type="stix",
                              valid_from="2026-03-01T00:00:00.123Z", indicator_types=["malicious-activity"])],
    "indicator_file_hash": [sdo("indicator", pattern="[file:hashes.'SHA-256' = '%s']" % SHA256,
                                 pattern_type="stix", valid_from="2026-03-01T00:00:00Z", name="Dropper")],
    "indicator_url": [sdo("indicator", pattern="[url:value = 'https://evil.example/payload.bin']",
                           pattern_type="stix", valid_from="2026-03-01T00:00:00Z")],
    "indicator_yara": [sdo("indicator", pattern="rule qak { strings: $a = \"qak\" condition: $a }",
                            pattern_type="yara", valid_from="2026-03-01T00:00:00Z")],
    "indicator_snort": [sdo("indicator", pattern="alert tcp any any -> 203.0.113.7 443 (msg:\"c2\"; sid:1;)",
                             pattern_type="snort", valid_from="2026-03-01T00:00:00Z")],
    "indicator_email_pattern": [sdo("indicator", pattern="[email-message:subject = 'Invoice 4411']",
                                     pattern_type="stix", pattern_version="2.1", valid_from="2026-03-01T00:00:00Z")],
    "malware_family": [malware, file_, directory],
    "malware_instance": [sdo("malware", is_family=False, malware_types=["ransomware"])],
    "attack_pattern": [attack_pattern],
    "campaign": [campaign],
    "course_of_action": [coa],
    "grouping": [grouping, indicator, malware],
    "incident": [incident],
    "infrastructure": [infrastructure],
    "intrusion_set": [intrusion_set],
    "location_coordinates": [location],
    "location_region": [location_region],
    "malware_analysis": [analysis, file_, software],
    "note": [note],
    "observed_data": [observed, ipv4, domain],
    "opinion": [opinion],
    "report": [report, indicator, malware, identity],
    "threat_actor": [threat_actor],
    "tool": [tool],
    "vulnerability": [vuln],
    "relationship_indicates": [indicator, malware, relationship],
    "relationship_uses_tool": [sdo("relationship", relationship_type="uses", source_ref=threat_actor["id"],
                                    target_ref=tool["id"])],
    "sighting": [sighting, identity, observed],
    "sighting_location": [sdo("sighting", sighting_of_ref=malware["id"], where_sighted_refs=[location["id"]])],
    "language_content": [lang_content],
    "extension_definition": [ext_def],
    "marking_statement": [statement],
    "marking_tlp1_white": [tlp1_white],
    "sco_ipv4": [ipv4],
    "sco_ipv6": [ipv6],
    "sco_mac": [mac],
    "sco_asn": [asn, sco("ipv4-addr", value="198.51.100.0/24", belongs_to_refs=[asn["id"]])],
    "sco_domain": [domain, ipv4],
    "sco_url": [url],
    "sco_file": [file_, directory],
    "sco_artifact": [artifact],
    "sco_artifact_url": [sco("artifact", url="https://evil.example/a.zip", hashes={"SHA-256": SHA256})],
    "sco_email": [email, email_addr],
    "sco_email_multipart": [sco("email-message", is_multipart=True, subject="Docs",
                                 body_multipart=[{"content_type": "text/plain", "body": "hi"},
                                                 {"content_type": "application/zip", "body_raw_ref": artifact["id"]}]),
                            artifact],
    "sco_mutex": [mutex],
    "sco_software": [software],
    "sco_user_account": [user],
    "sco_registry_key": [regkey],
    "sco_x509": [x509],
    "sco_network_traffic": [traffic, ipv4, ipv6],
    "sco_process": [process, file_],
    "custom_object": [custom_obj],
    "custom_property": [sdo("indicator", pattern="[ipv4-addr:value = '198.51.100.9']", pattern_type="stix",
                             valid_from="2026-03-01T00:00:00Z", x_acme_score=87, x_acme_tags=["c2"])],
    "property_extension": [sdo("malware", is_family=True, name="Emotet", extensions={
        ext_def["id"]: {"extension_type": "property-extension", "score": 9}})],
    "granular_marking": [sdo("indicator", pattern="[ipv4-addr:value = '198.51.100.10']", pattern_type="stix",
                              valid_from="2026-03-01T00:00:00Z", description="secret detail",
                              granular_markings=[{"marking_ref": TLP_GREEN, "selectors": ["description"]}])],
    "revoked_indicator": [sdo("indicator", pattern="[ipv4-addr:value = '198.51.100.11']", pattern_type="stix",
                               valid_from="2026-03-01T00:00:00Z", revoked=True, confidence=0, lang="en",
                               labels=["retired"])],
    "feed_mixed": [identity, indicator, malware, relationship, ipv4, domain, attack_pattern, campaign, report],
    "valid_until_later_same_second": [sdo("indicator", pattern="[ipv4-addr:value = '198.51.100.12']",
                                           pattern_type="stix", valid_from="2026-03-01T00:00:00.100Z",
                                           valid_until="2026-03-01T00:00:00.200Z")],
}


def mutate(obj, **changes):
    o = copy.deepcopy(obj)
    for k, v in changes.items():
        if v is DEL:
            o.pop(k, None)
        else:
            o[k] = v
    return o


DEL = object()
bad_id_uuid = indicator["id"][:-12] + "zzzzzzzzzzzz"
INVALID = {
    "missing_id": [mutate(indicator, id=DEL)],
    "missing_type": [mutate(indicator, type=DEL)],
    "missing_spec_version": [mutate(indicator, spec_version=DEL)],
    "missing_created": [mutate(malware, created=DEL)],
    "missing_modified": [mutate(malware, modified=DEL)],
    "missing_pattern": [mutate(indicator, pattern=DEL)],
    "missing_pattern_type": [mutate(indicator, pattern_type=DEL)],
    "missing_valid_from": [mutate(indicator, valid_from=DEL)],
    "missing_name_attack_pattern": [mutate(attack_pattern, name=DEL)],
    "missing_is_family": [mutate(malware, is_family=DEL)],
    "missing_report_published": [mutate(report, published=DEL)],
    "missing_report_object_refs": [mutate(report, object_refs=DEL)],
    "missing_relationship_target": [mutate(relationship, target_ref=DEL)],
    "missing_sighting_of_ref": [mutate(sighting, sighting_of_ref=DEL)],
    "missing_opinion": [mutate(opinion, opinion=DEL)],
    "missing_note_content": [mutate(note, content=DEL)],
    "missing_grouping_context": [mutate(grouping, context=DEL)],
    "missing_observed_number": [mutate(observed, number_observed=DEL)],
    "missing_tool_name": [mutate(tool, name=DEL)],
    "missing_vulnerability_name": [mutate(vuln, name=DEL)],
    "missing_identity_name": [mutate(identity, name=DEL)],
    "missing_sco_value": [mutate(ipv4, value=DEL)],
    "missing_network_protocols": [mutate(traffic, protocols=DEL)],
    "missing_lang_content_contents": [mutate(lang_content, contents=DEL)],
    "spec_version_20": [mutate(indicator, spec_version="2.0")],
    "type_uppercase": [mutate(custom_obj, type="X-Acme-Thing", id="X-Acme-Thing--" + custom_obj["id"].split("--")[1])],
    "type_too_short": [mutate(custom_obj, type="xa", id="xa--" + custom_obj["id"].split("--")[1])],
    "type_underscore": [mutate(custom_obj, type="x_acme", id="x_acme--" + custom_obj["id"].split("--")[1])],
    "id_prefix_mismatch": [mutate(indicator, id="malware--" + indicator["id"].split("--")[1])],
    "id_bad_uuid": [mutate(indicator, id=bad_id_uuid)],
    "id_uuid_version_0": [mutate(indicator, id="indicator--33fe3b22-0201-07cf-85d0-97c02164528d")],
    "id_no_separator": [mutate(indicator, id="indicator-33fe3b22-0201-47cf-85d0-97c02164528d")],
    "timestamp_offset": [mutate(indicator, valid_from="2026-03-01T00:00:00+02:00")],
    "timestamp_no_z": [mutate(indicator, valid_from="2026-03-01T00:00:00")],
    "timestamp_bad_date": [mutate(indicator, valid_from="2026-02-30T00:00:00Z")],
    "created_not_millis": [mutate(indicator, created="2026-03-01T10:00:00Z")],
    "modified_before_created": [mutate(indicator, created=T1, modified=T0)],
    "valid_until_before_valid_from": [mutate(indicator, valid_until="2025-01-01T00:00:00Z")],
    "valid_until_equals_valid_from": [mutate(indicator, valid_until="2026-03-01T00:00:00Z")],
    "last_seen_before_first_seen": [mutate(campaign, last_seen="2026-01-01T00:00:00Z")],
    "last_observed_before_first": [mutate(observed, last_observed="2026-03-01T09:00:00Z")],
    "stop_time_before_start_time": [mutate(relationship, stop_time="2026-02-01T00:00:00Z")],
    "network_end_before_start": [mutate(traffic, end="2026-03-01T09:00:00Z")],
    "confidence_over_100": [mutate(indicator, confidence=101)],
    "confidence_negative": [mutate(indicator, confidence=-1)],
    "confidence_string": [mutate(indicator, confidence="high")],
    "number_observed_zero": [mutate(observed, number_observed=0)],
    "number_observed_too_large": [mutate(observed, number_observed=1000000000)],
    "sighting_count_negative": [mutate(sighting, count=-3)],
    "port_too_large": [mutate(traffic, dst_port=70000)],
    "port_negative": [mutate(traffic, src_port=-1)],
    "file_size_negative": [mutate(file_, size=-5)],
    "latitude_out_of_range": [mutate(location, latitude=95.0)],
    "is_family_string": [mutate(malware, is_family="yes")],
    "labels_empty": [mutate(indicator, labels=[])],
    "labels_not_list": [mutate(indicator, labels="c2")],
    "created_by_ref_not_identity": [mutate(indicator, created_by_ref=malware["id"])],
    "object_marking_refs_not_marking": [mutate(indicator, object_marking_refs=[IDENT])],
    "sighting_of_ref_sro": [mutate(sighting, sighting_of_ref=relationship["id"])],
    "where_sighted_refs_malware": [mutate(sighting, where_sighted_refs=[malware["id"]])],
    "relationship_source_sighting": [mutate(relationship, source_ref=sighting["id"])],
    "relationship_target_marking": [mutate(relationship, target_ref=TLP_GREEN)],
    "relationship_type_uppercase": [mutate(relationship, relationship_type="Indicates")],
    "opinion_not_in_enum": [mutate(opinion, opinion="mostly-agree")],
    "encryption_algorithm_not_in_enum": [mutate(artifact, encryption_algorithm="rot13", decryption_key="x")],
    "extension_types_not_in_enum": [mutate(ext_def, extension_types=["new-thing"])],
    "md5_wrong_length": [mutate(file_, hashes={"MD5": "abc123"})],
    "sha256_not_hex": [mutate(file_, hashes={"SHA-256": "z" * 64})],
    "sha1_wrong_length": [mutate(file_, hashes={"SHA-1": "a" * 39})],
    "sha512_wrong_length": [mutate(file_, hashes={"SHA-512": "a" * 64})],
    "sha3_256_wrong_length": [mutate(file_, hashes={"SHA3-256": "a" * 63})],
    "hashes_empty": [mutate(file_, hashes={})],
    "hash_key_invalid_chars": [mutate(file_, hashes={"sha 256!": "a" * 64})],
    "custom_property_uppercase_short": [mutate(indicator, xy=1)],
    "custom_property_bad_chars": [mutate(indicator, **{"x_acme-score": 1})],
    "custom_property_too_long": [mutate(indicator, **{"x_" + "a" * 250: 1})],
    "reserved_property_severity": [mutate(indicator, severity="high")],
    "external_reference_no_source": [mutate(attack_pattern, external_references=[{"url": "https://x.example"}])],
    "external_reference_only_source": [mutate(attack_pattern, external_references=[{"source_name": "blog"}])],
    "external_reference_bad_cve": [mutate(vuln, external_references=[{"source_name": "cve", "external_id": "2024-21413"}])],
    "external_reference_bad_capec": [mutate(attack_pattern, external_references=[{"source_name": "capec", "external_id": "163"}])],
    "kill_chain_missing_phase": [mutate(attack_pattern, kill_chain_phases=[{"kill_chain_name": "mitre-attack"}])],
    "granular_marking_no_selectors": [mutate(indicator, granular_markings=[{"marking_ref": TLP_GREEN}])],
    "granular_marking_bad_selector": [mutate(indicator, granular_markings=[{"marking_ref": TLP_GREEN, "selectors": ["nonexistent_prop"]}])],
    "granular_marking_ref_not_marking": [mutate(indicator, granular_markings=[{"marking_ref": IDENT, "selectors": ["name"]}])],
    "marking_missing_definition": [mutate(statement, definition=DEL)],
    "marking_tlp_wrong_id": [mutate(tlp1_white, id="marking-definition--33fe3b22-0201-47cf-85d0-97c02164528d")],
    "marking_self_reference": [mutate(statement, object_marking_refs=[statement["id"]])],
    "marking_missing_created": [mutate(statement, created=DEL)],
    "extension_missing_extension_type": [mutate(malware, extensions={ext_def["id"]: {"score": 9}})],
    "extension_bad_key": [mutate(malware, extensions={"acme": {"score": 9}})],
    "extension_type_not_in_enum": [mutate(malware, extensions={ext_def["id"]: {"extension_type": "magic"}})],
    "location_missing_position": [mutate(location, latitude=DEL, longitude=DEL, precision=DEL, country=DEL)],
    "location_latitude_without_longitude": [mutate(location, longitude=DEL)],
    "observed_data_objects_and_refs": [mutate(observed, objects={"0": {"type": "ipv4-addr", "value": "203.0.113.7"}})],
    "email_multipart_with_body": [mutate(email, is_multipart=True)],
    "artifact_payload_and_url": [mutate(artifact, url="https://evil.example/a.zip", hashes={"MD5": MD5})],
    "network_traffic_no_endpoints": [mutate(traffic, src_ref=DEL, dst_ref=DEL)],
    "registry_value_bad_datatype": [mutate(regkey, values=[{"name": "x", "data": "y", "data_type": "REG_STRING"}])],
    "process_id_not_v4": [mutate(process, id="process--" + str(uuid.uuid5(NS, "p")))],
    "language_content_bad_lang": [mutate(lang_content, contents={"not a language!": {"name": "x"}})],
    "bundle_objects_not_list": "OBJECTS_NOT_LIST",
    "bundle_bad_id": "BUNDLE_BAD_ID",
    "revoked_string": [mutate(indicator, revoked="false")],
    "lang_invalid": [mutate(indicator, lang="not a language")],
    "malware_sample_ref_not_file": [mutate(malware, sample_refs=[ipv4["id"]])],
    "domain_resolves_to_url": [mutate(domain, resolves_to_refs=[url["id"]])],
    "report_object_refs_empty": [mutate(report, object_refs=[])],
}


# Cases where the STIX 2.1 specification and the reference validator disagree; the
# file name states the specification's verdict (see spec_over_reference/README.md).
SPEC_OVER_REFERENCE = {
    "invalid_created_by_ref_not_identity", "invalid_custom_property_bad_chars",
    "invalid_custom_property_too_long", "invalid_domain_resolves_to_url",
    "invalid_malware_sample_ref_not_file", "invalid_object_marking_refs_not_marking",
    "invalid_spec_version_20",
}
SPEC_OVER_VALID = {
    "valid_until_more_precise_than_valid_from": [sdo(
        "indicator", pattern="[ipv4-addr:value = '198.51.100.13']", pattern_type="stix",
        valid_from="2026-03-01T00:00:00Z", valid_until="2026-03-01T00:00:00.500Z")],
    "granular_marking_lang_only": [sdo(
        "indicator", pattern="[ipv4-addr:value = '198.51.100.14']", pattern_type="stix",
        valid_from="2026-03-01T00:00:00Z", description="Adresse de commande",
        granular_markings=[{"lang": "fr", "selectors": ["description"]}])],
}
INVALID_PATTERN = {
    "unclosed_bracket": "[ipv4-addr:value = '203.0.113.7'",
    "no_brackets": "ipv4-addr:value = '203.0.113.7'",
    "dangling_and": "[ipv4-addr:value = '203.0.113.7'] AND",
    "unquoted_string": "[domain-name:value = evil.example]",
    "bad_object_type": "[Bad_Type:value = 'x']",
}


def write(dirname, name, doc):
    if dirname == "spec_over_reference":
        path = os.path.join(ROOT, dirname, "%s.json" % name)
    else:
        path = os.path.join(ROOT, dirname, "gen_%s.json" % name)
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")


def main():
    for name, objs in VALID.items():
        write("valid", name, bundle(*objs))
    for name, objs in INVALID.items():
        if objs == "OBJECTS_NOT_LIST":
            doc = {"type": "bundle", "id": v4("bundle"), "objects": indicator}
        elif objs == "BUNDLE_BAD_ID":
            doc = bundle(indicator)
            doc["id"] = "bundle--1234"
        else:
            doc = bundle(*objs)
        if "invalid_" + name in SPEC_OVER_REFERENCE:
            write("spec_over_reference", "invalid_" + name, doc)
        else:
            write("invalid", name, doc)
    for name, objs in SPEC_OVER_VALID.items():
        write("spec_over_reference", "valid_" + name, bundle(*objs))
    for name, pattern in INVALID_PATTERN.items():
        write("invalid", name, bundle(sdo("indicator", pattern=pattern, pattern_type="stix",
                                                  valid_from="2026-03-01T00:00:00Z")))


if __name__ == "__main__":
    main()
