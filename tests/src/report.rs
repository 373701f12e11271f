//! Figures the reliability suite reports: each scenario writes
//! `<EMR_RELIABILITY_REPORT>/<scenario>.json` when that variable names a
//! directory (tests/reliability.sh sets it and renders docs/reliability.md from
//! the files); without it, nothing is written.

use std::collections::BTreeMap;
use std::sync::Arc;

use emr_eventstore::{CommitRecord, EventLog};
use serde_json::Value;

/// Records one scenario's figures for the report.
pub fn record(scenario: &str, figures: Value) {
    let Some(dir) = std::env::var_os("EMR_RELIABILITY_REPORT") else { return };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{scenario}.json")), serde_json::to_string_pretty(&figures).unwrap()).unwrap();
}

/// Every commit in the log by its command id: the positions it was stored at.
/// A command stored twice shows two positions.
pub async fn commits_by_command(log: &Arc<dyn EventLog>) -> BTreeMap<String, Vec<u64>> {
    let mut by_command: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut from = 1;
    loop {
        let commits = log.read_from(from, 1000).await.unwrap();
        let Some(last) = commits.last() else { break };
        from = last.position + 1;
        for commit in &commits {
            let record = CommitRecord::decode(commit).unwrap();
            by_command.entry(record.command_id.to_string()).or_default().push(commit.position);
        }
    }
    by_command
}

/// Asserts that every acknowledged command (command id, receipt position) is
/// stored exactly once, at the position its receipt names, and that no command
/// at all is stored twice.
pub fn assert_each_stored_once<'a>(stored: &BTreeMap<String, Vec<u64>>, acknowledged: impl IntoIterator<Item = (&'a String, u64)>) {
    for (command, position) in acknowledged {
        assert_eq!(
            stored.get(command).map(Vec::as_slice),
            Some(&[position][..]),
            "acknowledged command {command} stored once, where its receipt says"
        );
    }
    for (command, positions) in stored {
        assert_eq!(positions.len(), 1, "command {command} stored at {positions:?}");
    }
}
