-- The search index (see the MySQL migration).
CREATE TABLE search_index_checkpoint (
    id         INTEGER PRIMARY KEY,
    position   INTEGER NOT NULL,
    events     INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
);
INSERT INTO search_index_checkpoint VALUES (1, 0, 0, strftime('%Y-%m-%d %H:%M:%f000', 'now'));

CREATE TABLE patient_search_terms (
    term       TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    field      TEXT NOT NULL,
    PRIMARY KEY (term, patient_id)
);
CREATE INDEX patient_terms_by_patient ON patient_search_terms (patient_id, field);

CREATE TABLE record_search_terms (
    term       TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    PRIMARY KEY (term, record_id)
);
CREATE INDEX record_terms_by_record ON record_search_terms (record_id);
CREATE INDEX record_terms_by_patient ON record_search_terms (patient_id);
