-- The search index: keyed hashes (HMAC-SHA-256 under the deployment's index key,
-- first 16 bytes in hex) of what patients are found by (name prefixes, birth
-- dates, gender, identifiers) and of records' diagnosis codes. The values
-- themselves are PHI and stay sealed in the log; without the index key a term
-- cannot be tested against a guess. Erasing a patient deletes their terms.
CREATE TABLE search_index_checkpoint LIKE patient_directory_checkpoint;
INSERT INTO search_index_checkpoint VALUES (1, 0, 0, UTC_TIMESTAMP(6));

CREATE TABLE patient_search_terms (
    term       CHAR(32)    NOT NULL,
    patient_id CHAR(36)    NOT NULL,
    -- name, birthdate, gender or identifier: a change of demographics replaces
    -- the first three.
    field      VARCHAR(16) NOT NULL,
    PRIMARY KEY (term, patient_id),
    KEY patient_terms_by_patient (patient_id, field)
);

CREATE TABLE record_search_terms (
    term       CHAR(32) NOT NULL,
    record_id  CHAR(36) NOT NULL,
    patient_id CHAR(36) NOT NULL,
    PRIMARY KEY (term, record_id),
    KEY record_terms_by_record (record_id),
    KEY record_terms_by_patient (patient_id)
);
