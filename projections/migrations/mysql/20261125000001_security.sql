-- Security events (the seed's SecurityEvents table) get a read model of their
-- own: detections with their evidence, responses and triage, and per-user risk
-- scores. The old table gathered break-glass reads and lockouts, which the
-- detector now raises as security events; the access log keeps the reads.
DROP TABLE security_events;

CREATE TABLE security_checkpoint LIKE patient_directory_checkpoint;
INSERT INTO security_checkpoint VALUES (1, 0, 0, UTC_TIMESTAMP(6));

CREATE TABLE security_events (
    security_event_id CHAR(36)        NOT NULL PRIMARY KEY,
    kind              VARCHAR(32)     NOT NULL,
    severity          VARCHAR(8)      NOT NULL,
    user_id           CHAR(36)        NULL,
    patient_id        CHAR(36)        NULL,
    client            VARCHAR(45)     NULL,
    risk_score        DOUBLE          NOT NULL,
    summary           VARCHAR(512)    NOT NULL,
    -- JSON array of {position, event_id}: the log events it rests on.
    evidence          TEXT            NOT NULL,
    -- Comma-separated responses carried out (alert, reauthenticate, lock_account).
    responses         VARCHAR(128)    NOT NULL,
    status            VARCHAR(16)     NOT NULL,
    assignee          CHAR(36)        NULL,
    outcome           VARCHAR(16)     NULL,
    raised_at         DATETIME(6)     NOT NULL,
    updated_at        DATETIME(6)     NOT NULL,
    position          BIGINT UNSIGNED NOT NULL,
    -- The triage queue, a user's history, a patient's.
    KEY security_by_status (status, raised_at),
    KEY security_by_user (user_id, raised_at),
    KEY security_by_patient (patient_id, raised_at)
);

CREATE TABLE security_risk (
    user_id    CHAR(36)        NOT NULL PRIMARY KEY,
    score      DOUBLE          NOT NULL,
    as_of      DATETIME(6)     NOT NULL,
    detections BIGINT UNSIGNED NOT NULL,
    position   BIGINT UNSIGNED NOT NULL
);

-- What the detection worker has learned, with the log position it reflects.
CREATE TABLE detection_state (
    id       TINYINT UNSIGNED PRIMARY KEY,
    position BIGINT UNSIGNED NOT NULL,
    state    LONGTEXT        NOT NULL,
    saved_at DATETIME(6)     NOT NULL
);
