-- The embedded event store: the same semantics as the JetStream stream and KV
-- buckets, in one SQLite file.

-- One row per commit (all events of one command on one aggregate).
CREATE TABLE commits (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    commit_id      TEXT    NOT NULL UNIQUE,
    payload        BLOB    NOT NULL
);

CREATE INDEX commits_by_aggregate ON commits (aggregate_type, aggregate_id, position);

-- Append-only, like the JetStream stream with deny_delete and deny_purge.
CREATE TRIGGER commits_are_immutable BEFORE UPDATE ON commits
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only');
END;

CREATE TRIGGER commits_are_never_deleted BEFORE DELETE ON commits
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only');
END;

-- Latest snapshot per aggregate (`<type>.<id>`).
CREATE TABLE snapshots (
    aggregate_key TEXT PRIMARY KEY,
    snapshot      BLOB NOT NULL
);

-- Wrapped data key state per patient (JSON of KeyState).
CREATE TABLE data_keys (
    patient_id TEXT PRIMARY KEY,
    state      TEXT NOT NULL
);
