-- The privacy officer's reports (see the MySQL migration).
ALTER TABLE access_log ADD COLUMN justified_at TEXT NULL;

CREATE TABLE access_denials (
    denial_id   TEXT    NOT NULL PRIMARY KEY,
    actor_id    TEXT    NOT NULL,
    actor_role  TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    patient_id  TEXT    NULL,
    reason      TEXT    NOT NULL,
    denied_at   TEXT    NOT NULL,
    position    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX denials_by_time ON access_denials (denied_at);
CREATE INDEX denials_by_actor ON access_denials (actor_id, denied_at);
