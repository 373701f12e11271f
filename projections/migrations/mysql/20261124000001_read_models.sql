-- Read models of EMR Ledger (MySQL 8 / MariaDB 10.11).
-- No plaintext PHI: ids, types, dates, statuses and counts only.
-- Each projection owns its tables and a one-row checkpoint table; the checkpoint is
-- updated in the same transaction as the rows, and is renamed with them on rebuild.

CREATE TABLE patient_directory_checkpoint (
    id         TINYINT UNSIGNED PRIMARY KEY,
    position   BIGINT UNSIGNED NOT NULL,
    events     BIGINT UNSIGNED NOT NULL,
    updated_at DATETIME(6)     NOT NULL
);
INSERT INTO patient_directory_checkpoint VALUES (1, 0, 0, UTC_TIMESTAMP(6));

CREATE TABLE patients (
    patient_id    CHAR(36)        NOT NULL PRIMARY KEY,
    hospital_id   VARCHAR(64)     NOT NULL,
    status        VARCHAR(16)     NOT NULL,
    registered_at DATETIME(6)     NOT NULL,
    updated_at    DATETIME(6)     NOT NULL,
    erased_at     DATETIME(6)     NULL,
    version       BIGINT UNSIGNED NOT NULL,
    position      BIGINT UNSIGNED NOT NULL,
    KEY patients_by_hospital (hospital_id, status)
);

CREATE TABLE record_index_checkpoint LIKE patient_directory_checkpoint;
INSERT INTO record_index_checkpoint VALUES (1, 0, 0, UTC_TIMESTAMP(6));

CREATE TABLE medical_records (
    record_id        CHAR(36)        NOT NULL PRIMARY KEY,
    patient_id       CHAR(36)        NOT NULL,
    doctor_id        CHAR(36)        NOT NULL,
    hospital_id      VARCHAR(64)     NOT NULL,
    record_type      VARCHAR(32)     NOT NULL,
    visit_date       DATE            NOT NULL,
    status           VARCHAR(16)     NOT NULL,
    content_version  INT UNSIGNED    NOT NULL,
    attachment_count INT UNSIGNED    NOT NULL,
    created_at       DATETIME(6)     NOT NULL,
    updated_at       DATETIME(6)     NOT NULL,
    deleted_at       DATETIME(6)     NULL,
    version          BIGINT UNSIGNED NOT NULL,
    position         BIGINT UNSIGNED NOT NULL,
    -- The seed's indexes (section 6.2.1).
    KEY idx_medical_records_patient_date (patient_id, visit_date DESC),
    KEY idx_records_search (patient_id, record_type, status)
);

CREATE TABLE attachments (
    attachment_id CHAR(36)        NOT NULL PRIMARY KEY,
    record_id     CHAR(36)        NOT NULL,
    patient_id    CHAR(36)        NOT NULL,
    content_id    VARCHAR(128)    NOT NULL,
    mime_type     VARCHAR(255)    NOT NULL,
    size_bytes    BIGINT UNSIGNED NOT NULL,
    sha256        CHAR(64)        NOT NULL,
    added_at      DATETIME(6)     NOT NULL,
    position      BIGINT UNSIGNED NOT NULL,
    KEY attachments_by_record (record_id)
);

CREATE TABLE access_checkpoint LIKE patient_directory_checkpoint;
INSERT INTO access_checkpoint VALUES (1, 0, 0, UTC_TIMESTAMP(6));

CREATE TABLE access_grants (
    grant_id   CHAR(36)        NOT NULL PRIMARY KEY,
    patient_id CHAR(36)        NOT NULL,
    grantee    CHAR(36)        NOT NULL,
    scopes     VARCHAR(64)     NOT NULL,
    status     VARCHAR(16)     NOT NULL,
    granted_by CHAR(36)        NOT NULL,
    granted_at DATETIME(6)     NOT NULL,
    expires_at DATETIME(6)     NOT NULL,
    revoked_at DATETIME(6)     NULL,
    version    BIGINT UNSIGNED NOT NULL,
    position   BIGINT UNSIGNED NOT NULL,
    -- "Active grants of a user on a patient": status = 'active' AND expires_at > now.
    KEY idx_active_permissions (grantee, patient_id, status, expires_at),
    KEY grants_by_patient (patient_id, status)
);

CREATE TABLE access_requests (
    grant_id        CHAR(36)        NOT NULL PRIMARY KEY,
    patient_id      CHAR(36)        NOT NULL,
    requester       CHAR(36)        NOT NULL,
    scopes          VARCHAR(64)     NOT NULL,
    status          VARCHAR(16)     NOT NULL,
    requested_at    DATETIME(6)     NOT NULL,
    requested_until DATETIME(6)     NOT NULL,
    decided_at      DATETIME(6)     NULL,
    decided_by      CHAR(36)        NULL,
    version         BIGINT UNSIGNED NOT NULL,
    position        BIGINT UNSIGNED NOT NULL,
    KEY requests_by_patient (patient_id, status)
);

CREATE TABLE dashboard_checkpoint LIKE patient_directory_checkpoint;
INSERT INTO dashboard_checkpoint VALUES (1, 0, 0, UTC_TIMESTAMP(6));

CREATE TABLE records_per_type_per_day (
    record_type VARCHAR(32)     NOT NULL,
    day         DATE            NOT NULL,
    records     BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (record_type, day)
);

CREATE TABLE patients_per_hospital (
    hospital_id     VARCHAR(64) NOT NULL PRIMARY KEY,
    active_patients BIGINT      NOT NULL,
    erased_patients BIGINT      NOT NULL
);

-- Which hospital each patient counts under, so an erasure can move the count.
CREATE TABLE dashboard_patient_hospitals (
    patient_id  CHAR(36)    NOT NULL PRIMARY KEY,
    hospital_id VARCHAR(64) NOT NULL
);
