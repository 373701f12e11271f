//! `emr blobs cid`: the operator's way to learn a file's content id.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn cid(args: &[&str], file: &std::path::Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_emr")).args(["blobs", "cid"]).args(args).arg(file).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn blobs_cid_prints_the_cids_kubo_gives_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.txt");
    std::fs::write(&file, "hello world\n").unwrap();
    assert_eq!(cid(&[], &file), "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4");
    assert_eq!(cid(&["--v0"], &file), "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
}

#[test]
fn blobs_cid_of_a_missing_file_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_emr")).args(["blobs", "cid", "/nonexistent/scan.dcm"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("opening /nonexistent/scan.dcm"));
}
