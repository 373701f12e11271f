-- Accounting of disclosures (HIPAA §164.528) and security events (the seed's
-- SecurityEvents table), folded from disclosure, account and security-event events.
CREATE TABLE access_log_checkpoint LIKE patient_directory_checkpoint;
INSERT INTO access_log_checkpoint VALUES (1, 0, 0, UTC_TIMESTAMP(6));

CREATE TABLE access_log (
    disclosure_id CHAR(36)        NOT NULL PRIMARY KEY,
    patient_id    CHAR(36)        NOT NULL,
    accessor_id   CHAR(36)        NOT NULL,
    accessor_role VARCHAR(16)     NOT NULL,
    resource      VARCHAR(16)     NOT NULL,
    record_id     CHAR(36)        NULL,
    basis         VARCHAR(16)     NOT NULL,
    grant_id      CHAR(36)        NULL,
    accessed_at   DATETIME(6)     NOT NULL,
    position      BIGINT UNSIGNED NOT NULL,
    -- "Who read my records?" and "what did this user read?".
    KEY access_by_patient (patient_id, accessed_at),
    KEY access_by_accessor (accessor_id, accessed_at)
);

CREATE TABLE security_events (
    event_id    CHAR(36)        NOT NULL PRIMARY KEY,
    kind        VARCHAR(32)     NOT NULL,
    severity    VARCHAR(8)      NOT NULL,
    user_id     CHAR(36)        NULL,
    patient_id  CHAR(36)        NULL,
    occurred_at DATETIME(6)     NOT NULL,
    position    BIGINT UNSIGNED NOT NULL,
    KEY security_by_time (occurred_at),
    KEY security_by_patient (patient_id, occurred_at)
);
