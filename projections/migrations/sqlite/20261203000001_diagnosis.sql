-- AI-assisted diagnosis for dashboards (see the MySQL migration).
CREATE TABLE diagnosis_checkpoint (
    id         INTEGER PRIMARY KEY,
    position   INTEGER NOT NULL,
    events     INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
);
INSERT INTO diagnosis_checkpoint VALUES (1, 0, 0, strftime('%Y-%m-%d %H:%M:%f000', 'now'));

CREATE TABLE diagnosis_models (
    model_id           TEXT    NOT NULL PRIMARY KEY,
    name               TEXT    NOT NULL,
    version            TEXT    NOT NULL,
    sha256             TEXT    NOT NULL UNIQUE,
    status             TEXT    NOT NULL,
    validated_accuracy REAL    NULL,
    validation_set     TEXT    NULL,
    updated_at         TEXT    NOT NULL,
    position           INTEGER NOT NULL
);

CREATE TABLE diagnosis_suggestions (
    suggestion_id  TEXT    NOT NULL PRIMARY KEY,
    record_id      TEXT    NOT NULL,
    attachment_id  TEXT    NOT NULL,
    model_sha256   TEXT    NOT NULL,
    model_name     TEXT    NOT NULL,
    model_version  TEXT    NOT NULL,
    explained      INTEGER NOT NULL,
    suggested_by   TEXT    NOT NULL,
    suggested_at   TEXT    NOT NULL,
    outcome        TEXT    NULL,
    reviewer_id    TEXT    NULL,
    reviewed_at    TEXT    NULL,
    position       INTEGER NOT NULL
);
CREATE INDEX diagnosis_by_record ON diagnosis_suggestions (record_id);
CREATE INDEX diagnosis_by_model ON diagnosis_suggestions (model_sha256, outcome);
