-- AI-assisted diagnosis for dashboards: the model registry (status, the
-- accuracy each model was validated at) and every suggestion with its review
-- outcome, from which reviewed accuracy per model version is counted. The
-- finding itself is PHI and stays sealed in the log.
CREATE TABLE diagnosis_checkpoint LIKE patient_directory_checkpoint;
INSERT INTO diagnosis_checkpoint VALUES (1, 0, 0, UTC_TIMESTAMP(6));

CREATE TABLE diagnosis_models (
    model_id           CHAR(36)        NOT NULL PRIMARY KEY,
    name               VARCHAR(200)    NOT NULL,
    version            VARCHAR(64)     NOT NULL,
    sha256             CHAR(64)        NOT NULL,
    -- registered, active or retired.
    status             VARCHAR(16)     NOT NULL,
    validated_accuracy DOUBLE          NULL,
    validation_set     VARCHAR(200)    NULL,
    updated_at         DATETIME(6)     NOT NULL,
    position           BIGINT UNSIGNED NOT NULL,
    UNIQUE KEY diagnosis_model_by_sha (sha256)
);

CREATE TABLE diagnosis_suggestions (
    suggestion_id  CHAR(36)        NOT NULL PRIMARY KEY,
    record_id      CHAR(36)        NOT NULL,
    attachment_id  CHAR(36)        NOT NULL,
    model_sha256   CHAR(64)        NOT NULL,
    model_name     VARCHAR(200)    NOT NULL,
    model_version  VARCHAR(64)     NOT NULL,
    explained      BIGINT          NOT NULL,
    suggested_by   CHAR(36)        NOT NULL,
    suggested_at   DATETIME(6)     NOT NULL,
    -- accepted, rejected or corrected; NULL until reviewed.
    outcome        VARCHAR(16)     NULL,
    reviewer_id    CHAR(36)        NULL,
    reviewed_at    DATETIME(6)     NULL,
    position       BIGINT UNSIGNED NOT NULL,
    KEY diagnosis_by_record (record_id),
    KEY diagnosis_by_model (model_sha256, outcome)
);
