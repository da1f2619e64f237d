//! The JSON Schemas in schema/ describe what the code reads and writes: the example
//! roster, the published envelope vector and every example config validate, and
//! deliberately broken documents are refused (tests/py/check_schemas.py, with the
//! Python `jsonschema` package, an implementation independent of ours).

#[test]
fn schemas_accept_real_documents_and_refuse_broken_ones() {
    let py = crate::common::reference_python();
    let root = crate::common::workspace();
    let out = std::process::Command::new(py)
        .arg(root.join("tests/py/check_schemas.py"))
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_schema_is_listed_in_the_readme() {
    let dir = crate::common::workspace().join("schema");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".schema.json") {
            n += 1;
            assert!(
                readme.contains(&name),
                "schema/README.md does not list {name}"
            );
        }
    }
    assert!(n >= 3, "expected at least three schemas, found {n}");
}
