-- Read models of EMR Ledger, embedded (SQLite 3.35+): the same tables, columns,
-- keys and indexes as the MySQL schema (../mysql), in SQLite's types.
-- No plaintext PHI: ids, types, dates, statuses and counts only.
-- Instants are TEXT `YYYY-MM-DD HH:MM:SS.ffffff` in UTC (fixed width: text order is
-- time order); dates are TEXT `YYYY-MM-DD`.
-- Each projection owns its tables and a one-row checkpoint table, updated in the
-- same transaction as its rows and swapped with them on rebuild.

CREATE TABLE patient_directory_checkpoint (
    id         INTEGER PRIMARY KEY,
    position   INTEGER NOT NULL,
    events     INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
);
INSERT INTO patient_directory_checkpoint VALUES (1, 0, 0, strftime('%Y-%m-%d %H:%M:%f000', 'now'));

CREATE TABLE patients (
    patient_id    TEXT    NOT NULL PRIMARY KEY,
    hospital_id   TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    registered_at TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    erased_at     TEXT    NULL,
    version       INTEGER NOT NULL,
    position      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX patients_by_hospital ON patients (hospital_id, status);

CREATE TABLE record_index_checkpoint (
    id         INTEGER PRIMARY KEY,
    position   INTEGER NOT NULL,
    events     INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
);
INSERT INTO record_index_checkpoint VALUES (1, 0, 0, strftime('%Y-%m-%d %H:%M:%f000', 'now'));

CREATE TABLE medical_records (
    record_id        TEXT    NOT NULL PRIMARY KEY,
    patient_id       TEXT    NOT NULL,
    doctor_id        TEXT    NOT NULL,
    hospital_id      TEXT    NOT NULL,
    record_type      TEXT    NOT NULL,
    visit_date       TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    content_version  INTEGER NOT NULL,
    attachment_count INTEGER NOT NULL,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    deleted_at       TEXT    NULL,
    version          INTEGER NOT NULL,
    position         INTEGER NOT NULL
) WITHOUT ROWID;
-- The seed's indexes (section 6.2.1).
CREATE INDEX idx_medical_records_patient_date ON medical_records (patient_id, visit_date DESC);
CREATE INDEX idx_records_search ON medical_records (patient_id, record_type, status);

CREATE TABLE attachments (
    attachment_id TEXT    NOT NULL PRIMARY KEY,
    record_id     TEXT    NOT NULL,
    patient_id    TEXT    NOT NULL,
    content_id    TEXT    NOT NULL,
    mime_type     TEXT    NOT NULL,
    size_bytes    INTEGER NOT NULL,
    sha256        TEXT    NOT NULL,
    added_at      TEXT    NOT NULL,
    position      INTEGER NOT NULL,
    -- The non-identifying DICOM metadata of imaging attachments (seed 3.2).
    modality      TEXT    NULL,
    study_date    TEXT    NULL,
    body_part     TEXT    NULL,
    image_rows    INTEGER NULL,
    image_cols    INTEGER NULL
) WITHOUT ROWID;
CREATE INDEX attachments_by_record ON attachments (record_id);
CREATE INDEX attachments_by_modality ON attachments (modality, study_date);

CREATE TABLE access_checkpoint (
    id         INTEGER PRIMARY KEY,
    position   INTEGER NOT NULL,
    events     INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
);
INSERT INTO access_checkpoint VALUES (1, 0, 0, strftime('%Y-%m-%d %H:%M:%f000', 'now'));

CREATE TABLE access_grants (
    grant_id   TEXT    NOT NULL PRIMARY KEY,
    patient_id TEXT    NOT NULL,
    grantee    TEXT    NOT NULL,
    scopes     TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    granted_by TEXT    NOT NULL,
    granted_at TEXT    NOT NULL,
    expires_at TEXT    NOT NULL,
    revoked_at TEXT    NULL,
    version    INTEGER NOT NULL,
    position   INTEGER NOT NULL
) WITHOUT ROWID;
-- "Active grants of a user on a patient": status = 'active' AND expires_at > now.
CREATE INDEX idx_active_permissions ON access_grants (grantee, patient_id, status, expires_at);
CREATE INDEX grants_by_patient ON access_grants (patient_id, status);

CREATE TABLE access_requests (
    grant_id        TEXT    NOT NULL PRIMARY KEY,
    patient_id      TEXT    NOT NULL,
    requester       TEXT    NOT NULL,
    scopes          TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    requested_at    TEXT    NOT NULL,
    requested_until TEXT    NOT NULL,
    decided_at      TEXT    NULL,
    decided_by      TEXT    NULL,
    version         INTEGER NOT NULL,
    position        INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX requests_by_patient ON access_requests (patient_id, status);

CREATE TABLE dashboard_checkpoint (
    id         INTEGER PRIMARY KEY,
    position   INTEGER NOT NULL,
    events     INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
);
INSERT INTO dashboard_checkpoint VALUES (1, 0, 0, strftime('%Y-%m-%d %H:%M:%f000', 'now'));

CREATE TABLE records_per_type_per_day (
    record_type TEXT    NOT NULL,
    day         TEXT    NOT NULL,
    records     INTEGER NOT NULL,
    PRIMARY KEY (record_type, day)
) WITHOUT ROWID;

CREATE TABLE patients_per_hospital (
    hospital_id     TEXT    NOT NULL PRIMARY KEY,
    active_patients INTEGER NOT NULL,
    erased_patients INTEGER NOT NULL
) WITHOUT ROWID;

-- Which hospital each patient counts under, so an erasure can move the count.
CREATE TABLE dashboard_patient_hospitals (
    patient_id  TEXT NOT NULL PRIMARY KEY,
    hospital_id TEXT NOT NULL
) WITHOUT ROWID;

-- The seed's BlockchainTransactions: where each signed tree head was anchored,
-- and whether it is final. Written by the anchor worker and the relayer.
CREATE TABLE blockchain_transactions (
    ledger           TEXT    NOT NULL,
    transaction_hash TEXT    NOT NULL,
    block_number     INTEGER NOT NULL,
    operation_type   TEXT    NOT NULL,
    tree_size        INTEGER NOT NULL,
    root             TEXT    NOT NULL,
    last_position    INTEGER NOT NULL,
    status           TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    confirmed_at     TEXT    NULL,
    PRIMARY KEY (ledger, transaction_hash)
) WITHOUT ROWID;
CREATE INDEX transactions_by_size ON blockchain_transactions (tree_size);
CREATE INDEX transactions_by_status ON blockchain_transactions (status, created_at);

-- Accounting of disclosures (HIPAA §164.528) and security events (the seed's
-- SecurityEvents table).
CREATE TABLE access_log_checkpoint (
    id         INTEGER PRIMARY KEY,
    position   INTEGER NOT NULL,
    events     INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
);
INSERT INTO access_log_checkpoint VALUES (1, 0, 0, strftime('%Y-%m-%d %H:%M:%f000', 'now'));

CREATE TABLE access_log (
    disclosure_id TEXT    NOT NULL PRIMARY KEY,
    patient_id    TEXT    NOT NULL,
    accessor_id   TEXT    NOT NULL,
    accessor_role TEXT    NOT NULL,
    resource      TEXT    NOT NULL,
    record_id     TEXT    NULL,
    basis         TEXT    NOT NULL,
    grant_id      TEXT    NULL,
    accessed_at   TEXT    NOT NULL,
    position      INTEGER NOT NULL
) WITHOUT ROWID;
-- "Who read my records?" and "what did this user read?".
CREATE INDEX access_by_patient ON access_log (patient_id, accessed_at);
CREATE INDEX access_by_accessor ON access_log (accessor_id, accessed_at);

CREATE TABLE security_events (
    event_id    TEXT    NOT NULL PRIMARY KEY,
    kind        TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    user_id     TEXT    NULL,
    patient_id  TEXT    NULL,
    occurred_at TEXT    NOT NULL,
    position    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX security_by_time ON security_events (occurred_at);
CREATE INDEX security_by_patient ON security_events (patient_id, occurred_at);
