-- The non-identifying DICOM metadata of imaging attachments (seed 3.2): what
-- modality, when, which body part, what size, without opening a blob.
ALTER TABLE attachments
    ADD COLUMN modality    VARCHAR(64) NULL,
    ADD COLUMN study_date  DATE        NULL,
    ADD COLUMN body_part   VARCHAR(64) NULL,
    ADD COLUMN image_rows  INT UNSIGNED NULL,
    ADD COLUMN image_cols  INT UNSIGNED NULL,
    ADD KEY attachments_by_modality (modality, study_date);
