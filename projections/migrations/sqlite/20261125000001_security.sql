-- Security events get a read model of their own (see the MySQL migration).
DROP TABLE security_events;

CREATE TABLE security_checkpoint (
    id         INTEGER PRIMARY KEY,
    position   INTEGER NOT NULL,
    events     INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
);
INSERT INTO security_checkpoint VALUES (1, 0, 0, strftime('%Y-%m-%d %H:%M:%f000', 'now'));

CREATE TABLE security_events (
    security_event_id TEXT    NOT NULL PRIMARY KEY,
    kind              TEXT    NOT NULL,
    severity          TEXT    NOT NULL,
    user_id           TEXT    NULL,
    patient_id        TEXT    NULL,
    client            TEXT    NULL,
    risk_score        REAL    NOT NULL,
    summary           TEXT    NOT NULL,
    evidence          TEXT    NOT NULL,
    responses         TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    assignee          TEXT    NULL,
    outcome           TEXT    NULL,
    raised_at         TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL,
    position          INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX security_by_status ON security_events (status, raised_at);
CREATE INDEX security_by_user ON security_events (user_id, raised_at);
CREATE INDEX security_by_patient ON security_events (patient_id, raised_at);

CREATE TABLE security_risk (
    user_id    TEXT    NOT NULL PRIMARY KEY,
    score      REAL    NOT NULL,
    as_of      TEXT    NOT NULL,
    detections INTEGER NOT NULL,
    position   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE detection_state (
    id       INTEGER PRIMARY KEY,
    position INTEGER NOT NULL,
    state    TEXT    NOT NULL,
    saved_at TEXT    NOT NULL
);
